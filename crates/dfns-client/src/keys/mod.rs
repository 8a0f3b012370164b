//! Signing keys: load from PEM, generate P-256 keypairs, sign, fingerprint public keys.
//!
//! Dfns Key credentials accept ECDSA P-256, Ed25519 and RSA (PKCS#1 v1.5, SHA-256). Keys arrive
//! from environment variables and Kubernetes Secrets, so loading is forgiving about surrounding
//! whitespace and escaped `\n`, and strict about everything else. Errors name the format problem,
//! never the key material.
mod fingerprint;
mod generate;
mod private_key;

use std::fmt;

use super::sensitive::SecretString;

#[cfg(test)]
pub(crate) use fingerprint::public_key_der_from_pem;
pub(crate) use fingerprint::public_key_sha256_from_pem;
pub use generate::{GeneratedKeyPair, generate_p256};
pub use private_key::PrivateKey;

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

#[cfg(test)]
mod tests;
