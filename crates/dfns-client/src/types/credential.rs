//! `GET /auth/credentials`: the calling user's credentials (Key, Fido2, ...).
use serde::Deserialize;

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
