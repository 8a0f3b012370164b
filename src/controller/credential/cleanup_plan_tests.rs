//! Deletion under each policy, with unfinished creates, lost credentials and a broken connection.

use super::*;
use crate::api::{ConditionReason, CredentialStatus, PendingCreate, RetiringCredential};
use crate::controller::credential::observed::{
    ApprovalView, Desired, DfnsObject, Seals, SecretMaterial,
};

fn ready(policy: DeletionPolicy) -> Observed {
    let status = CredentialStatus {
        service_account_id: Some("us-1".into()),
        credential_id: Some("cr-1".into()),
        ..Default::default()
    };
    Observed {
        generation: 1,
        uid: "uid-1".into(),
        desired: Desired {
            display_name: "ns-app".into(),
            permission_id: None,
            active: true,
            deletion_policy: policy,
            secret_name: "app".into(),
        },
        status,
        secret: SecretState::Owned(SecretMaterial {
            key_fingerprint: Some("k".into()),
            has_token: true,
            credential_id: Some("cr-1".into()),
            token_expires_at: None,
            token_issued_at: None,
        }),
        dfns: DfnsView::Recorded(Some(active_object())),
        approval: ApprovalView::NotAsked,
        guard: Guard::Allowed,
        // What this operator recorded carries its seal; tests of unsealed ids clear these.
        seals: Seals {
            recorded: true,
            retiring: true,
            pending_key: true,
            renewal_key: true,
            key_credential: true,
            new_key_credential: true,
            retiring_key: true,
        },
        connection: None,
        now: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        renewal: Default::default(),
    }
}

fn active_object() -> DfnsObject {
    DfnsObject {
        id: "us-1".into(),
        credential_id: "cr-1".into(),
        active: true,
        ..Default::default()
    }
}

#[test]
fn deactivate_policy_deactivates_then_deletes_the_secret_then_releases() {
    let mut o = ready(DeletionPolicy::Deactivate);
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::Deactivate { id: "us-1".into() }
    );
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        active: false,
        ..active_object()
    }));
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::DeleteSecret);
    o.secret = SecretState::Missing;
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::RemoveFinalizer);
}

#[test]
fn archive_policy_archives() {
    let mut o = ready(DeletionPolicy::Archive);
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::Archive { id: "us-1".into() }
    );
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        archived: true,
        active: false,
        ..active_object()
    }));
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::DeleteSecret);
}

#[test]
fn retain_policy_keeps_dfns_and_the_secret_without_its_owner_reference() {
    let mut o = ready(DeletionPolicy::Retain);
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::ReleaseSecret);
    o.secret = SecretState::Foreign;
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::RemoveFinalizer);
}

#[test]
fn an_unfinished_create_is_retired_on_delete_even_with_retain() {
    let mut o = ready(DeletionPolicy::Retain);
    o.status.service_account_id = None;
    o.status.pending_create = Some(Box::new(PendingCreate {
        started_at: jiff::Timestamp::UNIX_EPOCH.into(),
        public_key_sha256: "k2".into(),
        preexisting: vec![],
        seal: None,
    }));
    o.secret = SecretState::Owned(SecretMaterial {
        key_fingerprint: Some("k2".into()),
        ..Default::default()
    });
    let orphan = DfnsObject {
        id: "us-9".into(),
        credential_id: "cr-9".into(),
        active: true,
        key_fingerprint: Some("k2".into()),
        ..Default::default()
    };
    o.dfns = DfnsView::Candidates(vec![orphan.clone()]);
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::RetireOrphan { id: "us-9".into() }
    );
    // Shown without key or externalId, it may be someone else's: blocked, not retired.
    o.dfns = DfnsView::Candidates(vec![DfnsObject {
        key_fingerprint: None,
        ..orphan
    }]);
    assert!(matches!(
        next_cleanup_step(&o, false),
        CleanupStep::Blocked { message } if message.contains("us-9")
    ));
}

#[test]
fn a_lost_credential_waiting_for_retirement_is_deactivated_on_delete() {
    let mut o = ready(DeletionPolicy::Deactivate);
    o.status.retiring = Some(Box::new(RetiringCredential {
        id: "us-0".into(),
        public_key_sha256: None,
        seal: None,
        retire_at: None,
    }));
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::RetirePrevious { id: "us-0".into() }
    );
}

