//! Signing keys: load from PEM, generate P-256 keypairs, sign, fingerprint public keys.
//!
//! Dfns Key credentials accept ECDSA P-256, Ed25519 and RSA (PKCS#1 v1.5, SHA-256). Keys arrive
//! from environment variables and Kubernetes Secrets, so loading is forgiving about surrounding
//! whitespace and escaped `\n`, and strict about everything else. Errors name the format problem,
//! never the key material.
use std::fmt;

use p256::ecdsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::der::SecretDocument;
use p256::pkcs8::der::oid::ObjectIdentifier;
use p256::pkcs8::spki::EncodePublicKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding, PrivateKeyInfoRef};
use rsa::pkcs1::DecodeRsaPrivateKey;
use sha2::{Digest, Sha256};

use super::sensitive::SecretString;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("private key is not PEM (expected a -----BEGIN ... PRIVATE KEY----- block)")]
    NotPem,
    #[error(
        "PEM block `{0}` is not a supported private key (use PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)"
    )]
    UnsupportedPemLabel(String),
    #[error("encrypted private keys are not supported; decrypt it first (openssl pkcs8 -nocrypt)")]
    Encrypted,
    #[error("PKCS#8 key algorithm {0} is not supported (use P-256, Ed25519 or RSA)")]
    UnsupportedAlgorithm(String),
    #[error("EC key is not on curve P-256 (prime256v1), the only EC curve supported")]
    UnsupportedCurve,
    #[error("malformed {format} private key")]
    Malformed { format: &'static str },
    #[error("public key is not a PEM SPKI (-----BEGIN PUBLIC KEY-----) block")]
    InvalidPublicKey,
    #[error("could not encode key: {0}")]
    Encoding(&'static str),
}

/// Which algorithm a key signs with; what the Dfns credential was registered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    Ed25519,
    Rsa,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ECDSA P-256",
            Self::Ed25519 => "Ed25519",
            Self::Rsa => "RSA",
        })
    }
}

/// A private key able to answer Dfns challenges. All variants zeroize their material on drop.
pub enum PrivateKey {
    EcdsaP256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    // Boxed: an RSA key is far larger than the other variants.
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, [redacted])", self.algorithm())
    }
}

