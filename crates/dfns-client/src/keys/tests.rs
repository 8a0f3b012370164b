use p256::elliptic_curve::Generate as _;
use p256::pkcs8::spki::EncodePublicKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use sha2::Sha256;

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
