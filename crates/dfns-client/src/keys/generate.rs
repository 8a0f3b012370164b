//! Fresh P-256 keypairs for the identities the operator creates.
use std::fmt;

use p256::elliptic_curve::Generate as _;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use super::{KeyError, PrivateKey};
use crate::sensitive::SecretString;

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
