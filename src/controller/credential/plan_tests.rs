//! Every state of the create path, including each point where a crash can interrupt it, and the
//! lifecycle decisions after it.

use super::*;
use crate::api::{CredentialStatus, DeletionPolicy, PendingCreate, RetiringCredential};
use crate::controller::credential::observed::{ApprovalView, Desired, Seals, SecretMaterial};

#[path = "plan_approval_tests.rs"]
mod approvals;
#[path = "plan_rules_tests.rs"]
mod connection_rules;
#[path = "plan_expiry_tests.rs"]
mod expiry;
#[path = "plan_key_rotation_tests.rs"]
mod key_rotation;
#[path = "plan_ownership_tests.rs"]
mod ownership;
#[path = "plan_renewal_tests.rs"]
mod renewal;

const KEY_A: &str = "aaaa";
const KEY_B: &str = "bbbb";

fn observed() -> Observed {
    Observed {
        generation: 1,
        uid: "uid-1".into(),
        desired: Desired {
            display_name: "ns-app".into(),
            permission_id: None,
            active: true,
            deletion_policy: DeletionPolicy::Deactivate,
            secret_name: "app".into(),
        },
        status: CredentialStatus::default(),
        secret: SecretState::Missing,
        dfns: DfnsView::NotAsked,
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

fn key_only(fp: &str) -> SecretState {
    SecretState::Owned(SecretMaterial {
        key_fingerprint: Some(fp.into()),
        has_token: false,
        credential_id: None,
        token_expires_at: None,
        token_issued_at: None,
    })
}

fn full_secret(fp: &str, cred: &str) -> SecretState {
    SecretState::Owned(SecretMaterial {
        key_fingerprint: Some(fp.into()),
        has_token: true,
        credential_id: Some(cred.into()),
        token_expires_at: None,
        token_issued_at: None,
    })
}

fn pending(fp: &str) -> Option<PendingCreate> {
    Some(PendingCreate {
        started_at: jiff::Timestamp::UNIX_EPOCH.into(),
        public_key_sha256: fp.into(),
        preexisting: vec![],
        seal: None,
    })
}

fn object(id: &str, cred: &str, fp: &str) -> DfnsObject {
    DfnsObject {
        id: id.into(),
        credential_id: cred.into(),
        name: "ns-app".into(),
        active: true,
        archived: false,
        key_fingerprint: Some(fp.into()),
        // Dfns' documented responses carry no externalId: ownership is proven by the key.
        external_id: None,
        assignments: vec![],
    }
}

/// An identity as a Dfns revision answering `publicKey: ""` shows it: nothing proves whose it is.
fn keyless(id: &str, cred: &str) -> DfnsObject {
    DfnsObject {
        key_fingerprint: None,
        ..object(id, cred, "")
    }
}

/// A resource whose create completed: ids recorded, Secret complete, Dfns agrees.
fn ready() -> Observed {
    let mut o = observed();
    o.status.service_account_id = Some("us-1".into());
    o.status.token_id = Some("to-1".into());
    o.status.credential_id = Some("cr-1".into());
    o.status.active = Some(true);
    o.secret = full_secret(KEY_A, "cr-1");
    o.dfns = DfnsView::Recorded(Some(object("us-1", "cr-1", KEY_A)));
    o
}

#[test]
fn a_new_resource_first_gets_a_key() {
    assert_eq!(next_step(&observed()), Step::GenerateKey);
}

#[test]
fn a_secret_with_a_key_is_marked_pending_before_any_dfns_call() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    assert_eq!(
        next_step(&o),
        Step::MarkPendingCreate {
            key_fingerprint: KEY_A.into()
        }
    );
}

#[test]
fn a_pending_create_with_nothing_in_dfns_creates() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![]);
    assert_eq!(next_step(&o), Step::Create);
}

#[test]
fn crash_after_create_before_secret_write_retires_the_orphan() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    let orphan = object("us-1", "cr-1", KEY_A);
    o.dfns = DfnsView::Candidates(vec![orphan.clone()]);
    assert_eq!(next_step(&o), Step::RetireOrphan(orphan));
}

#[test]
fn after_retiring_an_orphan_its_key_is_never_reused() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    let mut retired = object("us-1", "cr-1", KEY_A);
    retired.active = false;
    retired.archived = true;
    o.dfns = DfnsView::Candidates(vec![retired]);
    assert_eq!(next_step(&o), Step::GenerateKey);
    // With the fresh key in the Secret, the new attempt is recorded before the call.
    o.secret = key_only(KEY_B);
    assert_eq!(
        next_step(&o),
        Step::MarkPendingCreate {
            key_fingerprint: KEY_B.into()
        }
    );
}