#[test]
fn a_broken_connection_blocks_cleanup_and_says_how_to_proceed() {
    let mut o = ready(DeletionPolicy::Deactivate);
    o.guard = Guard::ConnectionUnavailable {
        reason: ConditionReason::ConnectionNotFound,
        message: "gone".into(),
    };
    let CleanupStep::Blocked { message } = next_cleanup_step(&o, false) else {
        panic!("expected Blocked")
    };
    assert!(message.contains("dfns.io/skip-cleanup"), "{message}");
}

#[test]
fn skip_cleanup_leaves_dfns_untouched() {
    let mut o = ready(DeletionPolicy::Deactivate);
    o.guard = Guard::ConnectionUnavailable {
        reason: ConditionReason::ConnectionNotFound,
        message: "gone".into(),
    };
    assert_eq!(next_cleanup_step(&o, true), CleanupStep::DeleteSecret);
}

fn held_during_deletion() -> crate::api::PendingApproval {
    crate::api::PendingApproval {
        operation: "deactivate service account us-1".into(),
        approval_id: Some("ap-1".into()),
        change_request_id: Some("cr-9".into()),
        requested_at: jiff::Timestamp::UNIX_EPOCH.into(),
        generation: 2,
        outcome: None,
        reason: None,
        during_deletion: true,
    }
}

#[test]
fn a_deletion_write_held_for_approval_is_waited_for_and_never_resent() {
    let mut o = ready(DeletionPolicy::Deactivate);
    o.status.pending_approval = Some(Box::new(held_during_deletion()));
    for approval in [ApprovalView::NotAsked, ApprovalView::Pending] {
        o.approval = approval;
        assert!(matches!(
            next_cleanup_step(&o, false),
            CleanupStep::AwaitApproval { message } if message.contains("deactivate service account us-1") && !message.contains("cr-9")
        ));
    }
    o.approval = ApprovalView::Approved;
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::ApprovalGranted);
}

#[test]
fn a_denied_deletion_write_blocks_the_deletion_until_skip_cleanup_releases_it() {
    let mut o = ready(DeletionPolicy::Deactivate);
    o.status.pending_approval = Some(Box::new(held_during_deletion()));
    o.approval = ApprovalView::Refused {
        outcome: "Denied".into(),
        reason: Some("not today".into()),
    };
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::RecordApprovalOutcome {
            outcome: "Denied".into(),
            reason: Some("not today".into())
        }
    );
    let mut decided = held_during_deletion();
    decided.outcome = Some("Denied".into());
    decided.reason = Some("not today".into());
    o.status.pending_approval = Some(Box::new(decided));
    assert!(matches!(
        next_cleanup_step(&o, false),
        CleanupStep::Blocked { message } if message.contains("not today") && message.contains("dfns.io/skip-cleanup")
    ));
    assert_eq!(next_cleanup_step(&o, true), CleanupStep::ForgetApproval);
}

#[test]
fn a_write_held_before_the_deletion_began_is_forgotten_by_it() {
    let mut o = ready(DeletionPolicy::Deactivate);
    let mut assignment = held_during_deletion();
    assignment.operation = "assign permission pm-1 to service account us-1".into();
    assignment.during_deletion = false;
    o.status.pending_approval = Some(Box::new(assignment));
    assert_eq!(next_cleanup_step(&o, false), CleanupStep::ForgetApproval);
    o.status.pending_approval = None;
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::Deactivate { id: "us-1".into() }
    );
}

#[test]
fn a_deletion_during_a_renewal_retires_the_replacement_never_switched_to() {
    use crate::api::PendingRenewal;
    let mut o = ready(DeletionPolicy::Deactivate);
    o.status.pending_renewal = Some(Box::new(PendingRenewal {
        started_at: jiff::Timestamp::UNIX_EPOCH.into(),
        trigger: "Scheduled".into(),
        requested: None,
        pending_create: Some(PendingCreate {
            started_at: jiff::Timestamp::UNIX_EPOCH.into(),
            public_key_sha256: "k2".into(),
            preexisting: vec![],
            seal: None,
        }),
    }));
    o.renewal.candidates = vec![DfnsObject {
        id: "us-2".into(),
        credential_id: "cr-2".into(),
        active: true,
        key_fingerprint: Some("k2".into()),
        ..Default::default()
    }];
    assert_eq!(
        next_cleanup_step(&o, false),
        CleanupStep::RetireOrphan { id: "us-2".into() }
    );
}
