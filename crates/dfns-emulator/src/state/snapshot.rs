//! `GET /_emulator/state` and [`crate::RunningEmulator::state`]: every entity with its
//! flags, the profile in force and the change requests — never tokens or private keys (the
//! emulator holds no private keys of clients anyway).

use serde::{Deserialize, Serialize};

use super::State;
use super::model::Identity;
use crate::clock;
use crate::profile::{ApprovalOperation, Profile};
use crate::tokens::TokenKind;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateSnapshot {
    pub org_id: String,
    pub users: Vec<UserSnapshot>,
    pub service_accounts: Vec<ServiceAccountSnapshot>,
    pub pats: Vec<PatSnapshot>,
    pub credentials: Vec<CredentialSnapshot>,
    pub permissions: Vec<PermissionSnapshot>,
    pub profile: Profile,
    /// Every change request, pending or decided, oldest first.
    pub change_requests: Vec<ChangeRequestSnapshot>,
}

/// A write held for approval (see `/_emulator/change-requests/{id}/approve|deny`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRequestSnapshot {
    /// `cr-…`, as in the 202 reply.
    pub id: String,
    /// The policy approval (`GET /v2/policy-approvals/{approvalId}`).
    pub approval_id: String,
    pub operation: ApprovalOperation,
    /// `Pending`, `Applied`, `Rejected` or `Failed`.
    pub status: String,
    /// `us-…` or `to-…` of the requester.
    pub requester_id: String,
    pub entity_id: Option<String>,
    pub date_created: String,
    pub reason: Option<String>,
}

/// An organization user (not a service account).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSnapshot {
    pub user_id: String,
    pub username: String,
    pub is_active: bool,
    pub date_created: String,
    pub permission_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountSnapshot {
    pub service_account_id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub is_active: bool,
    pub archived: bool,
    pub date_created: String,
    pub token_id: String,
    pub credential_uuid: String,
    /// `None`: the token has no `exp`.
    pub expires_at: Option<String>,
    pub permission_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatSnapshot {
    pub token_id: String,
    pub linked_user_id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub is_active: bool,
    pub archived: bool,
    pub date_created: String,
    pub credential_uuid: String,
    /// `None`: the token has no `exp`.
    pub expires_at: Option<String>,
    pub permission_ids: Vec<String>,
    pub inherits_user_permissions: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSnapshot {
    pub credential_uuid: String,
    pub credential_id: String,
    /// `us-...` (user or service account) or `to-...` (PAT).
    pub owner_id: String,
    pub name: String,
    pub is_active: bool,
    pub date_created: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionSnapshot {
    pub id: String,
    pub name: String,
    pub operations: Vec<String>,
    pub is_archived: bool,
    /// Identities (`us-`/`to-`) it is assigned to.
    pub assigned_to: Vec<String>,
}

impl State {
    pub fn snapshot(&self) -> StateSnapshot {
        let permission_ids = |identity: &str| -> Vec<String> {
            self.assignments_of(identity)
                .into_iter()
                .map(|(a, _)| a.permission_id.clone())
                .collect()
        };
        let mut users: Vec<_> = self
            .users
            .values()
            .filter(|u| !u.is_service_account)
            .collect();
        users.sort_by_key(|u| u.seq);
        let mut sas: Vec<_> = self
            .users
            .values()
            .filter(|u| u.is_service_account)
            .collect();
        sas.sort_by_key(|u| u.seq);
        let mut pats: Vec<_> = self
            .tokens
            .values()
            .filter(|t| t.kind == TokenKind::Pat)
            .collect();
        pats.sort_by_key(|t| t.seq);
        let mut creds: Vec<_> = self.credentials.values().collect();
        creds.sort_by_key(|c| c.seq);
        let mut perms: Vec<_> = self.permissions.values().collect();
        perms.sort_by_key(|p| p.seq);
        let mut changes: Vec<_> = self.change_requests.values().collect();
        changes.sort_by_key(|c| c.seq);

        StateSnapshot {
            org_id: self.org_id.clone(),
            users: users
                .into_iter()
                .map(|u| UserSnapshot {
                    user_id: u.user_id.clone(),
                    username: u.username.clone(),
                    is_active: u.is_active,
                    date_created: u.date_created.clone(),
                    permission_ids: permission_ids(&u.user_id),
                })
                .collect(),
            service_accounts: sas
                .into_iter()
                .filter_map(|u| {
                    let token = self.tokens.get(u.token_id.as_deref()?)?;
                    Some(ServiceAccountSnapshot {
                        service_account_id: u.user_id.clone(),
                        name: u.name.clone(),
                        external_id: u.external_id.clone(),
                        is_active: u.is_active,
                        archived: u.archived,
                        date_created: u.date_created.clone(),
                        token_id: token.token_id.clone(),
                        credential_uuid: token.cred_uuid.clone(),
                        expires_at: token.expires_at.map(clock::iso_from_unix),
                        permission_ids: permission_ids(&u.user_id),
                    })
                })
                .collect(),
            pats: pats
                .into_iter()
                .map(|t| PatSnapshot {
                    token_id: t.token_id.clone(),
                    linked_user_id: t.linked_user_id.clone(),
                    name: t.name.clone(),
                    external_id: t.external_id.clone(),
                    is_active: t.is_active,
                    archived: t.archived,
                    date_created: t.date_created.clone(),
                    credential_uuid: t.cred_uuid.clone(),
                    expires_at: t.expires_at.map(clock::iso_from_unix),
                    permission_ids: permission_ids(&t.token_id),
                    inherits_user_permissions: t.inherits_user_permissions,
                })
                .collect(),
            credentials: creds
                .into_iter()
                .map(|c| CredentialSnapshot {
                    credential_uuid: c.uuid.clone(),
                    credential_id: c.cred_id.clone(),
                    owner_id: match &c.owner {
                        Identity::User(id) | Identity::Token(id) => id.clone(),
                    },
                    name: c.name.clone(),
                    is_active: c.is_active,
                    date_created: c.date_created.clone(),
                })
                .collect(),
            permissions: perms
                .into_iter()
                .map(|p| {
                    let mut assigned: Vec<_> = self
                        .assignments
                        .values()
                        .filter(|a| a.permission_id == p.id)
                        .collect();
                    assigned.sort_by_key(|a| a.seq);
                    PermissionSnapshot {
                        id: p.id.clone(),
                        name: p.name.clone(),
                        operations: p.operations.clone(),
                        is_archived: p.is_archived,
                        assigned_to: assigned
                            .into_iter()
                            .map(|a| a.identity_id.clone())
                            .collect(),
                    }
                })
                .collect(),
            profile: self.profile.clone(),
            change_requests: changes
                .into_iter()
                .map(|c| ChangeRequestSnapshot {
                    id: c.id.clone(),
                    approval_id: c.approval_id.clone(),
                    operation: c.operation,
                    status: c.status.as_str().to_owned(),
                    requester_id: c.requester.identity.id().to_owned(),
                    entity_id: c.entity_id.clone(),
                    date_created: c.date_created.clone(),
                    reason: c.reason.clone(),
                })
                .collect(),
        }
    }
}
