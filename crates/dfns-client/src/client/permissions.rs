//! `/permissions`: creating permissions and assigning them to identities.
use reqwest::Method;

use super::DfnsClient;
use crate::error::DfnsError;
use crate::identity::path_segment;
use crate::types::permission::{
    AssignPermissionRequest, CreatePermissionRequest, Permission, PermissionAssignment,
    PolicyApproval,
};

impl DfnsClient {
    pub async fn create_permission(
        &self,
        body: &CreatePermissionRequest,
    ) -> Result<Permission, DfnsError> {
        self.write(Method::POST, "/permissions", Some(body)).await
    }

    /// Assigns `permission_id` to an identity (`us-...` for users and service accounts, `to-...`
    /// for PATs). A policy requiring approval yields [`crate::ErrorCategory::PendingApproval`].
    pub async fn assign_permission(
        &self,
        permission_id: &str,
        identity_id: &str,
    ) -> Result<PermissionAssignment, DfnsError> {
        let path = format!("/permissions/{}/assignments", path_segment(permission_id));
        let body = AssignPermissionRequest {
            identity_id: identity_id.to_owned(),
        };
        self.write(Method::POST, &path, Some(&body)).await
    }

    pub async fn revoke_permission(
        &self,
        permission_id: &str,
        assignment_id: &str,
    ) -> Result<(), DfnsError> {
        let path = format!(
            "/permissions/{}/assignments/{}",
            path_segment(permission_id),
            path_segment(assignment_id)
        );
        self.write_ignoring_body(Method::DELETE, &path).await
    }

    /// `GET /v2/policy-approvals/{approvalId}`: where a write held for approval (a 202, see
    /// [`DfnsError::pending_approval`]) stands. The decision's reason is scrubbed like Dfns' messages.
    pub async fn approval(&self, approval_id: &str) -> Result<PolicyApproval, DfnsError> {
        let path = format!("/v2/policy-approvals/{}", path_segment(approval_id));
        let mut approval: PolicyApproval = self.read(&path).await?;
        for decision in &mut approval.decisions {
            decision.reason = decision.reason.as_deref().map(crate::error::scrub);
        }
        Ok(approval)
    }
}
