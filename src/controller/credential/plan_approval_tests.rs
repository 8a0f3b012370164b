//! Writes Dfns holds for a policy approval: never resent while pending, continued once approved,
//! stalled when denied (until the spec changes), and an approved create whose token nobody has.

use super::*;
use crate::api::PendingApproval;

fn held(operation: &str, generation: i64) -> Option<PendingApproval> {
    Some(PendingApproval {
        operation: operation.into(),
        approval_id: Some("ap-1".into()),
        change_request_id: Some("cr-1".into()),
        requested_at: jiff::Timestamp::UNIX_EPOCH.into(),
        generation,
        outcome: None,
        reason: None,
        during_deletion: false,
    })
}

/// A ready service account whose spec now asks for pm-new, the assignment held for approval.
fn assignment_held() -> Observed {
    let mut o = ready();
    o.desired.permission_id = Some("pm-new".into());
    o.status.pending_approval =
        held("assign permission pm-new to service account us-1", 1).map(Box::new);
    o
}

/// A create held for approval: the key is pending, Dfns shows nothing yet.
fn create_held() -> Observed {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.status.pending_approval = held("create service account", 1).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![]);
    o
}

fn decided(mut o: Observed, outcome: &str, reason: Option<&str>) -> Observed {
    let pending = o.status.pending_approval.as_mut().unwrap();
    pending.outcome = Some(outcome.into());
    pending.reason = reason.map(Into::into);
    o
}

fn is_await(step: &Step) -> bool {
    matches!(step, Step::AwaitApproval { message }
        if message.contains("assign permission pm-new") || message.contains("create service account"))
}

#[test]
fn a_pending_approval_is_awaited_and_the_write_is_not_planned_again() {
    for approval in [ApprovalView::Pending, ApprovalView::NotAsked] {
        let mut o = assignment_held();
        o.approval = approval.clone();
        let step = next_step(&o);
        assert!(is_await(&step), "{approval:?}: {step:?}");
        let mut o = create_held();
        o.approval = approval.clone();
        let step = next_step(&o);
        assert!(is_await(&step), "create, {approval:?}: {step:?}");
    }
}

#[test]
fn the_pending_message_names_the_operation_and_no_change_request_id() {
    let Step::AwaitApproval { message } = next_step(&assignment_held()) else {
        panic!("awaits");
    };
    assert!(message.contains("not sent again"), "{message}");
    assert!(
        !message.contains("cr-1") && !message.contains("ap-1"),
        "{message}"
    );
}

#[test]
fn an_approved_assignment_rereads_the_identity_then_records_it() {
    let mut o = assignment_held();
    o.approval = ApprovalView::Approved;
    assert_eq!(next_step(&o), Step::ApprovalGranted);
    // Once forgotten, with Dfns showing the assignment the approver let through, it is recorded.
    o.status.pending_approval = None;
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        assignments: vec![("pm-new".into(), "as-9".into())],
        ..object("us-1", "cr-1", KEY_A)
    }));
    assert_eq!(
        next_step(&o),
        Step::RecordAssignment {
            permission_id: Some("pm-new".into()),
            assignment_id: Some("as-9".into()),
        }
    );
}

#[test]
fn a_denied_or_expired_approval_is_recorded_with_its_reason() {
    for outcome in ["Denied", "Expired"] {
        let mut o = assignment_held();
        o.approval = ApprovalView::Refused {
            outcome: outcome.into(),
            reason: Some("not this role".into()),
        };
        assert_eq!(
            next_step(&o),
            Step::RecordApprovalOutcome {
                outcome: outcome.into(),
                reason: Some("not this role".into()),
            }
        );
    }
}

#[test]
fn a_recorded_denial_stalls_with_the_reason_until_the_spec_changes() {
    let o = decided(assignment_held(), "Denied", Some("not this role"));
    match next_step(&o) {
        Step::Stall {
            reason: ConditionReason::ApprovalDenied,
            message,
        } => assert!(
            message.contains("not this role") && message.contains("assign permission pm-new"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    let mut expired = decided(assignment_held(), "Expired", None);
    assert!(matches!(
        next_step(&expired),
        Step::Stall { reason: ConditionReason::ApprovalDenied, message } if message.contains("expired")
    ));
    expired.generation = 2;
    assert_eq!(next_step(&expired), Step::ForgetApproval);
}

#[test]
fn a_spec_change_while_pending_forgets_the_held_write() {
    let mut o = assignment_held();
    o.generation = 2;
    o.approval = ApprovalView::Pending;
    assert_eq!(next_step(&o), Step::ForgetApproval);
}

#[test]
fn an_approved_create_is_recorded_as_approved_without_token_not_created_again() {
    let mut o = create_held();
    o.approval = ApprovalView::Approved;
    assert_eq!(
        next_step(&o),
        Step::RecordApprovalOutcome {
            outcome: APPROVED_WITHOUT_TOKEN.into(),
            reason: None,
        }
    );
}

#[test]
fn the_tokenless_identity_of_an_approved_create_is_retired_then_the_resource_stalls() {
    let mut o = decided(create_held(), APPROVED_WITHOUT_TOKEN, None);
    let created = object("us-7", "cr-7", KEY_A);
    o.dfns = DfnsView::Candidates(vec![created.clone()]);
    assert_eq!(next_step(&o), Step::RetireOrphan(created.clone()));
    o.dfns = DfnsView::Candidates(vec![DfnsObject {
        archived: true,
        active: false,
        ..created
    }]);
    match next_step(&o) {
        Step::Stall {
            reason: ConditionReason::ApprovedWithoutToken,
            message,
        } => assert!(
            message.contains("Exempt") && message.contains("spec"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_an_approved_create_a_spec_change_creates_again_with_a_fresh_key() {
    let mut o = decided(create_held(), APPROVED_WITHOUT_TOKEN, None);
    o.generation = 2;
    assert_eq!(next_step(&o), Step::GenerateKey);
    o.secret = key_only(KEY_B);
    assert_eq!(next_step(&o), Step::ForgetApproval);
    o.status.pending_approval = None;
    assert_eq!(
        next_step(&o),
        Step::MarkPendingCreate {
            key_fingerprint: KEY_B.into()
        }
    );
}

#[test]
fn held_operations_name_what_waits() {
    let sa = IdentityKind::ServiceAccount;
    assert_eq!(
        held_operation(&Step::Create, sa, None).as_deref(),
        Some("create service account")
    );
    assert_eq!(
        held_operation(
            &Step::AssignPermission {
                permission_id: "pm-1".into()
            },
            sa,
            Some("us-1")
        )
        .as_deref(),
        Some("assign permission pm-1 to service account us-1")
    );
    assert_eq!(
        held_operation(
            &Step::RevokeAssignment {
                permission_id: "pm-1".into(),
                assignment_id: "as-1".into()
            },
            sa,
            Some("us-1")
        )
        .as_deref(),
        Some("revoke assignment as-1 of permission pm-1")
    );
    assert_eq!(held_operation(&Step::UpToDate, sa, Some("us-1")), None);
}
