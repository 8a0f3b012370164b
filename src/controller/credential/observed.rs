//! The planner's view of one reconcile: the desired spec, the recorded status, what the Secret
//! holds and what Dfns shows. Pure data derived from the facts (`facts.rs`) each time the planner
//! is asked, never edited on its own.

pub use super::renewal::RenewalFacts;
use crate::api::{CredentialLimits, CredentialStatus, DeletionPolicy};

/// The spec, with defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub display_name: String,
    pub permission_id: Option<String>,
    pub active: bool,
    pub deletion_policy: DeletionPolicy,
    pub secret_name: String,
}

/// The Secret named by the spec, as far as the plan needs to know it.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretState {
    Missing,
    /// Exists but is not owned (controller ownerReference) by this resource.
    Foreign,
    Owned(SecretMaterial),
}

impl SecretState {
    /// Fingerprint of the key an owned Secret holds.
    pub fn key_fingerprint(&self) -> Option<&str> {
        match self {
            Self::Owned(m) => m.key_fingerprint.as_deref(),
            _ => None,
        }
    }
}

/// What an owned Secret holds; never the values themselves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecretMaterial {
    /// Fingerprint of the public half of a parseable `DFNS_PRIVATE_KEY`.
    pub key_fingerprint: Option<String>,
    /// Whether `DFNS_AUTH_TOKEN` is present and non-empty.
    pub has_token: bool,
    /// `DFNS_CRED_ID`, the credential the token belongs to.
    pub credential_id: Option<String>,
    /// The `exp` of `DFNS_AUTH_TOKEN` (read, not verified): when what workloads use stops working.
    pub token_expires_at: Option<jiff::Timestamp>,
    /// The `iat` of `DFNS_AUTH_TOKEN`: with `exp`, the token's lifetime.
    pub token_issued_at: Option<jiff::Timestamp>,
}

impl SecretMaterial {
    /// The Secret holds a usable token for this Dfns credential.
    pub fn holds_token_of(&self, credential_id: &str) -> bool {
        self.has_token && self.credential_id.as_deref() == Some(credential_id)
    }

    /// The token's expiry, where it has passed by `now`.
    pub fn expired_at(&self, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
        self.token_expires_at
            .filter(|expires_at| self.has_token && *expires_at <= now)
    }
}

/// One service account or PAT as Dfns shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DfnsObject {
    /// `us-…` for a service account, `to-…` for a PAT.
    pub id: String,
    pub credential_id: String,
    pub name: String,
    pub active: bool,
    pub archived: bool,
    /// SPKI SHA-256 fingerprint of the registered public key, where Dfns returns the key.
    pub key_fingerprint: Option<String>,
    pub external_id: Option<String>,
    /// (permissionId, assignmentId) pairs on this identity.
    pub assignments: Vec<(String, String)>,
}

impl DfnsObject {
    pub fn assignment_for(&self, permission_id: &str) -> Option<&str> {
        self.assignments
            .iter()
            .find(|(p, _)| p == permission_id)
            .map(|(_, a)| a.as_str())
    }
}

/// Dfns' answer for this resource.
#[derive(Clone, Debug, PartialEq)]
pub enum DfnsView {
    /// Not asked: nothing recorded or pending.
    NotAsked,
    /// The recorded credential (status ids): found, or confirmed absent.
    Recorded(Option<DfnsObject>),
    /// Objects that may stem from an interrupted create: same `externalId` or the pending key.
    Candidates(Vec<DfnsObject>),
}

/// Where the Dfns policy approval of a held write (`status.pendingApproval`) stands.
#[derive(Clone, Debug, PartialEq)]
pub enum ApprovalView {
    /// Not looked at: nothing held, already decided, or no approval id to look at.
    NotAsked,
    /// Still waiting for an approver (or a status the operator does not know).
    Pending,
    /// Approved: the held write has been done by Dfns.
    Approved,
    /// Denied or expired: the write will not happen.
    Refused {
        outcome: String,
        reason: Option<String>,
    },
}

/// Whether the connection lets this resource have what it asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Guard {
    Allowed,
    /// The connection is missing or not ready: wait, do nothing.
    ConnectionUnavailable {
        reason: crate::api::ConditionReason,
        message: String,
    },
    /// The request is refused by the connection's rules: stall, do nothing.
    Refused {
        reason: crate::api::ConditionReason,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub generation: i64,
    pub uid: String,
    pub desired: Desired,
    pub status: CredentialStatus,
    pub secret: SecretState,
    pub dfns: DfnsView,
    pub approval: ApprovalView,
    pub guard: Guard,
    pub seals: Seals,
    /// The connection the resource names, where it exists.
    pub connection: Option<ConnectionView>,
    /// When the facts were read: what token expiry is judged against.
    pub now: jiff::Timestamp,
    /// What renewals need: the staging Secret, the replacement's candidates, the request.
    pub renewal: RenewalFacts,
}

/// What the planner needs of the connection to judge what a credential already holds
/// (docs/architecture.md, "Connection rules").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionView {
    /// e.g. `ClusterDfnsConnection default`, for messages.
    pub display: String,
    pub api_url: String,
    /// As the spec names it, or as the connection's token showed it.
    pub org_id: Option<String>,
    /// A `ClusterDfnsConnection`'s `namespaceSelector` selects the resource's namespace.
    pub namespace_allowed: bool,
    pub allowed_permission_ids: Vec<String>,
    /// A credential without any role is allowed: a service account (no rights by default), or a
    /// PAT where `allowUnscopedTokens` is set.
    pub roleless_allowed: bool,
    pub limits: CredentialLimits,
}

/// Which ids in status carry this operator's seal for this resource (`controller/seal.rs`):
/// status is writable by others, so an unsealed id proves nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Seals {
    /// The recorded id (`serviceAccountId` / `tokenId`).
    pub recorded: bool,
    /// `retiring.id`.
    pub retiring: bool,
    /// `pendingCreate.publicKeySha256`.
    pub pending_key: bool,
    /// `pendingRenewal.pendingCreate.publicKeySha256`.
    pub renewal_key: bool,
    /// `keyCredential.credId`.
    pub key_credential: bool,
    /// `pendingKeyRotation.new.credId`.
    pub new_key_credential: bool,
    /// `retiringKey.credential.credId`.
    pub retiring_key: bool,
}

impl Observed {
    /// Dfns id of the recorded credential (service account id or token id).
    pub fn recorded_id(&self) -> Option<&str> {
        self.status.recorded_id()
    }

    /// The key credential the Secret should sign with for `object` (the recorded identity):
    /// the one a key rotation registered (sealed in status), or the identity's original one.
    /// Dfns keeps showing the original after a rotation, so this, not Dfns' `credId`, ties the
    /// Secret to its identity.
    pub fn held_credential_id<'a>(&'a self, object: &'a DfnsObject) -> &'a str {
        match &self.status.key_credential {
            Some(k) if self.seals.key_credential => &k.cred_id,
            _ => &object.credential_id,
        }
    }

    pub fn secret_holds_token_of(&self, credential_id: &str) -> bool {
        matches!(&self.secret, SecretState::Owned(m) if m.holds_token_of(credential_id))
    }

    /// When the token in the owned Secret expired, if it has.
    pub fn token_expired_at(&self) -> Option<jiff::Timestamp> {
        match &self.secret {
            SecretState::Owned(m) => m.expired_at(self.now),
            _ => None,
        }
    }
}
