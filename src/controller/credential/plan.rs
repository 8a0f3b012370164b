//! The decision of what to do next: a pure function of the view of a reconcile's facts
//! (docs/architecture.md, "Crash-safe create" and "Lifecycle after create"). Each step is small
//! and idempotent; the reconciler performs it, takes what it changed and asks again until the
//! plan says the resource is up to date or must wait.

use super::key_rotation::{self, KeyRotationStep};
use super::observed::{ApprovalView, DfnsObject, DfnsView, Guard, Observed, SecretState};
use super::renewal::{self, RENEWAL_OPERATION_SUFFIX, RenewalStep};
use super::rules;
use crate::api::{ConditionReason, PendingApproval};
use dfns_client::IdentityKind;

#[path = "plan_approval.rs"]
mod approval;
#[path = "plan_create.rs"]
mod create;
#[path = "plan_ownership.rs"]
mod ownership;

use approval::approval_step;
pub(super) use approval::reason_suffix;
pub(super) use create::{
    create_path, find_orphan, unproven_candidates, unproven_ids, unproven_message,
};
use ownership::ownership_step;
pub(super) use ownership::{foreign_id, foreign_message, proven_ours};

/// `status.pendingApproval.outcome` of an approved create: Dfns shows its token to no one.
pub const APPROVED_WITHOUT_TOKEN: &str = "ApprovedWithoutToken";

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The connection is missing or not ready; report it and try again later.
    Wait {
        reason: ConditionReason,
        message: String,
    },
    /// Something only a person can fix; report it, change nothing.
    Stall {
        reason: ConditionReason,
        message: String,
    },
    /// Create step 1: write a fresh private key into the Secret (creating the Secret if needed).
    GenerateKey,
    /// Create step 2: record `pendingCreate` with this key fingerprint before calling Dfns.
    MarkPendingCreate {
        key_fingerprint: String,
    },
    /// Create steps 3–5: create in Dfns, write token and credential id into the Secret, record the ids.
    Create,
    /// An interrupted create did happen and the Secret holds its token: record its ids.
    Adopt(DfnsObject),
    /// An interrupted create left an active credential whose token nobody holds: deactivate and
    /// archive it (then a fresh key is generated and the create is repeated).
    RetireOrphan(DfnsObject),
    /// The recorded credential is gone or unusable: mint anew, remembering it for retirement
    /// when `retire` (it is proven this resource's and may still be active).
    LoseCredential {
        message: String,
        retire: bool,
    },
    /// The recorded id is proven this resource's by its key: seal it in status, so that it stays
    /// provable should the Secret lose the key.
    SealRecorded,
    /// The replacement of a lost credential is in place: deactivate the old one.
    RetirePrevious {
        id: String,
    },
    Activate,
    Deactivate,
    /// Someone deactivated the credential in Dfns: report it, never undo it.
    ReportDeactivatedInDfns,
    /// The user set spec.active to false after a deactivation in Dfns: forget the report.
    AcknowledgeDeactivation,
    Rename {
        name: String,
    },
    AssignPermission {
        permission_id: String,
    },
    RevokeAssignment {
        permission_id: String,
        assignment_id: String,
    },
    /// `status.assigned*` should name the assignment Dfns already has for the desired role.
    RecordAssignment {
        permission_id: Option<String>,
        assignment_id: Option<String>,
    },
    /// A write is held for a Dfns policy approval that is still pending: report it, send nothing.
    AwaitApproval {
        message: String,
    },
    /// The approval was decided against the write (or approved a create whose token nobody
    /// has): record it, so it is not looked at or retried until the spec changes.
    RecordApprovalOutcome {
        outcome: String,
        reason: Option<String>,
    },
    /// The held write was approved and done by Dfns: read the recorded identity again (the
    /// change happened outside this operator) and forget the approval.
    ApprovalGranted,
    /// The spec changed since the held write was sent: forget it and plan afresh.
    ForgetApproval,
    /// Record in status the endpoint and organization the held ids belong to (a resource from
    /// before they were recorded adopts its connection's current ones, once).
    RecordConnection,
    /// The connection's rules no longer allow the credential as it is: deactivate it in Dfns
    /// (reversible; activated again once the rules allow it).
    DeactivateNotAllowed {
        message: String,
    },
    /// A step of a renewal (`renewal.rs`).
    Renewal(RenewalStep),
    /// A step of a key rotation (`key_rotation.rs`).
    KeyRotation(KeyRotationStep),
    /// `status.renewalTime` should show the next renewal.
    RecordRenewalTime(Option<jiff::Timestamp>),
    /// Nothing to do in Dfns or the Secret.
    UpToDate,
}

