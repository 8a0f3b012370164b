//! Writes Dfns holds for approval (docs/architecture.md, "Approvals"): what the plan does while
//! one is pending and after it was decided.

use super::*;

/// A write Dfns holds for approval (docs/architecture.md, "Approvals"): it is never sent again
/// while pending; a decision against it stands until the spec changes.
pub(in crate::controller::credential) fn approval_step(
    o: &Observed,
    pending: &PendingApproval,
) -> Step {
    let operation = &pending.operation;
    let spec_changed = pending.generation != o.generation;
    match pending.outcome.as_deref() {
        Some(APPROVED_WITHOUT_TOKEN) if !spec_changed => match find_orphan(o) {
            // Provably ours (it carries the pending key) and unusable: nobody has its token.
            Some(orphan) => Step::RetireOrphan(orphan.clone()),
            None => Step::Stall {
                reason: ConditionReason::ApprovedWithoutToken,
                message: format!(
                    "a Dfns policy approver approved \"{operation}\", but Dfns shows an approved create's \
                     token to no one, so the new identity cannot be used; the operator deactivates and \
                     archives what it created (it carries this resource's key). Exempt the operator's connection from the approval policy for creates, \
                     then change this resource's spec (or re-create the resource) to create again"
                ),
            },
        },
        Some(APPROVED_WITHOUT_TOKEN) => {
            // The key that identity was created with is never registered again.
            let key = o.secret.key_fingerprint();
            let pending_key = o
                .status
                .pending_create
                .as_ref()
                .map(|p| p.public_key_sha256.as_str());
            if key.is_none() || key == pending_key {
                Step::GenerateKey
            } else {
                Step::ForgetApproval
            }
        }
        Some(outcome) if !spec_changed => {
            let why = reason_suffix(pending);
            let decided = if outcome == "Expired" {
                "the Dfns policy approval of".to_owned()
            } else {
                "a Dfns policy approver denied".to_owned()
            };
            let tail = if outcome == "Expired" { " expired" } else { "" };
            Step::Stall {
                reason: ConditionReason::ApprovalDenied,
                message: format!(
                    "{decided} \"{operation}\"{tail}{why}; it is not sent again until the spec changes"
                ),
            }
        }
        Some(_) => Step::ForgetApproval,
        None if spec_changed => Step::ForgetApproval,
        None => match &o.approval {
            ApprovalView::Approved if o.recorded_id().is_none() => Step::RecordApprovalOutcome {
                outcome: APPROVED_WITHOUT_TOKEN.into(),
                reason: None,
            },
            ApprovalView::Approved => Step::ApprovalGranted,
            ApprovalView::Refused { outcome, reason } => Step::RecordApprovalOutcome {
                outcome: outcome.clone(),
                reason: reason.clone(),
            },
            ApprovalView::Pending | ApprovalView::NotAsked => Step::AwaitApproval {
                message: format!(
                    "waiting for a Dfns policy approval of \"{operation}\"; the request is not sent \
                     again while the approval is pending (ids in status.pendingApproval)"
                ),
            },
        },
    }
}

/// ` (reason: …)` where the approver gave one.
pub(in crate::controller::credential) fn reason_suffix(pending: &PendingApproval) -> String {
    pending
        .reason
        .as_deref()
        .map(|r| format!(" (reason: {r})"))
        .unwrap_or_default()
}
