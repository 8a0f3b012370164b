//! What one reconcile knows: the only copy of its state. Reads fill it (`observe`), steps report
//! what they changed as [`Change`]s that one function applies, and the planner's view is derived
//! from it each time it is asked.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::EventType;

use super::observed::{
    ApprovalView, ConnectionView, Desired, DfnsObject, DfnsView, Guard, Observed, Seals,
};
use super::renewal::{RenewalFacts, RenewalPolicy};
use crate::api::CredentialStatus;
use crate::controller::conditions::Verdict;
use crate::controller::seal::{Sealed, Sealer};
use crate::controller::secret_layout;
use dfns_client::types::permission::{ApprovalStatus, PolicyApproval};
use dfns_client::{Identity, IdentityKind};

/// The raw facts: the resource's status, its Secret and what Dfns holds. No `Debug`: the Secret
/// holds a token and a private key, and nothing here may ever be logged whole.
#[derive(Clone)]
pub struct Facts {
    pub kind: IdentityKind,
    pub generation: i64,
    pub uid: String,
    pub desired: Desired,
    pub guard: Guard,
    /// The status to record: as read, plus what this reconcile's steps changed.
    pub status: CredentialStatus,
    /// The Secret named by the spec, as last read or written.
    pub secret: Option<Secret>,
    pub dfns: DfnsFacts,
    /// The approval of the write in `status.pendingApproval`, where it was looked at.
    pub approval: Option<PolicyApproval>,
    /// Checks the seals of the ids in `status`.
    pub sealer: Arc<Sealer>,
    /// The connection's place and rules, where it exists.
    pub connection: Option<ConnectionView>,
    /// When the facts were read.
    pub now: jiff::Timestamp,
    /// The staging Secret of a renewal under way, as last read or written.
    pub staging: Option<Secret>,
    /// What may stem from a renewal's create: its pending key, or this resource's `externalId`.
    pub renewal_candidates: Vec<Candidate>,
    /// The resource's `dfns.io/renew` annotation.
    pub renew_request: Option<String>,
    /// The resource's `dfns.io/rotate-key` annotation.
    pub rotate_key_request: Option<String>,
    pub renewal_policy: RenewalPolicy,
}

/// What Dfns holds for this resource.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per reconcile
pub enum DfnsFacts {
    /// Not asked: nothing recorded or pending, or no usable connection.
    NotAsked,
    /// The recorded identity (status ids): found, or confirmed absent.
    Recorded(Option<Identity>),
    /// What may stem from an interrupted create: the same `externalId` or the pending key.
    Candidates(Vec<Candidate>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub identity: Identity,
    /// Archived by this reconcile. Dfns lists no longer show it, but its key stays burnt.
    pub archived: bool,
}

/// One effect of a step on the facts. No `Debug`, like [`Facts`]: a written Secret is in here.
#[allow(clippy::large_enum_variant)] // a few per step, moved once into the facts
pub enum Change {
    /// The Secret as written, or `None` once deleted.
    Secret(Option<Secret>),
    /// The status to record from now on.
    Status(CredentialStatus),
    /// Dfns' latest answer for the recorded identity (`None`: gone).
    Recorded(Option<Identity>),
    /// An identity archived in Dfns (a candidate, or the recorded one).
    Archived(String),
    /// The recorded identity was given up: nothing in Dfns is known for what comes next.
    Unknown,
    /// The staging Secret as written, or `None` once deleted.
    Staging(Option<Secret>),
    /// A renewal's replacement, just created.
    Candidate(Identity),
}

/// What a step did, and whether its changes must be durable before the next step.
pub struct Effect {
    pub changes: Vec<Change>,
    /// Events to publish once the changes are taken (and saved, where the step says so).
    pub events: Vec<Note>,
    pub then: Then,
}

/// One Event about the resource.
#[derive(Debug)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub text: String,
}

#[derive(Debug)]
pub enum Then {
    /// Plan the next step; status changes are written with the reconcile's final status.
    Continue,
    /// Write the status now, before the next step: the crash-safe create protocol relies on it
    /// (docs/architecture.md, "Crash-safe create").
    SaveThenContinue(Verdict),
    /// The reconcile ends here.
    Finish(Verdict),
}

impl Effect {
    pub fn then(then: Then) -> Self {
        Self {
            changes: Vec::new(),
            events: Vec::new(),
            then,
        }
    }

    pub fn changed(changes: Vec<Change>) -> Self {
        Self {
            changes,
            ..Self::then(Then::Continue)
        }
    }

    pub fn saved(changes: Vec<Change>, verdict: Verdict) -> Self {
        Self {
            changes,
            ..Self::then(Then::SaveThenContinue(verdict))
        }
    }

    pub fn with_event(mut self, type_: EventType, reason: &'static str, text: String) -> Self {
        self.events.push(Note {
            type_,
            reason,
            text,
        });
        self
    }
}

impl Facts {
    /// The planner's view, derived from the facts.
    pub fn view(&self) -> Observed {
        Observed {
            generation: self.generation,
            uid: self.uid.clone(),
            desired: self.desired.clone(),
            status: self.status.clone(),
            secret: secret_layout::classify(self.secret.as_ref(), &self.uid),
            dfns: match &self.dfns {
                DfnsFacts::NotAsked => DfnsView::NotAsked,
                DfnsFacts::Recorded(found) => DfnsView::Recorded(found.as_ref().map(view_of)),
                DfnsFacts::Candidates(candidates) => {
                    DfnsView::Candidates(candidates.iter().map(candidate_view).collect())
                }
            },
            approval: self
                .approval
                .as_ref()
                .map_or(ApprovalView::NotAsked, approval_view),
            guard: self.guard.clone(),
            seals: self.seals(),
            connection: self.connection.clone(),
            now: self.now,
            renewal: RenewalFacts {
                staging: secret_layout::classify(self.staging.as_ref(), &self.uid),
                candidates: self.renewal_candidates.iter().map(candidate_view).collect(),
                requested: self.renew_request.clone(),
                rotate_key_requested: self.rotate_key_request.clone(),
                policy: self.renewal_policy,
            },
        }
    }