impl PrivateKey {
    /// Loads a PEM private key: PKCS#8 (P-256, Ed25519, RSA), SEC1 (P-256) or PKCS#1 (RSA).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let normalized = normalize_pem(pem);
        let text = normalized.expose();
        let label =
            p256::pkcs8::der::pem::decode_label(text.as_bytes()).map_err(|_| KeyError::NotPem)?;
        let format = match label {
            "PRIVATE KEY" => "PKCS#8",
            "EC PRIVATE KEY" => "SEC1 EC",
            "RSA PRIVATE KEY" => "PKCS#1 RSA",
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
            other => return Err(KeyError::UnsupportedPemLabel(other.to_owned())),
        };
        let (_, document) =
            SecretDocument::from_pem(text).map_err(|_| KeyError::Malformed { format })?;
        let der = document.as_bytes();
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(der),
            "EC PRIVATE KEY" => {
                let secret = p256::SecretKey::from_sec1_der(der).map_err(|_| sec1_error(der))?;
                Ok(Self::EcdsaP256(secret.into()))
            }
            _ => rsa::RsaPrivateKey::from_pkcs1_der(der)
                .map(Self::from_rsa)
                .map_err(|_| KeyError::Malformed { format }),
        }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let malformed = KeyError::Malformed { format: "PKCS#8" };
        let info = PrivateKeyInfoRef::try_from(der).map_err(|_| malformed.clone())?;
        let oid = info.algorithm.oid;
        if oid == OID_EC_PUBLIC_KEY {
            if info.algorithm.parameters_oid().ok() != Some(OID_PRIME256V1) {
                return Err(KeyError::UnsupportedCurve);
            }
            p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(Self::EcdsaP256)
                .map_err(|_| malformed)
        } else if oid == OID_ED25519 {
            ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(Self::Ed25519)
                .map_err(|_| malformed)
        } else if oid == OID_RSA_ENCRYPTION {
            rsa::RsaPrivateKey::from_pkcs8_der(der)
                .map(Self::from_rsa)
                .map_err(|_| malformed)
        } else {
            Err(KeyError::UnsupportedAlgorithm(oid.to_string()))
        }
    }

    fn from_rsa(key: rsa::RsaPrivateKey) -> Self {
        Self::Rsa(Box::new(rsa::pkcs1v15::SigningKey::<Sha256>::new(key)))
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
            Self::Ed25519(_) => KeyAlgorithm::Ed25519,
            Self::Rsa(_) => KeyAlgorithm::Rsa,
        }
    }

    /// Signs `message` the way Dfns verifies Key credentials: ECDSA P-256 with SHA-256 in ASN.1
    /// DER, pure Ed25519, or RSA PKCS#1 v1.5 with SHA-256.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::EcdsaP256(key) => {
                let signature: p256::ecdsa::DerSignature = key.sign(message);
                signature.to_vec()
            }
            Self::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            // Randomized: RSA blinding keeps the private exponent out of timing side channels.
            Self::Rsa(key) => key.sign_with_rng(&mut rand::rng(), message).to_vec(),
        }
    }

    /// The public half as SPKI DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        let document = match self {
            Self::EcdsaP256(key) => key.verifying_key().to_public_key_der(),
            Self::Ed25519(key) => key.verifying_key().to_public_key_der(),
            Self::Rsa(key) => {
                let private: &rsa::RsaPrivateKey = (**key).as_ref();
                rsa::RsaPublicKey::from(private).to_public_key_der()
            }
        };
        document
            .map(|doc| doc.as_bytes().to_vec())
            .map_err(|_| KeyError::Encoding("SPKI public key"))
    }

    /// The public half as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), the form Dfns accepts.
    pub fn public_key_pem(&self) -> Result<String, KeyError> {
        let der = self.public_key_der()?;
        p256::pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &der)
            .map_err(|_| KeyError::Encoding("SPKI public key PEM"))
    }

    /// Lowercase hex SHA-256 of the SPKI DER: a stable name for the key that reveals nothing.
    pub fn public_key_sha256(&self) -> Result<String, KeyError> {
        Ok(sha256_hex(&self.public_key_der()?))
    }
}

fn sec1_error(der: &[u8]) -> KeyError {
    // A SEC1 key on another curve parses as SEC1 but not as P-256; say which, not just "malformed".
    match p256::pkcs8::der::asn1::AnyRef::try_from(der) {
        Ok(_) => KeyError::UnsupportedCurve,
        Err(_) => KeyError::Malformed { format: "SEC1 EC" },
    }
}

/// Accepts PEM as people paste it into env files: surrounding whitespace, CRLF, or literal `\n`.
fn normalize_pem(pem: &str) -> SecretString {
    let trimmed = pem.trim().trim_matches('"');
    let unescaped = if !trimmed.contains('\n') && trimmed.contains("\\n") {
        trimmed.replace("\\n", "\n")
    } else {
        trimmed.to_owned()
    };
    let mut text = unescaped.replace("\r\n", "\n");
    text.push('\n');
    SecretString::new(text)
}

/// A freshly generated P-256 keypair in the forms the operator stores in a Secret.
pub struct GeneratedKeyPair {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_key_pem: SecretString,
    /// SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key_pem: String,
    /// Lowercase hex SHA-256 of the SPKI DER.
    pub public_key_sha256: String,
}

impl fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("private_key_pem", &self.private_key_pem)
            .field("public_key_sha256", &self.public_key_sha256)
            .finish_non_exhaustive()
    }
}

/// Generates a P-256 keypair from the operating system's CSPRNG (via `rand`'s thread RNG).
pub fn generate_p256() -> Result<GeneratedKeyPair, KeyError> {
    let signing_key = p256::ecdsa::SigningKey::generate_from_rng(&mut rand::rng());
    let private_pem = signing_key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| KeyError::Encoding("PKCS#8 private key PEM"))?;
    let key = PrivateKey::EcdsaP256(signing_key);
    Ok(GeneratedKeyPair {
        private_key_pem: SecretString::new(private_pem.as_str()),
        public_key_pem: key.public_key_pem()?,
        public_key_sha256: key.public_key_sha256()?,
    })
}

