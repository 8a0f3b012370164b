//! Key rotation for a service account or PAT, as Dfns' credential rotation guide describes it:
//! the identity itself registers a new Key credential (`POST /auth/credentials/init`, then
//! `POST /auth/credentials` with an attestation made with the new key, the request signed with
//! the current one), switches to it, and deactivates the old credential. The token stays the
//! same. Call these on a client acting as the identity (its token and its current key), not on
//! the connection's client.
//!
//! Dfns' reference pages mark these endpoints ❌ for service accounts and PATs while the guide
//! uses them; a 403 from them is therefore reported as [`DfnsError::KeyRotationRefused`]
//! (category [`crate::ErrorCategory::KeyRotationRefused`]), so a caller can tell "Dfns does not let this
//! identity rotate its key" from any other refusal.
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::DfnsClient;
use crate::error::DfnsError;
use crate::keys::PrivateKey;
use crate::types::credential::{
    CreateKeyCredentialRequest, CredentialChallenge, CredentialChallengeRequest,
    CredentialUuidRequest, KeyCredentialInfo, UserCredential,
};

const INIT_PATH: &str = "/auth/credentials/init";
const CREATE_PATH: &str = "/auth/credentials";
const DEACTIVATE_PATH: &str = "/auth/credentials/deactivate";

/// A Key credential to register: the id it will sign under, its key and a name for it in Dfns.
pub struct NewKeyCredential<'a> {
    /// Any unique base64url string (see [`new_cred_id`]); Dfns refuses one already used.
    pub cred_id: &'a str,
    pub key: &'a PrivateKey,
    pub name: &'a str,
}

/// A fresh credential id as the Dfns SDKs make them: 32 random bytes, base64url.
pub fn new_cred_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// `{"type":"key.create","challenge":…}`: what the attestation's hash covers.
#[derive(Serialize)]
struct CreateClientData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    challenge: &'a str,
}

/// What the new key signs: exactly these two keys in this order, compact.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttestationFingerprint<'a> {
    client_data_hash: &'a str,
    public_key: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attestation<'a> {
    public_key: &'a str,
    /// Hex, not base64url (the documented form).
    signature: String,
}

/// The attestation of `key` over `challenge`: (clientData, attestationData), both base64url.
fn attest(key: &PrivateKey, challenge: &str) -> Result<(String, String), DfnsError> {
    let encode = |what: &str| DfnsError::Config(format!("cannot encode the {what}"));
    let public_key = key.public_key_pem()?;
    let client_data = serde_json::to_vec(&CreateClientData {
        kind: "key.create",
        challenge,
    })
    .map_err(|_| encode("clientData"))?;
    let client_data_hash = hex::encode(Sha256::digest(&client_data));
    let fingerprint = serde_json::to_vec(&AttestationFingerprint {
        client_data_hash: &client_data_hash,
        public_key: &public_key,
    })
    .map_err(|_| encode("attestation fingerprint"))?;
    let attestation = serde_json::to_vec(&Attestation {
        public_key: &public_key,
        signature: hex::encode(key.sign(&fingerprint)),
    })
    .map_err(|_| encode("attestationData"))?;
    Ok((
        URL_SAFE_NO_PAD.encode(client_data),
        URL_SAFE_NO_PAD.encode(attestation),
    ))
}

/// A 403 from the credential endpoints themselves (not from the user-action handshake, whose
/// 403 means a bad signature) is Dfns refusing this identity its own credentials.
fn as_rotation_refusal(error: DfnsError) -> DfnsError {
    match error {
        DfnsError::Api {
            method,
            path,
            status: 403,
            message,
            ..
        } if [INIT_PATH, CREATE_PATH, DEACTIVATE_PATH].contains(&path.as_str()) => {
            DfnsError::KeyRotationRefused {
                method,
                path,
                message,
            }
        }
        other => other,
    }
}