    /// A renewal's candidate as Dfns last showed it.
    pub fn renewal_candidate(&self, id: &str) -> Option<Identity> {
        self.renewal_candidates
            .iter()
            .find(|c| c.identity.id == id)
            .map(|c| c.identity.clone())
    }

    /// Which ids in status this operator sealed for this resource.
    fn seals(&self) -> Seals {
        let status = &self.status;
        let check = |what, value: Option<&str>, seal: Option<&str>| {
            value.is_some_and(|v| self.sealer.verify(what, self.kind, &self.uid, v, seal))
        };
        Seals {
            recorded: check(
                Sealed::Recorded,
                status.recorded_id(),
                status.seal.as_deref(),
            ),
            retiring: status
                .retiring
                .as_ref()
                .is_some_and(|r| check(Sealed::Retiring, Some(r.id.as_str()), r.seal.as_deref())),
            pending_key: status.pending_create.as_ref().is_some_and(|p| {
                check(
                    Sealed::PendingKey,
                    Some(p.public_key_sha256.as_str()),
                    p.seal.as_deref(),
                )
            }),
            renewal_key: status
                .pending_renewal
                .as_ref()
                .and_then(|r| r.pending_create.as_ref())
                .is_some_and(|p| {
                    check(
                        Sealed::PendingKey,
                        Some(p.public_key_sha256.as_str()),
                        p.seal.as_deref(),
                    )
                }),
            key_credential: status.key_credential.as_ref().is_some_and(|k| {
                check(
                    Sealed::KeyCredential,
                    Some(k.cred_id.as_str()),
                    k.seal.as_deref(),
                )
            }),
            new_key_credential: status
                .pending_key_rotation
                .as_ref()
                .and_then(|p| p.new.as_ref())
                .is_some_and(|k| {
                    check(
                        Sealed::KeyCredential,
                        Some(k.cred_id.as_str()),
                        k.seal.as_deref(),
                    )
                }),
            retiring_key: status.retiring_key.as_ref().is_some_and(|r| {
                check(
                    Sealed::KeyCredential,
                    Some(r.credential.cred_id.as_str()),
                    r.credential.seal.as_deref(),
                )
            }),
        }
    }

    /// This operator's seal of `value` for this resource.
    pub fn seal(&self, what: Sealed, value: &str) -> String {
        self.sealer.seal(what, self.kind, &self.uid, value)
    }

    /// The Secret, if this resource owns it.
    pub fn owned_secret(&self) -> Option<&Secret> {
        self.secret
            .as_ref()
            .filter(|s| secret_layout::is_owned_by(s, &self.uid))
    }

    /// The recorded identity as Dfns last showed it.
    pub fn recorded(&self) -> Option<&Identity> {
        match &self.dfns {
            DfnsFacts::Recorded(found) => found.as_ref(),
            _ => None,
        }
    }

    /// Applies one change. The only place the facts change after they were read.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Secret(secret) => self.secret = secret,
            Change::Status(status) => self.status = status,
            Change::Recorded(found) => self.dfns = DfnsFacts::Recorded(found),
            Change::Staging(secret) => self.staging = secret,
            Change::Candidate(identity) => self.renewal_candidates.push(Candidate {
                identity,
                archived: false,
            }),
            Change::Archived(id) => {
                self.renewal_candidates
                    .iter_mut()
                    .filter(|c| c.identity.id == id)
                    .for_each(|c| c.archived = true);
                match &mut self.dfns {
                    DfnsFacts::Candidates(candidates) => candidates
                        .iter_mut()
                        .filter(|c| c.identity.id == id)
                        .for_each(|c| c.archived = true),
                    DfnsFacts::Recorded(found) if found.as_ref().is_some_and(|f| f.id == id) => {
                        *found = None
                    }
                    _ => {}
                }
            }
            Change::Unknown => self.dfns = DfnsFacts::NotAsked,
        }
    }
}

/// The planner's view of an identity that may stem from an interrupted create.
fn candidate_view(c: &Candidate) -> DfnsObject {
    DfnsObject {
        archived: c.archived,
        active: c.identity.is_active && !c.archived,
        ..view_of(&c.identity)
    }
}

/// The planner's view of a policy approval: unknown statuses keep the write waiting.
pub fn approval_view(approval: &PolicyApproval) -> ApprovalView {
    match &approval.status {
        ApprovalStatus::Approved => ApprovalView::Approved,
        ApprovalStatus::Denied | ApprovalStatus::Expired => ApprovalView::Refused {
            outcome: approval.status.as_str().to_owned(),
            reason: approval.reason().map(str::to_owned),
        },
        ApprovalStatus::Pending | ApprovalStatus::Other(_) => ApprovalView::Pending,
    }
}

/// The planner's view of a Dfns identity.
pub fn view_of(identity: &Identity) -> DfnsObject {
    DfnsObject {
        id: identity.id.clone(),
        credential_id: identity.cred_id.clone().unwrap_or_default(),
        name: identity.name.clone().unwrap_or_default(),
        active: identity.is_active,
        archived: false, // Dfns lists and GETs do not return archived identities
        key_fingerprint: identity.public_key_sha256(),
        external_id: identity.external_id.clone(),
        assignments: identity
            .permission_assignments
            .iter()
            .map(|a| (a.permission_id.clone(), a.assignment_id.clone()))
            .collect(),
    }
}