/// SPKI DER of a PEM public key, so keys can be compared regardless of line wrapping.
pub fn public_key_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let text = normalize_pem(pem);
    let (label, der) = p256::pkcs8::der::pem::decode_vec(text.expose().as_bytes())
        .map_err(|_| KeyError::InvalidPublicKey)?;
    if label != "PUBLIC KEY" {
        return Err(KeyError::InvalidPublicKey);
    }
    Ok(der)
}

/// Lowercase hex SHA-256 of a PEM SPKI public key's DER.
pub fn public_key_sha256_from_pem(pem: &str) -> Result<String, KeyError> {
    Ok(sha256_hex(&public_key_der_from_pem(pem)?))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;

    fn verify(key: &PrivateKey, message: &[u8], signature: &[u8]) -> bool {
        let spki = key.public_key_der().unwrap();
        match key.algorithm() {
            KeyAlgorithm::EcdsaP256 => {
                let vk = p256::ecdsa::VerifyingKey::from_public_key_der(&spki).unwrap();
                let sig = p256::ecdsa::Signature::from_der(signature).unwrap();
                vk.verify(message, &sig).is_ok()
            }
            KeyAlgorithm::Ed25519 => {
                let vk = ed25519_dalek::VerifyingKey::from_public_key_der(&spki).unwrap();
                let sig = ed25519_dalek::Signature::from_slice(signature).unwrap();
                vk.verify(message, &sig).is_ok()
            }
            KeyAlgorithm::Rsa => {
                let pk = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
                let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk);
                let sig = rsa::pkcs1v15::Signature::try_from(signature).unwrap();
                vk.verify(message, &sig).is_ok()
            }
        }
    }

    fn p256_secret() -> p256::SecretKey {
        p256::SecretKey::generate_from_rng(&mut rand::rng())
    }

    fn rsa_key() -> rsa::RsaPrivateKey {
        // 1024 bits keeps the test fast; the code path is size-independent.
        rsa::RsaPrivateKey::new(&mut rand::rng(), 1024).unwrap()
    }

    #[test]
    fn generated_p256_keypair_round_trips_through_pkcs8_pem() {
        let pair = generate_p256().unwrap();
        assert!(
            pair.private_key_pem
                .expose()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(
            pair.public_key_pem
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        let key = PrivateKey::from_pem(pair.private_key_pem.expose()).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        assert_eq!(key.public_key_pem().unwrap(), pair.public_key_pem);
        assert_eq!(key.public_key_sha256().unwrap(), pair.public_key_sha256);
        assert_eq!(
            public_key_sha256_from_pem(&pair.public_key_pem).unwrap(),
            pair.public_key_sha256
        );
        assert_eq!(pair.public_key_sha256.len(), 64);
        let signature = key.sign(b"challenge bytes");
        assert!(verify(&key, b"challenge bytes", &signature));
        assert!(!verify(&key, b"other bytes", &signature));
    }

    #[test]
    fn two_generated_keypairs_differ() {
        let a = generate_p256().unwrap();
        let b = generate_p256().unwrap();
        assert_ne!(a.public_key_sha256, b.public_key_sha256);
    }

    #[test]
    fn loads_p256_sec1_pem_and_signs_verifiably() {
        let secret = p256_secret();
        let pem = secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert!(pem.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let key = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        let expected = secret.public_key().to_public_key_der().unwrap();
        assert_eq!(key.public_key_der().unwrap(), expected.as_bytes());
        assert!(verify(&key, b"m", &key.sign(b"m")));
    }

    #[test]
    fn p256_signatures_are_der_encoded() {
        let key = PrivateKey::from_pem(generate_p256().unwrap().private_key_pem.expose()).unwrap();
        let signature = key.sign(b"payload");
        assert_eq!(signature[0], 0x30, "DER SEQUENCE tag");
        assert_eq!(signature[1] as usize, signature.len() - 2);
    }

    #[test]
    fn loads_ed25519_pkcs8_pem_and_signs_verifiably() {
        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rng());
        let pem = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        let signature = key.sign(b"hello");
        assert_eq!(signature.len(), 64);
        assert!(verify(&key, b"hello", &signature));
        assert!(
            key.public_key_pem()
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
    }

    #[test]
    fn loads_rsa_pkcs1_and_pkcs8_pem_and_signs_verifiably() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let private = rsa_key();
        let pkcs1 = private.to_pkcs1_pem(LineEnding::LF).unwrap();
        let pkcs8 = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        for pem in [pkcs1.as_str(), pkcs8.as_str()] {
            let key = PrivateKey::from_pem(pem).unwrap();
            assert_eq!(key.algorithm(), KeyAlgorithm::Rsa);
            assert!(verify(&key, b"rsa message", &key.sign(b"rsa message")));
        }
    }

    #[test]
    fn accepts_pem_with_escaped_newlines_and_crlf() {
        let pem = generate_p256().unwrap().private_key_pem;
        let escaped = pem.expose().trim_end().replace('\n', "\\n");
        assert!(PrivateKey::from_pem(&escaped).is_ok());
        let crlf = pem.expose().replace('\n', "\r\n");
        assert!(PrivateKey::from_pem(&format!("  {crlf}  ")).is_ok());
    }

    #[test]
    fn rejects_garbage_unsupported_and_encrypted_keys_with_named_causes() {
        assert_eq!(
            PrivateKey::from_pem("not a key").unwrap_err(),
            KeyError::NotPem
        );
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            PrivateKey::from_pem(cert).unwrap_err(),
            KeyError::UnsupportedPemLabel("CERTIFICATE".into())
        );
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(
            PrivateKey::from_pem(encrypted).unwrap_err(),
            KeyError::Encrypted
        );
        let broken = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            PrivateKey::from_pem(broken).unwrap_err(),
            KeyError::Malformed { format: "PKCS#8" }
        );
    }

    #[test]
    fn rejects_ec_keys_on_other_curves() {
        // secp384r1 PKCS#8 key generated with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384`.
        let p384 = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBg7uRHuM102SWnJzZe
jazYV4mus5e+EwPLoD+6MNPWElj8e2XIUQOqxKGB4tItASWhZANiAAR9mBINZAQs
1a4Bv/FCYNYbMR6UKvmIESCAGuY82WCnVYb2jcRIXmLUkMXtzo6L5KrvGLBFY3kw
xwPjJRtRUHJsyy+Di8oo1wZLNemrGwwRE1RIy34PvA8ou1LruBivXnc=
-----END PRIVATE KEY-----
";
        assert_eq!(
            PrivateKey::from_pem(p384).unwrap_err(),
            KeyError::UnsupportedCurve
        );
        let p384_sec1 = "-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDCXBbJ54RON3SK4+kzVwFrEC8A9aE+eCGyWmk25vK04JF8SVu4FPEGn
8oyIlmqoe3CgBwYFK4EEACKhZANiAASdLVMLv4ef+aF2jIVNJOAx7VTtXkAaHhCT
SnJjw32yMFUHv5ymzJSxG3yn2XDcEZva5zQHnq7nQ2So+VhMiuXpsLwKn0XA5qfF
qUSG1/VFFw5Em6rFhcG7d7gq6+2NgfM=
-----END EC PRIVATE KEY-----
";
        assert_eq!(
            PrivateKey::from_pem(p384_sec1).unwrap_err(),
            KeyError::UnsupportedCurve
        );
    }

    #[test]
    fn debug_output_hides_key_material() {
        let pair = generate_p256().unwrap();
        let key = PrivateKey::from_pem(pair.private_key_pem.expose()).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey(ECDSA P-256, [redacted])");
        let body: String = pair
            .private_key_pem
            .expose()
            .lines()
            .nth(1)
            .unwrap()
            .to_owned();
        assert!(!format!("{pair:?}").contains(&body));
    }

    #[test]
    fn public_key_pem_parsing_ignores_wrapping_and_rejects_private_keys() {
        let pair = generate_p256().unwrap();
        let rewrapped = pair.public_key_pem.replace('\n', "\r\n");
        assert_eq!(
            public_key_der_from_pem(&rewrapped).unwrap(),
            public_key_der_from_pem(&pair.public_key_pem).unwrap()
        );
        assert_eq!(
            public_key_der_from_pem(pair.private_key_pem.expose()).unwrap_err(),
            KeyError::InvalidPublicKey
        );
    }
}