/// What a step asks Dfns to do, as `status.pendingApproval.operation` names it when Dfns holds it
/// for approval; `None` for steps that send no write.
pub fn held_operation(
    step: &Step,
    kind: IdentityKind,
    recorded_id: Option<&str>,
) -> Option<String> {
    let target = || format!("{kind} {}", recorded_id.unwrap_or_default());
    Some(match step {
        Step::Create => format!("create {kind}"),
        Step::Renewal(RenewalStep::Create) => format!("create {kind}{RENEWAL_OPERATION_SUFFIX}"),
        Step::AssignPermission { permission_id } => {
            format!("assign permission {permission_id} to {}", target())
        }
        Step::RevokeAssignment {
            permission_id,
            assignment_id,
        } => format!("revoke assignment {assignment_id} of permission {permission_id}"),
        Step::Activate => format!("activate {}", target()),
        Step::Deactivate | Step::DeactivateNotAllowed { .. } => {
            format!("deactivate {}", target())
        }
        Step::Rename { name } => format!("rename {} to {name}", target()),
        Step::RetireOrphan(object) => format!("retire {kind} {}", object.id),
        Step::RetirePrevious { id } => format!("deactivate {kind} {id}"),
        _ => return None,
    })
}

/// The Dfns identity a step writes to, other than by creating one.
pub fn written_id(step: &Step, recorded_id: Option<&str>) -> Option<String> {
    match step {
        Step::Activate
        | Step::Deactivate
        | Step::DeactivateNotAllowed { .. }
        | Step::Rename { .. }
        | Step::AssignPermission { .. }
        | Step::RevokeAssignment { .. } => recorded_id.map(str::to_owned),
        Step::RetireOrphan(object) => Some(object.id.clone()),
        Step::RetirePrevious { id } => Some(id.clone()),
        _ => None,
    }
}

