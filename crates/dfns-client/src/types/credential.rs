//! `/auth/credentials`: the calling identity's credentials (Key, Fido2, ...) — listed, and
//! registered with a Key attestation (Dfns' credential rotation guide).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCredential {
    /// `Key`, `Fido2`, `PasswordProtectedKey`, ...
    pub kind: String,
    /// The `credId` used when signing.
    pub credential_id: String,
    /// `cr-...`, used to activate or deactivate it.
    #[serde(default)]
    pub credential_uuid: Option<String>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
}

/// `POST /auth/credentials/init`.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialChallengeRequest {
    /// Always `Key` here.
    pub kind: &'static str,
}

/// The parts of the `POST /auth/credentials/init` answer a Key attestation needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialChallenge {
    pub challenge: String,
    pub challenge_identifier: String,
}

/// `POST /auth/credentials` for a Key credential.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyCredentialRequest {
    /// Always `Key` here.
    pub credential_kind: &'static str,
    pub credential_info: KeyCredentialInfo,
    pub credential_name: String,
    pub challenge_identifier: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredentialInfo {
    /// Chosen by the client: any unique base64url string.
    pub cred_id: String,
    /// base64url of `{"type":"key.create","challenge":…}`.
    pub client_data: String,
    /// base64url of `{"publicKey","signature"}`, the signature (hex) made with the new key.
    pub attestation_data: String,
}

/// `PUT /auth/credentials/activate|deactivate`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialUuidRequest {
    pub credential_uuid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_listed_credential() {
        let list: super::super::ItemList<UserCredential> = serde_json::from_value(serde_json::json!({"items": [{
            "kind": "Key", "credentialId": "Y2k", "credentialUuid": "cr-1", "dateCreated": "2026-01-01T00:00:00Z",
            "isActive": true, "name": "ci", "publicKey": "PEM", "relyingPartyId": "dfns.io", "origin": "x"
        }]}))
        .unwrap();
        assert_eq!(list.items[0].credential_id, "Y2k");
    }
}