#[test]
fn crash_after_secret_write_before_status_adopts_the_created_credential() {
    let mut o = observed();
    o.secret = full_secret(KEY_A, "cr-1");
    o.status.pending_create = pending(KEY_A).map(Box::new);
    let created = object("us-1", "cr-1", KEY_A);
    o.dfns = DfnsView::Candidates(vec![created.clone()]);
    assert_eq!(next_step(&o), Step::Adopt(created));
}

#[test]
fn crash_after_marking_pending_but_before_the_call_creates_with_the_same_key() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![]);
    assert_eq!(next_step(&o), Step::Create);
}

#[test]
fn a_pending_create_whose_secret_vanished_starts_over_with_a_new_key() {
    let mut o = observed();
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![]);
    assert_eq!(next_step(&o), Step::GenerateKey);
    o.secret = key_only(KEY_B);
    assert_eq!(
        next_step(&o),
        Step::MarkPendingCreate {
            key_fingerprint: KEY_B.into()
        }
    );
}

#[test]
fn a_pending_create_whose_secret_vanished_after_dfns_created_retires_the_orphan() {
    let mut o = observed();
    o.status.pending_create = pending(KEY_A).map(Box::new);
    let orphan = object("us-1", "cr-1", KEY_A);
    o.dfns = DfnsView::Candidates(vec![orphan.clone()]);
    assert_eq!(next_step(&o), Step::RetireOrphan(orphan));
}

#[test]
fn old_deactivated_leftovers_with_other_keys_are_not_orphans() {
    let mut o = observed();
    o.secret = key_only(KEY_B);
    o.status.pending_create = pending(KEY_B).map(Box::new);
    let mut old = object("us-0", "cr-0", "old");
    old.active = false;
    o.dfns = DfnsView::Candidates(vec![old]);
    assert_eq!(next_step(&o), Step::Create);
}

#[test]
fn a_foreign_secret_stalls_with_secret_conflict() {
    let mut o = observed();
    o.secret = SecretState::Foreign;
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::SecretConflict,
            ..
        }
    ));
}

#[test]
fn a_refused_request_stalls_before_anything_is_created() {
    let mut o = observed();
    o.guard = Guard::Refused {
        reason: ConditionReason::PermissionNotAllowed,
        message: "no".into(),
    };
    assert_eq!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::PermissionNotAllowed,
            message: "no".into()
        }
    );
}

#[test]
fn an_unavailable_connection_waits() {
    let mut o = ready();
    o.guard = Guard::ConnectionUnavailable {
        reason: ConditionReason::ConnectionNotReady,
        message: "x".into(),
    };
    assert!(matches!(next_step(&o), Step::Wait { .. }));
}

#[test]
fn a_ready_credential_in_agreement_is_up_to_date() {
    assert_eq!(next_step(&ready()), Step::UpToDate);
}

#[test]
fn spec_active_false_deactivates_and_true_activates_again() {
    let mut o = ready();
    o.desired.active = false;
    assert_eq!(next_step(&o), Step::Deactivate);

    let mut o = ready();
    o.status.active = Some(false);
    o.generation = 3;
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        active: false,
        ..object("us-1", "cr-1", KEY_A)
    }));
    assert_eq!(next_step(&o), Step::Activate);
}

#[test]
fn a_deactivation_made_in_dfns_is_reported_and_never_undone() {
    let mut o = ready();
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        active: false,
        ..object("us-1", "cr-1", KEY_A)
    }));
    assert_eq!(next_step(&o), Step::ReportDeactivatedInDfns);
    // Reported: nothing more, whatever else changes in the spec.
    o.status.active = Some(false);
    o.status.deactivated_in_dfns_at = Some(jiff::Timestamp::UNIX_EPOCH.into());
    o.generation += 3;
    assert_eq!(next_step(&o), Step::UpToDate);
    // spec.active=false acknowledges it; true afterwards activates it again.
    o.desired.active = false;
    assert_eq!(next_step(&o), Step::AcknowledgeDeactivation);
    o.status.deactivated_in_dfns_at = None;
    assert_eq!(next_step(&o), Step::UpToDate);
    o.desired.active = true;
    assert_eq!(next_step(&o), Step::Activate);
}

#[test]
fn an_archived_or_missing_credential_is_lost() {
    let mut o = ready();
    o.dfns = DfnsView::Recorded(None);
    assert!(matches!(next_step(&o), Step::LoseCredential { .. }));
    let mut o = ready();
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        archived: true,
        ..object("us-1", "cr-1", KEY_A)
    }));
    assert!(matches!(next_step(&o), Step::LoseCredential { .. }));
}

