//! `/auth/pats`: personal access tokens, linked to the calling user.
use serde::Serialize;

/// PAT responses are a bare token object.
pub use super::service_account::AccessToken as PersonalAccessToken;

/// `POST /auth/pats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePatRequest {
    pub name: String,
    /// SPKI or PKCS#1 PEM.
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_valid: Option<u32>,
    /// When given, Dfns ignores `daysValid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_valid: Option<u64>,
}

/// `PUT /auth/pats/{tokenId}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePatRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_sends_seconds_valid_only_when_set() {
        let mut body = CreatePatRequest {
            name: "n".into(),
            public_key: "PEM".into(),
            permission_id: Some("pm-1".into()),
            external_id: None,
            days_valid: Some(30),
            seconds_valid: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"name": "n", "publicKey": "PEM", "permissionId": "pm-1", "daysValid": 30})
        );
        body.seconds_valid = Some(600);
        assert_eq!(serde_json::to_value(&body).unwrap()["secondsValid"], 600);
    }

    #[test]
    fn pat_response_parses_as_a_bare_token() {
        let pat: PersonalAccessToken = serde_json::from_value(serde_json::json!({
            "tokenId": "to-1", "credId": "Y2k", "isActive": false, "kind": "Pat", "linkedUserId": "us-9",
            "name": "mine", "orgId": "or-1", "publicKey": "PEM", "dateCreated": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(pat.linked_user_id.as_deref(), Some("us-9"));
        assert!(pat.access_token.is_none());
        assert!(!pat.is_active);
    }
}
