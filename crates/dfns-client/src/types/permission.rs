//! `/permissions/{id}/assignments`: giving an identity (user, service account, PAT) a role.
use serde::{Deserialize, Serialize};

/// `POST /permissions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePermissionRequest {
    pub name: String,
    /// Operation names such as `Auth:Pats:Create`; at least one.
    pub operations: Vec<String>,
}

/// A role: a named set of operations.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// `pm-...`.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub operations: Vec<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub is_immutable: bool,
    #[serde(default)]
    pub is_archived: bool,
}

/// `POST /permissions/{permissionId}/assignments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignPermissionRequest {
    /// A user id (`us-...`, also a service account's id) or a PAT's token id (`to-...`).
    pub identity_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionAssignment {
    /// `as-...`.
    pub id: String,
    pub permission_id: String,
    pub identity_id: String,
    #[serde(default)]
    pub is_immutable: bool,
    #[serde(default)]
    pub date_created: Option<String>,
    #[serde(default)]
    pub date_updated: Option<String>,
}

/// The body of a 202: the change waits for a policy approver.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequest {
    /// `cr-...`.
    pub id: String,
    #[serde(default)]
    pub status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_round_trip_shapes() {
        let body = AssignPermissionRequest {
            identity_id: "to-1".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"identityId":"to-1"}"#
        );
        let assignment: PermissionAssignment = serde_json::from_value(serde_json::json!({
            "id": "as-1", "permissionId": "pm-1", "identityId": "to-1", "isImmutable": false,
            "dateCreated": "2026-01-01T00:00:00Z", "dateUpdated": "2026-01-01T00:00:00Z", "extra": null
        }))
        .unwrap();
        assert_eq!(assignment.id, "as-1");
    }
}
