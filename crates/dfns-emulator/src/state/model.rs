//! Entities the emulator keeps in memory.

use std::sync::Arc;

use serde_json::Value;

use crate::crypto::PublicKey;
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
    pub expires_at: i64,
    /// The Key credential created from the `publicKey` given at creation.
    pub cred_uuid: String,
    pub public_key_pem: String,
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
