//! Public keys as Dfns returns them, reduced to something comparable: SPKI DER and its SHA-256.
use sha2::{Digest, Sha256};

use super::{KeyError, normalize_pem};

/// SPKI DER of a PEM public key, so keys can be compared regardless of line wrapping.
pub(crate) fn public_key_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let text = normalize_pem(pem);
    let (label, der) = p256::pkcs8::der::pem::decode_vec(text.expose().as_bytes())
        .map_err(|_| KeyError::InvalidPublicKey)?;
    if label != "PUBLIC KEY" {
        return Err(KeyError::InvalidPublicKey);
    }
    Ok(der)
}

/// Lowercase hex SHA-256 of a PEM SPKI public key's DER.
pub(crate) fn public_key_sha256_from_pem(pem: &str) -> Result<String, KeyError> {
    Ok(sha256_hex(&public_key_der_from_pem(pem)?))
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
