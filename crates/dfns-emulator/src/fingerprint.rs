//! The `SHA256:` fingerprint form of a public key that Dfns' examples show in `publicKey` of
//! service-account and PAT responses. Dfns does not say which bytes are hashed; the emulator
//! hashes the key's SPKI DER (the bytes inside `BEGIN PUBLIC KEY`, for RSA PKCS#1 keys too, after
//! conversion) and prints it as SSH does: unpadded standard base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};

use crate::crypto::PublicKey;

/// `SHA256:<base64 of SHA-256(SPKI DER)>`, 43 base64 characters after the prefix.
pub(crate) fn sha256_fingerprint(key: &PublicKey) -> Result<String, String> {
    let der = spki_der(key)?;
    Ok(format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(Sha256::digest(&der))
    ))
}

fn spki_der(key: &PublicKey) -> Result<Vec<u8>, String> {
    let der = match key {
        PublicKey::P256 { key, .. } => {
            use p256::pkcs8::EncodePublicKey as _;
            key.to_public_key_der().map(|d| d.into_vec())
        }
        PublicKey::Ed25519(key) => {
            use ed25519_dalek::pkcs8::EncodePublicKey as _;
            key.to_public_key_der().map(|d| d.into_vec())
        }
        PublicKey::Rsa(key) => {
            use rsa::pkcs8::EncodePublicKey as _;
            key.to_public_key_der().map(|d| d.into_vec())
        }
    };
    der.map_err(|e| format!("cannot encode the public key as SPKI DER: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey as _;

    #[test]
    fn fingerprint_is_sha256_of_the_spki_der_in_unpadded_base64() {
        let sk = <p256::ecdsa::SigningKey as p256::elliptic_curve::Generate>::generate_from_rng(
            &mut rand::rng(),
        );
        let der = sk.verifying_key().to_public_key_der().unwrap();
        let pem = sk
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let fp = sha256_fingerprint(&PublicKey::from_pem(&pem).unwrap()).unwrap();
        let expected = STANDARD_NO_PAD.encode(Sha256::digest(der.as_bytes()));
        assert_eq!(fp, format!("SHA256:{expected}"));
        assert_eq!(fp.len(), "SHA256:".len() + 43);
    }

    #[test]
    fn rsa_pkcs1_and_spki_pems_of_one_key_have_one_fingerprint() {
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        use rsa::pkcs8::EncodePublicKey as _;
        let private = rsa::RsaPrivateKey::new(&mut rand::rng(), 1024).unwrap();
        let public = private.to_public_key();
        let spki = public
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        let pkcs1 = public.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
        assert_eq!(
            sha256_fingerprint(&PublicKey::from_pem(&spki).unwrap()).unwrap(),
            sha256_fingerprint(&PublicKey::from_pem(&pkcs1).unwrap()).unwrap()
        );
    }
}
