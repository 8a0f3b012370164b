//! Answering Dfns challenges (user actions and logins) with a Key credential.
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::error::DfnsError;
use super::keys::PrivateKey;
use super::types::user_action::{Challenge, FirstFactor, KeyAssertion, SignedChallenge};

/// A Key credential: its Dfns `credId` and the private key registered for it.
pub struct KeySigner {
    cred_id: String,
    key: PrivateKey,
}

impl fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySigner")
            .field("cred_id", &self.cred_id)
            .field("key", &self.key)
            .finish()
    }
}

/// Exactly `{"type":"key.get","challenge":"..."}`: the challenge goes in verbatim (it is already
/// base64url), and these bytes are what gets signed.
#[derive(Serialize)]
struct ClientData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    challenge: &'a str,
}

impl KeySigner {
    pub fn new(cred_id: impl Into<String>, key: PrivateKey) -> Self {
        Self {
            cred_id: cred_id.into(),
            key,
        }
    }

    /// Loads the key from PEM (see [`PrivateKey::from_pem`]).
    pub fn from_pem(cred_id: impl Into<String>, private_key_pem: &str) -> Result<Self, DfnsError> {
        Ok(Self::new(cred_id, PrivateKey::from_pem(private_key_pem)?))
    }

    pub fn cred_id(&self) -> &str {
        &self.cred_id
    }

    /// Signs `challenge`, refusing when Dfns does not list our credential as allowed: signing
    /// anyway would only earn an opaque 401/403, while this names the misconfiguration.
    pub fn sign(&self, challenge: &Challenge) -> Result<SignedChallenge, DfnsError> {
        let allowed = &challenge.allow_credentials.key;
        if !allowed
            .iter()
            .any(|credential| credential.id == self.cred_id)
        {
            return Err(DfnsError::CredentialNotAllowed {
                cred_id: self.cred_id.clone(),
                allowed: allowed
                    .iter()
                    .map(|credential| credential.id.clone())
                    .collect(),
            });
        }
        Ok(SignedChallenge {
            challenge_identifier: challenge.challenge_identifier.clone(),
            first_factor: FirstFactor {
                kind: "Key",
                credential_assertion: self.assert(&challenge.challenge),
            },
        })
    }

    /// The assertion over clientData for `challenge`, with no allow-list check.
    pub fn assert(&self, challenge: &str) -> KeyAssertion {
        let client_data = client_data_bytes(challenge);
        let signature = self.key.sign(&client_data);
        KeyAssertion {
            cred_id: self.cred_id.clone(),
            client_data: URL_SAFE_NO_PAD.encode(&client_data),
            signature: URL_SAFE_NO_PAD.encode(signature),
        }
    }
}

/// The clientData bytes for a `key.get` assertion over `challenge`.
fn client_data_bytes(challenge: &str) -> Vec<u8> {
    // Serializing a struct of two strings cannot fail.
    serde_json::to_vec(&ClientData {
        kind: "key.get",
        challenge,
    })
    .expect("clientData serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_p256;
    use crate::types::user_action::{AllowCredentials, AllowedCredential};
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;

    fn challenge(allowed: &[&str]) -> Challenge {
        Challenge {
            challenge: "NjY2MTZkNjU2Yg".into(),
            challenge_identifier: "eyJhbGciOi.challenge.id".into(),
            allow_credentials: AllowCredentials {
                key: allowed
                    .iter()
                    .map(|id| AllowedCredential {
                        id: (*id).to_owned(),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn client_data_is_key_get_with_the_challenge_verbatim() {
        assert_eq!(
            String::from_utf8(client_data_bytes("NjY2MTZkNjU2Yg")).unwrap(),
            r#"{"type":"key.get","challenge":"NjY2MTZkNjU2Yg"}"#
        );
    }

    #[test]
    fn signs_a_challenge_that_verifies_over_the_decoded_client_data() {
        let pair = generate_p256().unwrap();
        let signer = KeySigner::from_pem("Y2ktbWluZQ", pair.private_key_pem.expose()).unwrap();
        let signed = signer.sign(&challenge(&["other", "Y2ktbWluZQ"])).unwrap();
        assert_eq!(signed.challenge_identifier, "eyJhbGciOi.challenge.id");
        assert_eq!(signed.first_factor.kind, "Key");
        let assertion = &signed.first_factor.credential_assertion;
        assert_eq!(assertion.cred_id, "Y2ktbWluZQ");
        assert!(!assertion.client_data.contains('=') && !assertion.signature.contains('='));
        let client_data = URL_SAFE_NO_PAD.decode(&assertion.client_data).unwrap();
        assert_eq!(client_data, client_data_bytes("NjY2MTZkNjU2Yg"));
        let der = URL_SAFE_NO_PAD.decode(&assertion.signature).unwrap();
        let verifying =
            p256::ecdsa::VerifyingKey::from_public_key_pem(&pair.public_key_pem).unwrap();
        let signature = p256::ecdsa::Signature::from_der(&der).unwrap();
        assert!(verifying.verify(&client_data, &signature).is_ok());
    }

    #[test]
    fn refuses_to_sign_when_our_credential_is_not_allowed() {
        let pair = generate_p256().unwrap();
        let signer = KeySigner::from_pem("Y2ktbWluZQ", pair.private_key_pem.expose()).unwrap();
        match signer.sign(&challenge(&["Y2ktb3RoZXI"])) {
            Err(DfnsError::CredentialNotAllowed { cred_id, allowed }) => {
                assert_eq!(cred_id, "Y2ktbWluZQ");
                assert_eq!(allowed, vec!["Y2ktb3RoZXI".to_owned()]);
            }
            other => panic!("expected CredentialNotAllowed, got {other:?}"),
        }
        assert!(matches!(
            signer.sign(&challenge(&[])),
            Err(DfnsError::CredentialNotAllowed { .. })
        ));
    }

    #[test]
    fn debug_shows_the_credential_id_but_not_the_key() {
        let pair = generate_p256().unwrap();
        let signer = KeySigner::from_pem("Y2ktbWluZQ", pair.private_key_pem.expose()).unwrap();
        let debug = format!("{signer:?}");
        assert!(debug.contains("Y2ktbWluZQ") && debug.contains("[redacted]"));
    }
}
