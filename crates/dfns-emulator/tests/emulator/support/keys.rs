//! Client keys for tests: P-256 (DER signatures), Ed25519 and RSA PKCS#1 v1.5 SHA-256.

use std::sync::{Arc, OnceLock};

use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use signature::{SignatureEncoding as _, Signer as _};

#[derive(Clone)]
pub enum TestKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Arc<rsa::RsaPrivateKey>),
}

impl TestKey {
    pub fn p256() -> Self {
        Self::P256(
            <p256::ecdsa::SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(
                &mut rand::rng(),
            ),
        )
    }

    pub fn ed25519() -> Self {
        Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut rand::rng()))
    }

    /// One 2048-bit key per test binary: generating RSA keys is slow.
    pub fn rsa() -> Self {
        static KEY: OnceLock<Arc<rsa::RsaPrivateKey>> = OnceLock::new();
        Self::Rsa(
            KEY.get_or_init(|| {
                Arc::new(rsa::RsaPrivateKey::new(&mut rand::rng(), 2048).expect("RSA key"))
            })
            .clone(),
        )
    }

    pub fn from_p256_pkcs8_pem(pem: &str) -> Self {
        Self::P256(p256::ecdsa::SigningKey::from_pkcs8_pem(pem).expect("PKCS#8 P-256 key"))
    }

    /// SPKI PEM (`BEGIN PUBLIC KEY`).
    pub fn public_pem(&self) -> String {
        match self {
            Self::P256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap(),
            Self::Ed25519(k) => {
                use ed25519_dalek::pkcs8::EncodePublicKey as _;
                k.verifying_key()
                    .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                    .unwrap()
            }
            Self::Rsa(k) => {
                use rsa::pkcs8::EncodePublicKey as _;
                k.to_public_key()
                    .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                    .unwrap()
            }
        }
    }

    /// SPKI DER (the bytes inside `BEGIN PUBLIC KEY`).
    pub fn spki_der(&self) -> Vec<u8> {
        match self {
            Self::P256(k) => k.verifying_key().to_public_key_der().unwrap().into_vec(),
            Self::Ed25519(k) => {
                use ed25519_dalek::pkcs8::EncodePublicKey as _;
                k.verifying_key().to_public_key_der().unwrap().into_vec()
            }
            Self::Rsa(k) => {
                use rsa::pkcs8::EncodePublicKey as _;
                k.to_public_key().to_public_key_der().unwrap().into_vec()
            }
        }
    }

    /// PKCS#1 PEM (`BEGIN RSA PUBLIC KEY`), RSA only.
    pub fn rsa_pkcs1_public_pem(&self) -> String {
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        match self {
            Self::Rsa(k) => k
                .to_public_key()
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .unwrap(),
            _ => panic!("not an RSA key"),
        }
    }

    /// Signs as Dfns expects: ECDSA DER over SHA-256, pure Ed25519, RSA PKCS#1 v1.5 SHA-256.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            Self::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Self::Rsa(k) => {
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone());
                signer.sign(message).to_vec()
            }
        }
    }
}
