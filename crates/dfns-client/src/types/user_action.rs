//! User action signing and user login: challenges, assertions, tokens.
use serde::{Deserialize, Serialize};

use crate::sensitive::SecretString;

/// `POST /auth/action/init`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserActionInitRequest {
    /// The body of the target request exactly as it will be sent; `""` when there is none.
    pub user_action_payload: String,
    pub user_action_http_method: String,
    /// The target path without query string (what the TypeScript and Python SDKs send).
    pub user_action_http_path: String,
    pub user_action_server_kind: &'static str,
}

/// `POST /auth/login/init`. No authentication.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginInitRequest {
    pub org_id: String,
    pub username: String,
}

/// The challenge returned by both `/auth/action/init` and `/auth/login/init`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// Already base64url; it goes into clientData verbatim.
    pub challenge: String,
    pub challenge_identifier: String,
    #[serde(default)]
    pub allow_credentials: AllowCredentials,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AllowCredentials {
    #[serde(default)]
    pub key: Vec<AllowedCredential>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AllowedCredential {
    /// The credential's `credId`, not its `cr-...` uuid.
    pub id: String,
}

/// The answer to a challenge: `POST /auth/action` and `POST /auth/login` share this body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedChallenge {
    pub challenge_identifier: String,
    pub first_factor: FirstFactor,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstFactor {
    /// Always `"Key"`: the operator signs with asymmetric Key credentials only.
    pub kind: &'static str,
    pub credential_assertion: KeyAssertion,
}

/// A signature over clientData. Neither field is secret: it is single-use proof, bound to one
/// challenge.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyAssertion {
    pub cred_id: String,
    /// base64url (no padding) of the exact clientData bytes that were signed.
    pub client_data: String,
    /// base64url (no padding) of the signature (DER for ECDSA).
    pub signature: String,
}

/// `POST /auth/action` response: the single-use `X-DFNS-USERACTION` token.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserActionResponse {
    pub user_action: SecretString,
}

/// `POST /auth/login` response: the session bearer token.
#[derive(Debug, Deserialize)]
pub struct LoginResponse {
    pub token: SecretString,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_request_sends_exactly_the_documented_fields() {
        let body = UserActionInitRequest {
            user_action_payload: String::new(),
            user_action_http_method: "DELETE".into(),
            user_action_http_path: "/auth/pats/to-1".into(),
            user_action_server_kind: "Api",
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"userActionPayload": "", "userActionHttpMethod": "DELETE",
                               "userActionHttpPath": "/auth/pats/to-1", "userActionServerKind": "Api"})
        );
    }

    #[test]
    fn challenge_tolerates_unknown_and_missing_fields() {
        let challenge: Challenge = serde_json::from_value(serde_json::json!({
            "challenge": "abc", "challengeIdentifier": "eyJ.x.y",
            "allowCredentials": {"key": [{"type": "public-key", "id": "Y2kt"}], "webauthn": []},
            "supportedCredentialKinds": [], "rp": {"id": "x", "name": "y"}, "newField": true
        }))
        .unwrap();
        assert_eq!(challenge.allow_credentials.key[0].id, "Y2kt");
        let bare: Challenge =
            serde_json::from_str(r#"{"challenge":"c","challengeIdentifier":"i"}"#).unwrap();
        assert!(bare.allow_credentials.key.is_empty());
    }

    #[test]
    fn signed_challenge_has_the_documented_shape() {
        let body = SignedChallenge {
            challenge_identifier: "ci".into(),
            first_factor: FirstFactor {
                kind: "Key",
                credential_assertion: KeyAssertion {
                    cred_id: "c".into(),
                    client_data: "d".into(),
                    signature: "s".into(),
                },
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"challengeIdentifier": "ci", "firstFactor": {"kind": "Key",
                "credentialAssertion": {"credId": "c", "clientData": "d", "signature": "s"}}})
        );
    }
}
