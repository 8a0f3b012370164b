//! Wire types of the Dfns API.
//!
//! Request types serialize exactly the documented fields (Dfns schemas set
//! `additionalProperties: false`, so an extra field is a 400). Response types ignore fields they
//! do not know, so a newer Dfns does not break the operator.
pub mod credential;
pub mod pat;
pub mod permission;
pub mod service_account;
pub mod user_action;

use serde::Deserialize;

/// `{ "items": [...] }`, the shape of every unpaginated list.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemList<T> {
    pub items: Vec<T>,
}

/// A permission as it appears inside an identity (`permissionAssignments[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionAssignmentRef {
    pub permission_id: String,
    #[serde(default)]
    pub permission_name: Option<String>,
    /// Empty in some older responses.
    #[serde(default)]
    pub assignment_id: String,
    #[serde(default)]
    pub operations: Vec<String>,
}
