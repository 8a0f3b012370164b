//! Public keys sent by clients (PEM) and verification of their signatures, the way Dfns checks
//! Key credentials: ECDSA P-256 (DER), Ed25519, RSA PKCS#1 v1.5 — over the exact bytes signed.
//!
//! The verification arithmetic is `ring`'s wherever ring supports it (all but ECDSA with SHA-512):
//! the operator signs with the RustCrypto crates, so the emulator checking its signatures with a
//! different implementation is an independent check, not the same code agreeing with itself.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha512};

use signature::hazmat::PrehashVerifier as _;

/// base64url that accepts input with or without `=` padding (SDKs omit it; old scripts add it).
const B64URL_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(crate) fn decode_b64url(input: &str) -> Result<Vec<u8>, String> {
    B64URL_ANY_PADDING
        .decode(input.trim())
        .map_err(|e| format!("invalid base64url: {e}"))
}

/// Digest named by `credentialAssertion.algorithm` (absent → SHA-256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DigestKind {
    Sha256,
    Sha384,
    Sha512,
}

fn digest_kind(algorithm: Option<&str>) -> Result<DigestKind, String> {
    match algorithm.map(str::to_ascii_uppercase).as_deref() {
        None | Some("") | Some("SHA256") | Some("SHA-256") | Some("RSA-SHA256") => {
            Ok(DigestKind::Sha256)
        }
        Some("SHA384") | Some("SHA-384") => Ok(DigestKind::Sha384),
        Some("SHA512") | Some("SHA-512") => Ok(DigestKind::Sha512),
        Some(other) => Err(format!("unsupported signature algorithm {other:?}")),
    }
}

/// A credential's public key.
#[derive(Clone, Debug)]
pub(crate) enum PublicKey {
    /// `sec1` is the uncompressed point, for ring's (faster) verifier.
    P256 {
        key: p256::ecdsa::VerifyingKey,
        sec1: Vec<u8>,
    },
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    pub fn p256(key: p256::ecdsa::VerifyingKey) -> Self {
        let sec1 = key.to_sec1_point(false).as_bytes().to_vec();
        Self::P256 { key, sec1 }
    }

    /// Parses SPKI (`BEGIN PUBLIC KEY`) for P-256, Ed25519 or RSA, or PKCS#1 (`BEGIN RSA PUBLIC
    /// KEY`). Escaped newlines (`\n` as two characters) are accepted, as Dfns' pattern allows.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        use p256::pkcs8::DecodePublicKey as _;
        use rsa::pkcs1::DecodeRsaPublicKey as _;

        let pem = pem.replace("\\n", "\n");
        let pem = pem.trim();
        if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
            return rsa::RsaPublicKey::from_pkcs1_pem(pem)
                .map(Self::Rsa)
                .map_err(|e| format!("invalid PKCS#1 RSA public key: {e}"));
        }
        if !pem.starts_with("-----BEGIN PUBLIC KEY-----") {
            return Err("publicKey must be a PEM public key (BEGIN PUBLIC KEY)".to_owned());
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::p256(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem) {
            return Ok(Self::Rsa(k));
        }
        Err("publicKey is not a supported key (ECDSA P-256, Ed25519 or RSA)".to_owned())
    }

    /// Verifies `signature` over `message`. ECDSA signatures must be ASN.1 DER.
    pub fn verify(
        &self,
        message: &[u8],
        sig: &[u8],
        algorithm: Option<&str>,
    ) -> Result<(), String> {
        let digest = digest_kind(algorithm)?;
        let ok = match self {
            Self::P256 { key, sec1 } => {
                let parsed = p256::ecdsa::Signature::from_der(sig)
                    .map_err(|_| "ECDSA signature is not ASN.1 DER".to_owned())?;
                let ring_verify = |alg: &'static ring::signature::EcdsaVerificationAlgorithm| {
                    ring::signature::UnparsedPublicKey::new(alg, sec1)
                        .verify(message, sig)
                        .is_ok()
                };
                match digest {
                    DigestKind::Sha256 => ring_verify(&ring::signature::ECDSA_P256_SHA256_ASN1),
                    DigestKind::Sha384 => ring_verify(&ring::signature::ECDSA_P256_SHA384_ASN1),
                    DigestKind::Sha512 => key
                        .verify_prehash(&Sha512::digest(message), &parsed)
                        .is_ok(),
                }
            }
            Self::Ed25519(key) => {
                if sig.len() != 64 {
                    return Err("Ed25519 signature must be 64 bytes".to_owned());
                }
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes())
                    .verify(message, sig)
                    .is_ok()
            }
            Self::Rsa(key) => {
                use rsa::traits::PublicKeyParts as _;
                let strip = |bytes: Box<[u8]>| {
                    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
                    bytes[start..].to_vec()
                };
                let components = ring::signature::RsaPublicKeyComponents {
                    n: strip(key.n_bytes()),
                    e: strip(key.e_bytes()),
                };
                let alg = match digest {
                    DigestKind::Sha256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    DigestKind::Sha384 => &ring::signature::RSA_PKCS1_2048_8192_SHA384,
                    DigestKind::Sha512 => &ring::signature::RSA_PKCS1_2048_8192_SHA512,
                };
                components.verify(alg, message, sig).is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err("signature verification failed".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey as _;
    use signature::Signer as _;

    fn p256_pair() -> (p256::ecdsa::SigningKey, String) {
        let sk = <p256::ecdsa::SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(
            &mut rand::rng(),
        );
        let pem = sk
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        (sk, pem)
    }

    #[test]
    fn p256_der_signature_verifies_and_tampering_fails() {
        let (sk, pem) = p256_pair();
        let key = PublicKey::from_pem(&pem).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"hello");
        let der = sig.to_der();
        key.verify(b"hello", der.as_bytes(), None).unwrap();
        assert!(key.verify(b"hellO", der.as_bytes(), None).is_err());
        // Raw r||s is not accepted: Dfns expects DER.
        assert!(key.verify(b"hello", &sig.to_bytes(), None).is_err());
    }

    #[test]
    fn pem_with_escaped_newlines_is_accepted() {
        let (_, pem) = p256_pair();
        assert!(PublicKey::from_pem(&pem.replace('\n', "\\n")).is_ok());
    }

    #[test]
    fn garbage_pem_is_rejected() {
        assert!(PublicKey::from_pem("not a key").is_err());
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }

    #[test]
    fn base64url_accepts_padding_or_not() {
        assert_eq!(decode_b64url("YQ").unwrap(), b"a");
        assert_eq!(decode_b64url("YQ==").unwrap(), b"a");
        assert!(decode_b64url("Y!").is_err());
    }

    #[test]
    fn unknown_digest_is_rejected() {
        let (sk, pem) = p256_pair();
        let key = PublicKey::from_pem(&pem).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign(b"x");
        assert!(
            key.verify(b"x", sig.to_der().as_bytes(), Some("MD5"))
                .is_err()
        );
    }
}