#[test]
fn a_deleted_or_stripped_secret_loses_the_credential() {
    let mut o = ready();
    o.secret = SecretState::Missing;
    assert!(matches!(next_step(&o), Step::LoseCredential { .. }));
    let mut o = ready();
    o.secret = key_only(KEY_A);
    assert!(matches!(next_step(&o), Step::LoseCredential { .. }));
    let mut o = ready();
    o.secret = SecretState::Owned(SecretMaterial {
        key_fingerprint: None,
        has_token: true,
        credential_id: Some("cr-1".into()),
        token_expires_at: None,
        token_issued_at: None,
    });
    assert!(matches!(next_step(&o), Step::LoseCredential { .. }));
}

#[test]
fn a_lost_credential_is_replaced_with_a_new_key_then_retired() {
    // Status after LoseCredential: ids cleared, old one remembered.
    let mut o = observed();
    o.status.retiring = Some(Box::new(RetiringCredential {
        id: "us-1".into(),
        public_key_sha256: Some(KEY_A.into()),
        seal: None,
        retire_at: None,
    }));
    o.secret = key_only(KEY_A);
    assert_eq!(
        next_step(&o),
        Step::GenerateKey,
        "the lost credential's key is not reused"
    );
    o.secret = key_only(KEY_B);
    assert_eq!(
        next_step(&o),
        Step::MarkPendingCreate {
            key_fingerprint: KEY_B.into()
        }
    );
    // The pending lookup also finds the old credential (same externalId): it is not an orphan.
    o.status.pending_create = pending(KEY_B).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![object("us-1", "cr-1", KEY_A)]);
    assert_eq!(next_step(&o), Step::Create);
    // Once the replacement is recorded, the old one is retired.
    let mut o = ready();
    o.secret = full_secret(KEY_B, "cr-1");
    o.status.retiring = Some(Box::new(RetiringCredential {
        id: "us-0".into(),
        public_key_sha256: Some(KEY_A.into()),
        seal: None,
        retire_at: None,
    }));
    assert_eq!(next_step(&o), Step::RetirePrevious { id: "us-0".into() });
}

#[test]
fn a_replacement_lost_before_the_previous_was_retired_retires_the_previous_first() {
    // us-0 was replaced by us-1, and us-1's Secret went missing before us-0 was deactivated:
    // losing us-1 now would overwrite the record of us-0 and leave it active.
    let retiring = Some(RetiringCredential {
        id: "us-0".into(),
        public_key_sha256: Some(KEY_A.into()),
        seal: None,
        retire_at: None,
    });
    for secret in [SecretState::Missing, key_only(KEY_A)] {
        let mut o = ready();
        o.secret = secret;
        o.status.retiring = retiring.clone().map(Box::new);
        assert_eq!(next_step(&o), Step::RetirePrevious { id: "us-0".into() });
    }
    let mut o = ready();
    o.status.retiring = retiring.map(Box::new);
    o.dfns = DfnsView::Recorded(None);
    assert_eq!(next_step(&o), Step::RetirePrevious { id: "us-0".into() });
}

#[test]
fn a_new_display_name_renames() {
    let mut o = ready();
    o.desired.display_name = "renamed".into();
    assert_eq!(
        next_step(&o),
        Step::Rename {
            name: "renamed".into()
        }
    );
}

#[test]
fn a_permission_change_assigns_the_new_role_then_revokes_the_old_then_records() {
    let mut o = ready();
    o.status.assigned_permission_id = Some("pm-old".into());
    o.status.permission_assignment_id = Some("as-old".into());
    let mut obj = object("us-1", "cr-1", KEY_A);
    obj.assignments = vec![("pm-old".into(), "as-old".into())];
    o.dfns = DfnsView::Recorded(Some(obj.clone()));
    o.desired.permission_id = Some("pm-new".into());
    assert_eq!(
        next_step(&o),
        Step::AssignPermission {
            permission_id: "pm-new".into()
        }
    );

    obj.assignments.push(("pm-new".into(), "as-new".into()));
    o.dfns = DfnsView::Recorded(Some(obj.clone()));
    assert_eq!(
        next_step(&o),
        Step::RevokeAssignment {
            permission_id: "pm-old".into(),
            assignment_id: "as-old".into()
        }
    );

    obj.assignments.remove(0);
    o.dfns = DfnsView::Recorded(Some(obj));
    assert_eq!(
        next_step(&o),
        Step::RecordAssignment {
            permission_id: Some("pm-new".into()),
            assignment_id: Some("as-new".into())
        }
    );
    o.status.assigned_permission_id = Some("pm-new".into());
    o.status.permission_assignment_id = Some("as-new".into());
    assert_eq!(next_step(&o), Step::UpToDate);
}

