//! Loading a PEM private key, signing with it, and deriving its public key.
use std::fmt;

use p256::ecdsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use p256::pkcs8::der::SecretDocument;
use p256::pkcs8::der::oid::ObjectIdentifier;
use p256::pkcs8::spki::EncodePublicKey;
use p256::pkcs8::{DecodePrivateKey, LineEnding, PrivateKeyInfoRef};
use rsa::pkcs1::DecodeRsaPrivateKey;
use sha2::Sha256;

use super::fingerprint::sha256_hex;
use super::{KeyAlgorithm, KeyError, normalize_pem};

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

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
