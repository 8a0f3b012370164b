//! What to do next for a resource being deleted: apply `deletionPolicy` in Dfns, then deal with
//! the Secret, then release the finalizer. Pure, like `plan`.

use super::observed::{DfnsView, Guard, Observed, SecretState};
use super::plan::{find_orphan, unproven_candidates, unproven_message};
use crate::api::DeletionPolicy;

#[derive(Clone, Debug, PartialEq)]
pub enum CleanupStep {
    /// The connection cannot be used, so Dfns cannot be cleaned up; say how to proceed.
    Blocked {
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
}

/// `skip_cleanup` is the user's `dfns.io/skip-cleanup: "true"`: leave Dfns untouched.
pub fn next_cleanup_step(o: &Observed, skip_cleanup: bool) -> CleanupStep {
    let policy = o.desired.deletion_policy;
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
        || o.status.retiring.is_some();
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
    if let Some(retiring) = &o.status.retiring {
        return Some(CleanupStep::RetirePrevious {
            id: retiring.id.clone(),
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
        DfnsView::Candidates(candidates) => candidates
            .iter()
            .find(|c| !c.archived && o.secret_holds_token_of(&c.credential_id)),
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
