//! What to do next for a resource being deleted: apply `deletionPolicy` in Dfns, then deal with
//! the Secret, then release the finalizer. Pure, like `plan`.

use super::observed::{ApprovalView, DfnsView, Guard, Observed, SecretState};
use super::plan::{
    find_orphan, foreign_id, foreign_message, proven_ours, reason_suffix, unproven_candidates,
    unproven_message,
};
use super::renewal;
use super::rules;
use crate::api::DeletionPolicy;

#[derive(Clone, Debug, PartialEq)]
pub enum CleanupStep {
    /// The connection cannot be used, so Dfns cannot be cleaned up; say how to proceed.
    Blocked {
        message: String,
    },
    /// An id in status cannot be proven this resource's: report it, touch nothing in Dfns.
    Foreign {
        message: String,
    },
    /// A lost credential still waiting for retirement: deactivate it.
    RetirePrevious {
        id: String,
    },
    /// An interrupted create left a credential nobody holds the token of: retire it.
    RetireOrphan {
        id: String,
    },
    Deactivate {
        id: String,
    },
    Archive {
        id: String,
    },
    /// Keep the Secret but drop its ownerReference, so garbage collection leaves it alone.
    ReleaseSecret,
    DeleteSecret,
    /// Dfns and the Secret are as the policy wants: remove the finalizer.
    RemoveFinalizer,
    /// A `deletionPolicy` write is held for a Dfns policy approval: wait, send nothing.
    AwaitApproval {
        message: String,
    },
    /// The held write was decided against: record it (the deletion then stays blocked).
    RecordApprovalOutcome {
        outcome: String,
        reason: Option<String>,
    },
    /// The held write was approved and done by Dfns: read the identity again, forget the approval.
    ApprovalGranted,
    /// A write held before the deletion began no longer matters: forget it.
    ForgetApproval,
}

impl CleanupStep {
    /// The Dfns identity this step writes to.
    pub fn written_id(&self) -> Option<&str> {
        match self {
            Self::RetirePrevious { id }
            | Self::RetireOrphan { id }
            | Self::Deactivate { id }
            | Self::Archive { id } => Some(id),
            _ => None,
        }
    }
}

/// `skip_cleanup` is the user's `dfns.io/skip-cleanup: "true"`: leave Dfns untouched.
/// The connection's `credentialLimits` decide whether it is honoured and which deletion policy
/// applies (`rules::skip_cleanup_honoured`, `rules::deletion_policy`).
pub fn next_cleanup_step(o: &Observed, skip_cleanup: bool) -> CleanupStep {
    let policy = rules::deletion_policy(o);
    let skip_cleanup = skip_cleanup && rules::skip_cleanup_honoured(o);
    if let Some(pending) = &o.status.pending_approval {
        if skip_cleanup || !pending.during_deletion {
            return CleanupStep::ForgetApproval;
        }
        let operation = &pending.operation;
        if let Some(outcome) = &pending.outcome {
            let why = reason_suffix(pending);
            return CleanupStep::Blocked {
                message: format!(
                    "the Dfns policy approval of \"{operation}\" ended {outcome}{why}, so Dfns cannot \
                     be cleaned up and it is not sent again; annotate this resource with \
                     dfns.io/skip-cleanup=\"true\" to release it without touching Dfns"
                ),
            };
        }
        return match &o.approval {
            ApprovalView::Approved => CleanupStep::ApprovalGranted,
            ApprovalView::Refused { outcome, reason } => CleanupStep::RecordApprovalOutcome {
                outcome: outcome.clone(),
                reason: reason.clone(),
            },
            ApprovalView::Pending | ApprovalView::NotAsked => CleanupStep::AwaitApproval {
                message: format!(
                    "deleting: waiting for a Dfns policy approval of \"{operation}\"; it is not sent \
                     again while the approval is pending (ids in status.pendingApproval)"
                ),
            },
        };
    }
    if !skip_cleanup && let Some(step) = dfns_cleanup(o, policy) {
        return step;
    }
    match (&o.secret, policy) {
        (SecretState::Owned(_), DeletionPolicy::Retain) => CleanupStep::ReleaseSecret,
        (SecretState::Owned(_), DeletionPolicy::Deactivate | DeletionPolicy::Archive) => {
            CleanupStep::DeleteSecret
        }
        // Missing, or not ours (a released Secret no longer names us as owner).
        _ => CleanupStep::RemoveFinalizer,
    }
}

fn dfns_cleanup(o: &Observed, policy: DeletionPolicy) -> Option<CleanupStep> {
    let touches_dfns = o.recorded_id().is_some()
        || o.status.pending_create.is_some()
        || o.status.retiring.is_some()
        || o.status.pending_renewal.is_some();
    if !touches_dfns {
        return None;
    }
    if let Guard::ConnectionUnavailable { message, .. } = &o.guard {
        return Some(CleanupStep::Blocked {
            message: format!(
                "cannot clean up in Dfns: {message}. Fix the connection, or annotate this resource with \
                 dfns.io/skip-cleanup=\"true\" to release it without touching Dfns"
            ),
        });
    }
    if let Some(moved) = o
        .connection
        .as_ref()
        .and_then(|c| rules::moved(&o.status, c))
    {
        return Some(CleanupStep::Blocked {
            message: format!("deleting waits: {moved}"),
        });
    }
    if let Some((id, field)) = foreign_id(o) {
        return Some(CleanupStep::Foreign {
            message: format!(
                "{}; or annotate this resource with dfns.io/skip-cleanup=\"true\" to release it without touching Dfns",
                foreign_message(id, field)
            ),
        });
    }
    if let Some(retiring) = &o.status.retiring {
        return Some(CleanupStep::RetirePrevious {
            id: retiring.id.clone(),
        });
    }
    // A renewal's replacement that was created but never switched to: nobody will use it.
    if let Some(orphan) = find_orphan(&renewal::staging_view(o)) {
        return Some(CleanupStep::RetireOrphan {
            id: orphan.id.clone(),
        });
    }
    let unproven = unproven_candidates(o);
    if !unproven.is_empty() {
        return Some(CleanupStep::Blocked {
            message: format!(
                "{}; or annotate this resource with dfns.io/skip-cleanup=\"true\" to release it",
                unproven_message(&unproven)
            ),
        });
    }
    if let Some(orphan) = find_orphan(o) {
        return Some(CleanupStep::RetireOrphan {
            id: orphan.id.clone(),
        });
    }
    let ours = match &o.dfns {
        DfnsView::Recorded(Some(object)) => Some(object),
        // An unfinished create whose token the Secret already holds is ours all the same.
        DfnsView::Candidates(candidates) => candidates.iter().find(|c| {
            !c.archived && o.secret_holds_token_of(&c.credential_id) && proven_ours(o, c)
        }),
        DfnsView::Recorded(None) | DfnsView::NotAsked => None,
    }?;
    match policy {
        DeletionPolicy::Deactivate if ours.active && !ours.archived => {
            Some(CleanupStep::Deactivate {
                id: ours.id.clone(),
            })
        }
        DeletionPolicy::Archive if !ours.archived => Some(CleanupStep::Archive {
            id: ours.id.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
#[path = "cleanup_plan_tests.rs"]
mod tests;