#[test]
fn removing_the_permission_revokes_the_managed_assignment_only() {
    let mut o = ready();
    o.status.assigned_permission_id = Some("pm-old".into());
    o.status.permission_assignment_id = Some("as-old".into());
    let mut obj = object("us-1", "cr-1", KEY_A);
    obj.assignments = vec![
        ("pm-old".into(), "as-old".into()),
        ("pm-other".into(), "as-other".into()),
    ];
    o.dfns = DfnsView::Recorded(Some(obj.clone()));
    assert_eq!(
        next_step(&o),
        Step::RevokeAssignment {
            permission_id: "pm-old".into(),
            assignment_id: "as-old".into()
        }
    );
    obj.assignments.remove(0);
    o.dfns = DfnsView::Recorded(Some(obj));
    assert_eq!(
        next_step(&o),
        Step::RecordAssignment {
            permission_id: None,
            assignment_id: None
        }
    );
}

#[test]
fn an_interrupted_create_whose_result_dfns_shows_without_a_key_is_reported_not_retired() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![keyless("us-1", "cr-1")]);
    let step = next_step(&o);
    assert!(
        matches!(&step, Step::Stall { reason: ConditionReason::OrphanNotProven, message } if message.contains("us-1")),
        "{step:?}"
    );
}

#[test]
fn a_keyless_identity_is_not_adopted_on_a_credential_id_the_secret_names() {
    // The Secret is the tenant's to edit: naming another identity's credential id in it must not
    // make that identity this resource's. Without a key to compare, it is reported.
    let mut o = observed();
    o.secret = full_secret(KEY_A, "cr-1");
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![keyless("us-1", "cr-1")]);
    let step = next_step(&o);
    assert!(
        matches!(&step, Step::Stall { reason: ConditionReason::OrphanNotProven, message } if message.contains("us-1")),
        "{step:?}"
    );
}

#[test]
fn once_a_person_deactivated_an_unproven_identity_the_create_continues_with_a_new_key() {
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_A).map(Box::new);
    let mut deactivated = keyless("us-1", "cr-1");
    deactivated.active = false;
    o.dfns = DfnsView::Candidates(vec![deactivated]);
    assert_eq!(next_step(&o), Step::GenerateKey);
}

#[test]
fn an_identity_carrying_the_resources_uid_as_external_id_is_proven_without_its_key() {
    let mut o = observed();
    o.secret = key_only(KEY_B);
    o.status.pending_create = pending(KEY_B).map(Box::new);
    let mut orphan = keyless("us-1", "cr-1");
    orphan.external_id = Some("uid-1".into());
    o.dfns = DfnsView::Candidates(vec![orphan.clone()]);
    assert_eq!(next_step(&o), Step::RetireOrphan(orphan));
}

#[test]
fn identities_reported_before_an_attempt_began_are_not_taken_for_its_result() {
    let mut o = observed();
    o.secret = key_only(KEY_B);
    o.status.pending_create = Some(Box::new(PendingCreate {
        started_at: jiff::Timestamp::UNIX_EPOCH.into(),
        public_key_sha256: KEY_B.into(),
        preexisting: vec!["us-1".into()],
        seal: None,
    }));
    let mut deactivated = keyless("us-1", "cr-1");
    deactivated.active = false;
    o.dfns = DfnsView::Candidates(vec![deactivated]);
    assert_eq!(
        next_step(&o),
        Step::Create,
        "the new key is not burnt by us-1"
    );
}

#[test]
fn an_orphan_report_names_a_few_ids_and_counts_the_rest() {
    let many: Vec<DfnsObject> = (0..8)
        .map(|i| keyless(&format!("us-{i}"), &format!("cr-{i}")))
        .collect();
    let message = unproven_message(&many.iter().collect::<Vec<_>>());
    assert!(
        message.contains("us-0, us-1, us-2, us-3, us-4, 3 more"),
        "{message}"
    );
    assert!(!message.contains("us-5"), "{message}");
}

#[test]
fn a_held_credential_whose_connection_host_is_not_allowed_stalls_without_a_look_at_dfns() {
    let mut o = ready();
    o.dfns = DfnsView::NotAsked;
    o.guard = Guard::Refused {
        reason: ConditionReason::ApiHostNotAllowed,
        message: "apiUrl host evil.example is not allowed".into(),
    };
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::ApiHostNotAllowed,
            ..
        }
    ));
}
