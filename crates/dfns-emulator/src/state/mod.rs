//! The in-memory store: one mutex around all entities. Handlers lock it for short, synchronous
//! sections only (never across `.await`), which keeps every request's checks and changes atomic.

pub(crate) mod model;
pub mod snapshot;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;

use crate::crypto::PublicKey;
use crate::error::{ApiError, ApiResult};
use crate::profile::Profile;
use crate::tokens::{AccessClaims, TokenKind};
use crate::{clock, ids, operations};
use model::*;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub kind: TokenKind,
    /// The identity that owns credentials and user actions (`us-` or, for a PAT, `to-`).
    pub identity: Identity,
    /// The user whose rights bound the caller (the PAT's owner for a PAT).
    pub user_id: String,
}

impl Caller {
    /// Describes the caller in error messages, e.g. `CustomerEmployee us-...`.
    pub fn describe(&self) -> String {
        match self.kind {
            TokenKind::Temp => format!("CustomerEmployee {}", self.user_id),
            TokenKind::ServiceAccount => format!("ServiceAccount {}", self.user_id),
            TokenKind::Pat => format!("PersonalAccessToken {}", self.identity.id()),
        }
    }
}

/// What the bootstrap admin is made of; kept so that a reset restores the same admin.
#[derive(Clone, Debug)]
pub(crate) struct AdminSeed {
    pub org_id: String,
    pub user_id: String,
    pub username: String,
    pub cred_uuid: String,
    pub cred_id: String,
    pub public_key_pem: String,
    pub key: Arc<PublicKey>,
    pub permission_id: String,
    pub assignment_id: String,
    /// The organization's `linkedAppId` (`ap-…`).
    pub app_id: String,
}

pub(crate) struct State {
    pub org_id: String,
    pub app_id: String,
    /// Read on every request that a switch affects; held in the state so one lock gives a
    /// consistent view of both.
    pub profile: Profile,
    seq: u64,
    pub users: HashMap<String, User>,
    pub tokens: HashMap<String, AccessToken>,
    pub credentials: HashMap<String, Credential>,
    /// credId → credentialUuid
    pub cred_ids: HashMap<String, String>,
    pub permissions: HashMap<String, Permission>,
    pub assignments: HashMap<String, Assignment>,
    pub challenges: HashMap<String, Challenge>,
    pub user_actions: HashMap<String, UserAction>,
    pub change_requests: HashMap<String, ChangeRequest>,
    last_sweep: i64,
}

/// Expired challenges and user actions are swept at most this often (seconds), so a busy
/// emulator does not rescan them on every insert.
const SWEEP_INTERVAL_SECS: i64 = 10;