/// What to do next for a resource that is not being deleted.
pub fn next_step(o: &Observed) -> Step {
    // A host outside `--allowed-api-hosts` is called for nothing, so nothing else can be judged;
    // this also comes before a moved connection, whose way forward would need that host.
    if let Guard::Refused {
        reason: reason @ ConditionReason::ApiHostNotAllowed,
        message,
    } = &o.guard
    {
        return Step::Stall {
            reason: *reason,
            message: message.clone(),
        };
    }
    // Before anything else, even a connection that is not ready: what status holds belongs to
    // another endpoint or organization than the connection now names.
    if let Some(message) = o
        .connection
        .as_ref()
        .and_then(|c| rules::moved(&o.status, c))
    {
        return Step::Stall {
            reason: ConditionReason::ConnectionChanged,
            message,
        };
    }
    match &o.guard {
        Guard::ConnectionUnavailable { reason, message } => {
            // Waiting keeps the last verdict; an expired token must not stay `Ready` meanwhile.
            if o.recorded_id().is_some()
                && let Some(expired_at) = o.token_expired_at()
            {
                return expired(o, expired_at, message);
            }
            return Step::Wait {
                reason: *reason,
                message: message.clone(),
            };
        }
        // A refused request stops a create; a credential already held is judged below, by what
        // it holds (`rules::held_refusal`).
        Guard::Refused { reason, message } if o.recorded_id().is_none() => {
            return Step::Stall {
                reason: *reason,
                message: message.clone(),
            };
        }
        Guard::Refused { .. } | Guard::Allowed => {}
    }
    if let Some(connection) = &o.connection
        && rules::needs_record(&o.status, connection)
    {
        return Step::RecordConnection;
    }
    let material = match &o.secret {
        SecretState::Foreign => {
            return Step::Stall {
                reason: ConditionReason::SecretConflict,
                message: format!(
                    "Secret {} exists and is not owned by this resource; delete or rename it, or set spec.secret.name",
                    o.desired.secret_name
                ),
            };
        }
        SecretState::Missing => None,
        SecretState::Owned(material) => Some(material),
    };
    if let Some(step) = ownership_step(o) {
        return step;
    }
    if let Some(pending) = &o.status.pending_approval {
        // A replacement's create held for approval is decided like a first create, about the
        // staging Secret.
        if renewal::holds_replacement_create(o) {
            return renewal::in_staging(approval_step(&renewal::staging_view(o), pending));
        }
        return approval_step(o, pending);
    }

    let Some(recorded_id) = o.recorded_id() else {
        if let Some(unasked) = &o.status.unasked_permissions
            && unasked.generation == o.generation
        {
            return Step::Stall {
                reason: ConditionReason::UnaskedPermissions,
                message: rules::unasked_message(&unasked.id, &unasked.permission_ids),
            };
        }
        return create_path(o);
    };
    // A renewal under way goes on before the held credential is judged: after a crash between
    // the Secret's switch and its record, the Secret holds the replacement, which would look
    // like a loss of the recorded credential.
    if o.status.pending_renewal.is_some() {
        if let Guard::Refused { reason, message } = &o.guard {
            return Step::Stall {
                reason: *reason,
                message: message.clone(),
            };
        }
        return renewal::step(o);
    }
    // Likewise a key rotation: after a crash between the Secret's switch and its record, the
    // Secret holds a key credential that status does not name yet.
    if o.status.pending_key_rotation.is_some() {
        if let Guard::Refused { reason, message } = &o.guard {
            return Step::Stall {
                reason: *reason,
                message: message.clone(),
            };
        }
        let object = match &o.dfns {
            DfnsView::Recorded(Some(object)) if !object.archived => Some(object),
            _ => None,
        };
        return key_rotation::step(o, object);
    }
    // The credential this one replaced is retired once its grace period is over; a lost one at
    // once. It is retired before a new loss or renewal too: the next replacement would otherwise
    // overwrite its record and leave it active, forgotten.
    if let Some(retiring) = &o.status.retiring
        && !renewal::in_grace(&o.status, o.now)
    {
        return Step::RetirePrevious {
            id: retiring.id.clone(),
        };
    }

    // The recorded credential: is it still there and usable?
    let object = match &o.dfns {
        DfnsView::Recorded(Some(object)) if !object.archived => object,
        DfnsView::Recorded(_) => {
            return lose(
                o,
                format!("{recorded_id} is archived or missing in Dfns"),
                // Nothing to retire; an unsealed id is not carried on as this resource's.
                o.seals.recorded,
            );
        }
        // Not looked up (the reconciler always looks for a recorded id); nothing to judge.
        DfnsView::NotAsked | DfnsView::Candidates(_) => return Step::UpToDate,
    };
    match material {
        // `ownership_step` let only a proven identity through this far.
        None => {
            return lose(
                o,
                format!("Secret {} was deleted", o.desired.secret_name),
                true,
            );
        }
        // After a key rotation the Secret holds another key credential of the same identity.
        Some(m)
            if m.key_fingerprint.is_none() || !m.holds_token_of(o.held_credential_id(object)) =>
        {
            return lose(
                o,
                format!(
                    "Secret {} no longer holds the key material of {recorded_id}",
                    o.desired.secret_name
                ),
                true,
            );
        }
        Some(_) => {}
    }
    if let Some(refusal) = rules::held_refusal(o, object) {
        // Moving to an allowed role (assign it, revoke the old one) resolves it without harm.
        if matches!(o.guard, Guard::Allowed)
            && let Some(step) = permission_step(o, object)
        {
            return step;
        }
        return if object.active {
            Step::DeactivateNotAllowed {
                message: refusal.message(recorded_id),
            }
        } else {
            Step::Stall {
                reason: ConditionReason::CredentialNoLongerAllowed,
                message: refusal.message(recorded_id),
            }
        };
    }
    // The request is refused (a role, validity or deletion policy the connection does not
    // allow) while what the credential holds is still allowed: report it, change nothing.
    if let Guard::Refused { reason, message } = &o.guard {
        return Step::Stall {
            reason: *reason,
            message: message.clone(),
        };
    }
    if let Some(step) = activation_step(o, object) {
        return step;
    }
    if object.name != o.desired.display_name {
        return Step::Rename {
            name: o.desired.display_name.clone(),
        };
    }
    if let Some(step) = permission_step(o, object) {
        return step;
    }
    // Only an active identity can sign its own key credential's deactivation.
    if object.active && key_rotation::retire_due(o) {
        return Step::KeyRotation(KeyRotationStep::RetireKey);
    }
    // A deactivated credential's token is unusable anyway, and renewing it would mint an
    // active one; `Inactive` says what matters.
    if o.desired.active
        && object.active
        && let Some(trigger) = renewal::due(o)
    {
        return match &o.status.retiring {
            Some(retiring) => Step::RetirePrevious {
                id: retiring.id.clone(),
            },
            None => Step::Renewal(RenewalStep::Begin { trigger }),
        };
    }
    // A renewal replaces the key too, so it comes first; at most one previous key credential.
    if o.desired.active
        && object.active
        && let Some(trigger) = key_rotation::due(o)
    {
        return Step::KeyRotation(match &o.status.retiring_key {
            Some(_) => KeyRotationStep::RetireKey,
            None => KeyRotationStep::Begin { trigger },
        });
    }
    let next = renewal::next_renewal(o);
    if o.status.renewal_time.as_ref().map(|t| t.0) != next {
        return Step::RecordRenewalTime(next);
    }
    let next = key_rotation::next_time(o);
    if o.status.key_rotation_time.as_ref().map(|t| t.0) != next {
        return Step::KeyRotation(KeyRotationStep::RecordTime(next));
    }
    Step::UpToDate
}

