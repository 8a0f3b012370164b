//! Entities the emulator keeps in memory.

use std::sync::Arc;

use serde_json::Value;

use super::Caller;
use crate::crypto::PublicKey;
use crate::profile::ApprovalOperation;
use crate::tokens::TokenKind;

/// Who acts: an organization user or service account (by `us-` id), or a PAT (by `to-` id).
/// Credentials and user actions belong to an identity; permissions are assigned to one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Identity {
    User(String),
    Token(String),
}

impl Identity {
    pub fn id(&self) -> &str {
        match self {
            Self::User(id) | Self::Token(id) => id,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub seq: u64,
    pub user_id: String,
    pub username: String,
    pub name: String,
    pub is_active: bool,
    pub is_service_account: bool,
    pub archived: bool,
    pub external_id: Option<String>,
    pub date_created: String,
    /// For a service account: its one access token.
    pub token_id: Option<String>,
}

/// A service account's or PAT's long-lived access token (its JWT is never stored).
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub seq: u64,
    pub token_id: String,
    pub kind: TokenKind,
    pub linked_user_id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub is_active: bool,
    pub archived: bool,
    pub date_created: String,
    /// `None`: the token carries no `exp`.
    pub expires_at: Option<i64>,
    /// The Key credential created from the `publicKey` given at creation.
    pub cred_uuid: String,
    pub public_key_pem: String,
    /// `SHA256:` form of the same key (see `fingerprint`).
    pub public_key_fingerprint: String,
    /// A PAT created without `permissionId` carries its user's full rights.
    pub inherits_user_permissions: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub seq: u64,
    pub uuid: String,
    pub cred_id: String,
    pub owner: Identity,
    pub name: String,
    pub public_key_pem: String,
    pub key: Arc<PublicKey>,
    pub is_active: bool,
    pub date_created: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Permission {
    pub seq: u64,
    pub id: String,
    pub name: String,
    pub operations: Vec<String>,
    pub is_immutable: bool,
    pub is_archived: bool,
    pub date_created: String,
    pub date_updated: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Assignment {
    pub seq: u64,
    pub id: String,
    pub permission_id: String,
    pub identity_id: String,
    pub is_immutable: bool,
    pub date_created: String,
}

/// The request a user action (or its challenge) is bound to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BoundRequest {
    pub method: String,
    /// Path without query string.
    pub path: String,
    /// Body as parsed JSON; an empty body and `""` are stored as `{}`.
    pub body: Value,
}

#[derive(Clone, Debug)]
pub(crate) enum ChallengePurpose {
    Login {
        user_id: String,
    },
    Action {
        identity: Identity,
        request: BoundRequest,
    },
    CredentialCreate {
        identity: Identity,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Challenge {
    pub purpose: ChallengePurpose,
    pub challenge: String,
    pub expires_at: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct UserAction {
    pub identity: Identity,
    pub request: BoundRequest,
    pub expires_at: i64,
    pub used: bool,
}

/// Where a change request stands (Dfns' change-request statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeStatus {
    Pending,
    /// Approved and the write done.
    Applied,
    /// Denied.
    Rejected,
    /// Approved, but the write was refused when done (e.g. the identity is gone by then).
    Failed,
}

impl ChangeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Applied => "Applied",
            Self::Rejected => "Rejected",
            Self::Failed => "Failed",
        }
    }
}

/// A write held back by an approval policy: what to do once approved, and its approval.
#[derive(Clone, Debug)]
pub(crate) struct ChangeRequest {
    pub seq: u64,
    /// `cr-…` (the documented change-request id).
    pub id: String,
    /// The policy approval deciding it (`GET /v2/policy-approvals/{id}`).
    pub approval_id: String,
    pub operation: ApprovalOperation,
    /// Who asked; the write is done as this caller once approved.
    pub requester: Caller,
    /// Path parameters of the held request (permission id, assignment id), in path order.
    pub path_ids: Vec<String>,
    /// The request body as sent (done again, unchanged, on approval).
    pub raw_body: Vec<u8>,
    /// Set when known: the entity changed, or the one created once applied.
    pub entity_id: Option<String>,
    pub status: ChangeStatus,
    pub date_created: String,
    pub date_resolved: Option<String>,
    /// The approver's reason (deny) or why the approved write failed.
    pub reason: Option<String>,
}