impl DfnsClient {
    /// Registers `new` as a Key credential of the identity this client acts as, the request
    /// signed with the client's current key. Returns the credential as Dfns created it (its
    /// `credential_uuid` is what [`DfnsClient::deactivate_key_credential`] takes). A refusal at
    /// the first step (the challenge) leaves nothing registered.
    pub async fn register_key_credential(
        &self,
        new: &NewKeyCredential<'_>,
    ) -> Result<UserCredential, DfnsError> {
        let init = serde_json::to_string(&CredentialChallengeRequest { kind: "Key" })
            .map_err(|_| DfnsError::Config("cannot encode the credential challenge".into()))?;
        let challenge: CredentialChallenge = self
            .post_unsigned(INIT_PATH, &init)
            .await
            .map_err(as_rotation_refusal)?;
        let (client_data, attestation_data) = attest(new.key, &challenge.challenge)?;
        let body = CreateKeyCredentialRequest {
            credential_kind: "Key",
            credential_info: KeyCredentialInfo {
                cred_id: new.cred_id.to_owned(),
                client_data,
                attestation_data,
            },
            credential_name: new.name.to_owned(),
            challenge_identifier: challenge.challenge_identifier,
        };
        self.write(Method::POST, CREATE_PATH, Some(&body))
            .await
            .map_err(as_rotation_refusal)
    }

    /// Deactivates Key credential `credential_uuid` (`cr-…`) of the identity this client acts as:
    /// it signs nothing from then on. Sign with another of the identity's credentials: a client
    /// still signing with this one can make no signed request afterwards.
    pub async fn deactivate_key_credential(&self, credential_uuid: &str) -> Result<(), DfnsError> {
        let body = CredentialUuidRequest {
            credential_uuid: credential_uuid.to_owned(),
        };
        self.write::<_, serde_json::Value>(Method::PUT, DEACTIVATE_PATH, Some(&body))
            .await
            .map(drop)
            .map_err(as_rotation_refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCategory;
    use crate::keys::generate_p256;

    fn api(path: &str, status: u16) -> DfnsError {
        DfnsError::Api {
            method: Method::POST,
            path: path.into(),
            status,
            message: "service account is not allowed".into(),
            retry_after: None,
        }
    }

    #[test]
    fn a_403_from_the_credential_endpoints_is_a_rotation_refusal() {
        for path in [INIT_PATH, CREATE_PATH, DEACTIVATE_PATH] {
            let error = as_rotation_refusal(api(path, 403));
            assert_eq!(
                error.category(),
                ErrorCategory::KeyRotationRefused,
                "{path}"
            );
            assert!(error.to_string().contains("not allowed"), "{error}");
        }
    }

    #[test]
    fn other_refusals_keep_their_category() {
        // A bad signature in the user-action handshake is not a refusal of rotation.
        let error = as_rotation_refusal(api("/auth/action", 403));
        assert_eq!(error.category(), ErrorCategory::Forbidden);
        let error = as_rotation_refusal(api(CREATE_PATH, 401));
        assert_eq!(error.category(), ErrorCategory::Unauthorized);
    }

    #[test]
    fn the_attestation_is_signed_by_the_new_key_over_the_documented_fingerprint() {
        let pair = generate_p256().unwrap();
        let key = PrivateKey::from_pem(pair.private_key_pem.expose()).unwrap();
        let (client_data, attestation) = attest(&key, "Y2hhbGxlbmdl").unwrap();
        let client_data = URL_SAFE_NO_PAD.decode(client_data).unwrap();
        assert_eq!(
            client_data,
            br#"{"type":"key.create","challenge":"Y2hhbGxlbmdl"}"#
        );
        let attestation: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(attestation).unwrap()).unwrap();
        assert_eq!(attestation["publicKey"], pair.public_key_pem);
        let fingerprint = format!(
            r#"{{"clientDataHash":"{}","publicKey":{}}}"#,
            hex::encode(Sha256::digest(&client_data)),
            serde_json::to_string(&pair.public_key_pem).unwrap()
        );
        let signature = hex::decode(attestation["signature"].as_str().unwrap()).unwrap();
        let verifying = p256_public_key(&pair.public_key_pem);
        let signature = p256::ecdsa::DerSignature::try_from(signature.as_slice()).unwrap();
        use signature::Verifier as _;
        verifying
            .verify(fingerprint.as_bytes(), &signature)
            .expect("the new key signed the fingerprint");
    }

    fn p256_public_key(pem: &str) -> p256::ecdsa::VerifyingKey {
        use p256::pkcs8::DecodePublicKey as _;
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem).unwrap()
    }

    #[test]
    fn fresh_cred_ids_are_base64url_and_distinct() {
        let (a, b) = (new_cred_id(), new_cred_id());
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }
}
