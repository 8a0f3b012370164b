//! `/auth/service-accounts`: a user with `isServiceAccount: true` plus one long-lived token.
use serde::{Deserialize, Serialize};

use super::PermissionAssignmentRef;
use crate::sensitive::SecretString;

/// `POST /auth/service-accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceAccountRequest {
    pub name: String,
    /// SPKI or PKCS#1 PEM.
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_valid: Option<u32>,
}

/// `PUT /auth/service-accounts/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceAccountRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Every service-account endpoint answers with this object (lists wrap it in `items`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    pub user_info: ServiceAccountUser,
    #[serde(default)]
    pub access_tokens: Vec<AccessToken>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountUser {
    /// `us-...`; this is also the service account's id in paths and permission assignments.
    pub user_id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub permission_assignments: Vec<PermissionAssignmentRef>,
}

/// A token of a service account or a PAT (PAT responses are this object at top level).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    /// Only in the create response; shown once, never again.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// `to-...`.
    pub token_id: String,
    #[serde(default)]
    pub cred_id: Option<String>,
    #[serde(default)]
    pub is_active: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub linked_user_id: Option<String>,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// PEM, an SSH-style `SHA256:...` fingerprint, or empty, depending on the Dfns revision.
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub permission_assignments: Vec<PermissionAssignmentRef>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_request_omits_unset_optional_fields() {
        let body = CreateServiceAccountRequest {
            name: "ns-robot".into(),
            public_key: "PEM".into(),
            permission_id: None,
            external_id: Some("uid-1".into()),
            days_valid: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"name": "ns-robot", "publicKey": "PEM", "externalId": "uid-1"})
        );
        assert_eq!(
            serde_json::to_string(&UpdateServiceAccountRequest::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn response_tolerates_unknown_fields_and_carries_the_token_once() {
        let account: ServiceAccount = serde_json::from_value(json!({
            "userInfo": {"userId": "us-1", "username": "sa", "name": "robot", "kind": "CustomerEmployee",
                         "isActive": true, "isServiceAccount": true, "isRegistered": true, "credentialUuid": "cr-1",
                         "permissionAssignments": [{"permissionName": "p", "permissionId": "pm-1", "assignmentId": "as-1"}]},
            "accessTokens": [{"accessToken": "eyJ.secret.x", "tokenId": "to-1", "credId": "Y2k", "isActive": true,
                              "kind": "ServiceAccount", "linkedUserId": "us-1", "linkedAppId": "", "publicKey": "PEM",
                              "dateCreated": "2026-01-01T00:00:00.000Z", "permissionAssignments": []}],
            "somethingNew": 42
        }))
        .unwrap();
        assert_eq!(
            account.user_info.permission_assignments[0].assignment_id,
            "as-1"
        );
        let token = &account.access_tokens[0];
        assert_eq!(
            token.access_token.as_ref().unwrap().expose(),
            "eyJ.secret.x"
        );
        assert!(!format!("{account:?}").contains("eyJ.secret.x"));
    }
}