/// The recorded credential is lost: mint anew, once a previous one still in its grace period is
/// retired (one previous credential at a time).
fn lose(o: &Observed, message: String, retire: bool) -> Step {
    match &o.status.retiring {
        Some(retiring) => Step::RetirePrevious {
            id: retiring.id.clone(),
        },
        None => Step::LoseCredential { message, retire },
    }
}

/// The token in the Secret is past its `exp` and the connection cannot be used to renew it:
/// never `Ready`; renewal starts as soon as the connection is back.
fn expired(o: &Observed, expired_at: jiff::Timestamp, unavailable: &str) -> Step {
    let secret = &o.desired.secret_name;
    let id = o.recorded_id().unwrap_or_default();
    Step::Stall {
        reason: ConditionReason::Expired,
        message: format!(
            "the access token of {id} in Secret {secret} expired at {expired_at}; workloads \
             using it fail. It is renewed as soon as the connection is available again: \
             {unavailable}"
        ),
    }
}

/// `spec.active` against Dfns, without undoing a deactivation someone made in Dfns.
fn activation_step(o: &Observed, object: &DfnsObject) -> Option<Step> {
    let reported = o.status.deactivated_in_dfns_at.is_some();
    match (o.desired.active, object.active) {
        (false, true) => Some(Step::Deactivate),
        // spec.active=false acknowledges a deactivation made in Dfns.
        (false, false) if reported => Some(Step::AcknowledgeDeactivation),
        // Reported: stays deactivated until the user sets spec.active to false and back.
        (true, false) if reported => None,
        // We deactivated it for spec.active=false; now the spec wants it back.
        (true, false) if o.status.active == Some(false) => Some(Step::Activate),
        // We last saw it active: someone else deactivated it.
        (true, false) => Some(Step::ReportDeactivatedInDfns),
        _ => None,
    }
}

/// `spec.permissionId` against the assignment we manage: assign the new role first, then revoke
/// the old assignment, then record — each step safe to repeat after a crash.
fn permission_step(o: &Observed, object: &DfnsObject) -> Option<Step> {
    let desired = o.desired.permission_id.as_deref();
    let recorded = o.status.assigned_permission_id.as_deref();
    let recorded_assignment = o.status.permission_assignment_id.as_deref();
    if desired == recorded
        && recorded.is_none_or(|p| object.assignment_for(p) == recorded_assignment)
    {
        return None;
    }
    if let Some(p) = desired
        && object.assignment_for(p).is_none()
    {
        return Some(Step::AssignPermission {
            permission_id: p.to_string(),
        });
    }
    if let (Some(old), Some(assignment)) = (recorded, recorded_assignment)
        && Some(old) != desired
        && object.assignments.iter().any(|(_, a)| a == assignment)
    {
        return Some(Step::RevokeAssignment {
            permission_id: old.to_string(),
            assignment_id: assignment.to_string(),
        });
    }
    Some(Step::RecordAssignment {
        permission_id: desired.map(str::to_string),
        assignment_id: desired
            .and_then(|p| object.assignment_for(p))
            .map(str::to_string),
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
