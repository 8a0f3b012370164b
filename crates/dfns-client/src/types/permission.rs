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
    /// The policy approval deciding this change (`GET /v2/policy-approvals/{approvalId}`).
    #[serde(default)]
    pub approval_id: Option<String>,
}

/// Where a policy approval stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
    Expired,
    /// A status this client does not know (Dfns may add some); callers keep waiting.
    Other(String),
}

impl ApprovalStatus {
    fn parse(text: &str) -> Self {
        match text {
            "Pending" => Self::Pending,
            // Dfns names a decision made by a policy rule rather than a person this way.
            "Approved" | "AutoApproved" => Self::Approved,
            "Denied" | "AutoDenied" | "Rejected" => Self::Denied,
            "Expired" => Self::Expired,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "Pending",
            Self::Approved => "Approved",
            Self::Denied => "Denied",
            Self::Expired => "Expired",
            Self::Other(other) => other,
        }
    }
}

impl<'de> Deserialize<'de> for ApprovalStatus {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(deserializer)?))
    }
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalDecision {
    /// `Approved` or `Denied`.
    pub value: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /v2/policy-approvals/{approvalId}`, the fields the operator follows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyApproval {
    /// `ap-...`.
    pub id: String,
    pub status: ApprovalStatus,
    #[serde(default)]
    pub decisions: Vec<ApprovalDecision>,
}

impl PolicyApproval {
    /// The reason of the decision that settled the approval: the last one whose value matches the
    /// status (a denial's reason for `Denied`), else the last given.
    pub fn reason(&self) -> Option<&str> {
        self.decisions
            .iter()
            .rev()
            .find(|d| d.value == self.status.as_str() && d.reason.is_some())
            .or_else(|| self.decisions.iter().rev().find(|d| d.reason.is_some()))
            .and_then(|d| d.reason.as_deref())
            .filter(|r| !r.trim().is_empty())
    }
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

    #[test]
    fn approval_reads_status_and_the_denial_reason() {
        let approval: PolicyApproval = serde_json::from_value(serde_json::json!({
            "id": "ap-1", "status": "Denied",
            "activity": {"kind": "Permissions:Assign"},
            "decisions": [
                {"userId": "us-a", "date": "2026-01-01T00:00:00Z", "value": "Approved", "reason": "fine"},
                {"userId": "us-b", "date": "2026-01-01T00:00:01Z", "value": "Denied", "reason": "not this role"}
            ],
            "policyEvaluations": []
        }))
        .unwrap();
        assert_eq!(approval.status, ApprovalStatus::Denied);
        assert_eq!(approval.reason(), Some("not this role"));
    }

    #[test]
    fn approval_statuses_map_known_and_keep_unknown_ones() {
        let status = |s: &str| -> ApprovalStatus {
            serde_json::from_value(serde_json::Value::String(s.into())).unwrap()
        };
        assert_eq!(status("Pending"), ApprovalStatus::Pending);
        assert_eq!(status("Approved"), ApprovalStatus::Approved);
        assert_eq!(status("AutoApproved"), ApprovalStatus::Approved);
        assert_eq!(status("Denied"), ApprovalStatus::Denied);
        assert_eq!(status("Expired"), ApprovalStatus::Expired);
        assert_eq!(status("Paused"), ApprovalStatus::Other("Paused".into()));
        let pending: PolicyApproval =
            serde_json::from_value(serde_json::json!({"id": "ap-2", "status": "Pending"})).unwrap();
        assert_eq!(pending.reason(), None);
    }
}