impl State {
    pub fn seeded(seed: &AdminSeed, profile: Profile) -> Self {
        let now = clock::iso_now();
        let mut state = Self {
            org_id: seed.org_id.clone(),
            app_id: seed.app_id.clone(),
            profile,
            seq: 0,
            users: HashMap::new(),
            tokens: HashMap::new(),
            credentials: HashMap::new(),
            cred_ids: HashMap::new(),
            permissions: HashMap::new(),
            assignments: HashMap::new(),
            challenges: HashMap::new(),
            user_actions: HashMap::new(),
            change_requests: HashMap::new(),
            last_sweep: clock::unix_now(),
        };
        let seq = state.next_seq();
        state.users.insert(
            seed.user_id.clone(),
            User {
                seq,
                user_id: seed.user_id.clone(),
                username: seed.username.clone(),
                name: seed.username.clone(),
                is_active: true,
                is_service_account: false,
                archived: false,
                external_id: None,
                date_created: now.clone(),
                token_id: None,
            },
        );
        state.insert_credential(Credential {
            seq: 0,
            uuid: seed.cred_uuid.clone(),
            cred_id: seed.cred_id.clone(),
            owner: Identity::User(seed.user_id.clone()),
            name: "bootstrap admin key".to_owned(),
            public_key_pem: seed.public_key_pem.clone(),
            key: seed.key.clone(),
            is_active: true,
            date_created: now.clone(),
        });
        let seq = state.next_seq();
        state.permissions.insert(
            seed.permission_id.clone(),
            Permission {
                seq,
                id: seed.permission_id.clone(),
                name: "DfnsFullAdminAccess".to_owned(),
                operations: operations::ALL.iter().map(|s| s.to_string()).collect(),
                is_immutable: true,
                is_archived: false,
                date_created: now.clone(),
                date_updated: now.clone(),
            },
        );
        let seq = state.next_seq();
        state.assignments.insert(
            seed.assignment_id.clone(),
            Assignment {
                seq,
                id: seed.assignment_id.clone(),
                permission_id: seed.permission_id.clone(),
                identity_id: seed.user_id.clone(),
                is_immutable: true,
                date_created: now,
            },
        );
        state
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn insert_credential(&mut self, mut cred: Credential) {
        cred.seq = self.next_seq();
        self.cred_ids
            .insert(cred.cred_id.clone(), cred.uuid.clone());
        self.credentials.insert(cred.uuid.clone(), cred);
    }

    /// Creates a Key credential for `owner` from a parsed public key; returns its uuid.
    pub fn new_key_credential(
        &mut self,
        owner: Identity,
        name: &str,
        pem: &str,
        key: PublicKey,
    ) -> String {
        let uuid = ids::new_id("cr");
        self.insert_credential(Credential {
            seq: 0,
            uuid: uuid.clone(),
            cred_id: ids::new_cred_id(),
            owner,
            name: name.to_owned(),
            public_key_pem: pem.to_owned(),
            key: Arc::new(key),
            is_active: true,
            date_created: clock::iso_now(),
        });
        uuid
    }

    /// Maps verified bearer-token claims to a caller; unknown or deactivated → 401.
    pub fn authenticate(&self, claims: &AccessClaims) -> ApiResult<Caller> {
        let meta = &claims.app_metadata;
        let refused =
            || ApiError::unauthorized("Not Authorized: the token is unknown or deactivated");
        if meta.org_id != self.org_id {
            return Err(refused());
        }
        let user_ok = |user_id: &str, service_account: bool| {
            self.users.get(user_id).is_some_and(|u| {
                u.is_active && !u.archived && u.is_service_account == service_account
            })
        };
        let token_ok = |kind: TokenKind| {
            let token = self.tokens.get(meta.token_id.as_deref()?)?;
            (token.kind == kind
                && token.is_active
                && !token.archived
                && token.linked_user_id == meta.user_id)
                .then_some(token)
        };
        match meta.token_kind {
            TokenKind::Temp if user_ok(&meta.user_id, false) => Ok(Caller {
                kind: TokenKind::Temp,
                identity: Identity::User(meta.user_id.clone()),
                user_id: meta.user_id.clone(),
            }),
            TokenKind::ServiceAccount if user_ok(&meta.user_id, true) => {
                token_ok(TokenKind::ServiceAccount).ok_or_else(refused)?;
                Ok(Caller {
                    kind: TokenKind::ServiceAccount,
                    identity: Identity::User(meta.user_id.clone()),
                    user_id: meta.user_id.clone(),
                })
            }
            // A PAT works only while its owner is active: deactivating a user stops its PATs.
            TokenKind::Pat if user_ok(&meta.user_id, false) => {
                let token = token_ok(TokenKind::Pat).ok_or_else(refused)?;
                Ok(Caller {
                    kind: TokenKind::Pat,
                    identity: Identity::Token(token.token_id.clone()),
                    user_id: meta.user_id.clone(),
                })
            }
            _ => Err(refused()),
        }
    }

    /// Operations granted by the live assignments of one identity.
    pub fn assigned_operations(&self, identity_id: &str) -> BTreeSet<String> {
        self.assignments
            .values()
            .filter(|a| a.identity_id == identity_id)
            .filter_map(|a| self.permissions.get(&a.permission_id))
            .filter(|p| !p.is_archived)
            .flat_map(|p| p.operations.iter().cloned())
            .collect()
    }

    /// A PAT's effective rights are the intersection of its own with its user's.
    pub fn effective_operations(&self, caller: &Caller) -> BTreeSet<String> {
        let user_ops = self.assigned_operations(&caller.user_id);
        match &caller.identity {
            Identity::Token(token_id) => {
                let inherits = self
                    .tokens
                    .get(token_id)
                    .is_some_and(|t| t.inherits_user_permissions);
                if inherits {
                    user_ops
                } else {
                    let own = self.assigned_operations(token_id);
                    user_ops.intersection(&own).cloned().collect()
                }
            }
            Identity::User(_) => user_ops,
        }
    }

    pub fn require(&self, caller: &Caller, operation: &str) -> ApiResult<()> {
        if self.effective_operations(caller).contains(operation) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} is not authorized to perform operation ({operation})",
                caller.describe()
            ))
            .with_details(serde_json::json!({ "operation": operation })))
        }
    }

    pub fn active_credentials(&self, owner: &Identity) -> Vec<&Credential> {
        let mut creds: Vec<&Credential> = self
            .credentials
            .values()
            .filter(|c| &c.owner == owner && c.is_active)
            .collect();
        creds.sort_by_key(|c| c.seq);
        creds
    }

    pub fn credential_by_cred_id(&self, cred_id: &str) -> Option<&Credential> {
        self.credentials.get(self.cred_ids.get(cred_id)?)
    }

    /// Assignments held by one identity, with their permissions, oldest first.
    pub fn assignments_of(&self, identity_id: &str) -> Vec<(&Assignment, &Permission)> {
        let mut out: Vec<_> = self
            .assignments
            .values()
            .filter(|a| a.identity_id == identity_id)
            .filter_map(|a| Some((a, self.permissions.get(&a.permission_id)?)))
            .collect();
        out.sort_by_key(|(a, _)| a.seq);
        out
    }

    pub fn assign(
        &mut self,
        permission_id: &str,
        identity_id: &str,
        is_immutable: bool,
    ) -> ApiResult<String> {
        let permission = self
            .permissions
            .get(permission_id)
            .ok_or_else(|| ApiError::not_found(format!("permission {permission_id} not found")))?;
        if permission.is_archived {
            return Err(ApiError::bad_request(format!(
                "permission {permission_id} is archived"
            )));
        }
        if self
            .assignments
            .values()
            .any(|a| a.permission_id == permission_id && a.identity_id == identity_id)
        {
            return Err(ApiError::conflict(format!(
                "permission {permission_id} is already assigned to {identity_id}"
            )));
        }
        let id = ids::new_id("as");
        let seq = self.next_seq();
        self.assignments.insert(
            id.clone(),
            Assignment {
                seq,
                id: id.clone(),
                permission_id: permission_id.to_owned(),
                identity_id: identity_id.to_owned(),
                is_immutable,
                date_created: clock::iso_now(),
            },
        );
        Ok(id)
    }

    pub fn insert_challenge(&mut self, jti: String, challenge: Challenge, now: i64) {
        self.sweep_expired(now);
        self.challenges.insert(jti, challenge);
    }

    pub fn insert_user_action(&mut self, jti: String, action: UserAction, now: i64) {
        self.sweep_expired(now);
        self.user_actions.insert(jti, action);
    }

    /// Drops expired challenges and user actions (used ones are kept until they expire, so
    /// that a replay is answered "already used").
    fn sweep_expired(&mut self, now: i64) {
        if now - self.last_sweep < SWEEP_INTERVAL_SECS {
            return;
        }
        self.last_sweep = now;
        self.challenges.retain(|_, c| c.expires_at > now);
        self.user_actions.retain(|_, a| a.expires_at > now);
    }
}

/// Shared handle to the state.
pub(crate) struct Store {
    seed: AdminSeed,
    /// The start-up profile, restored by a reset.
    profile: Profile,
    inner: Mutex<State>,
}

impl Store {
    pub fn new(seed: AdminSeed, profile: Profile) -> Self {
        let state = State::seeded(&seed, profile.clone());
        Self {
            seed,
            profile,
            inner: Mutex::new(state),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves state that was valid before the panicking
        // request; keep serving rather than poisoning every later request.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Back to the bootstrap state: only the admin, its key and `DfnsFullAdminAccess`, and the
    /// start-up profile.
    pub fn reset(&self) {
        *self.lock() = State::seeded(&self.seed, self.profile.clone());
    }
}

/// 404 for ids that are unknown or archived.
pub(crate) fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("{what} {id} not found"))
}
