//! Ids in status prove nothing: whoever may patch `/status` can write another resource's ids or
//! key fingerprint there. The plan acts on a Dfns identity only once its key is in this
//! resource's Secret, or the id carries this operator's seal (docs/architecture.md, "Ownership").

use super::*;
use crate::controller::credential::cleanup_plan::{CleanupStep, next_cleanup_step};

/// Resource A whose status was patched with B's ids: B's key is not in A's Secret, no seal.
fn patched_with_anothers_ids() -> Observed {
    let mut o = ready();
    o.status.service_account_id = Some("us-b".into());
    o.status.credential_id = Some("cr-b".into());
    o.dfns = DfnsView::Recorded(Some(object("us-b", "cr-b", KEY_B)));
    o.seals.recorded = false;
    o
}

fn is_foreign(step: &Step, id: &str) -> bool {
    matches!(step, Step::Stall { reason: ConditionReason::ForeignCredential, message } if message.contains(id))
}

#[test]
fn anothers_ids_in_status_are_reported_and_never_acted_on() {
    let o = patched_with_anothers_ids();
    assert!(is_foreign(&next_step(&o), "us-b"));
    // Toggling spec.active, renaming or asking for a role changes nothing about that.
    let mut toggled = o.clone();
    toggled.desired.active = false;
    assert!(is_foreign(&next_step(&toggled), "us-b"));
    let mut renamed = o.clone();
    renamed.desired.display_name = "other".into();
    renamed.desired.permission_id = Some("pm-1".into());
    assert!(is_foreign(&next_step(&renamed), "us-b"));
    // Even if the Secret is made to name B's credential id, B's key is what is missing.
    let mut secret_edited = o;
    secret_edited.secret = full_secret(KEY_A, "cr-b");
    assert!(is_foreign(&next_step(&secret_edited), "us-b"));
}

#[test]
fn deleting_the_secret_does_not_make_anothers_credential_retirable() {
    let mut o = patched_with_anothers_ids();
    o.secret = SecretState::Missing;
    assert!(is_foreign(&next_step(&o), "us-b"));
}

#[test]
fn a_recorded_id_proven_by_the_secrets_key_is_sealed_once() {
    let mut o = ready();
    o.seals.recorded = false;
    assert_eq!(next_step(&o), Step::SealRecorded);
    o.seals.recorded = true;
    assert_eq!(next_step(&o), Step::UpToDate);
}

#[test]
fn a_sealed_id_stays_provable_after_its_secret_is_deleted() {
    let mut o = ready();
    o.secret = SecretState::Missing;
    assert_eq!(
        next_step(&o),
        Step::LoseCredential {
            message: "Secret app was deleted".into(),
            retire: true,
        }
    );
}

#[test]
fn an_unsealed_id_missing_in_dfns_is_dropped_without_being_kept_for_retirement() {
    let mut o = patched_with_anothers_ids();
    o.dfns = DfnsView::Recorded(None);
    assert!(matches!(
        next_step(&o),
        Step::LoseCredential { retire: false, .. }
    ));
    o.seals.recorded = true;
    assert!(matches!(
        next_step(&o),
        Step::LoseCredential { retire: true, .. }
    ));
}

#[test]
fn an_externalid_of_this_resources_uid_proves_ownership() {
    let mut o = patched_with_anothers_ids();
    if let DfnsView::Recorded(Some(object)) = &mut o.dfns {
        object.external_id = Some("uid-1".into());
    }
    assert_eq!(next_step(&o), Step::SealRecorded);
}

#[test]
fn an_unsealed_retiring_id_is_reported_not_deactivated() {
    let mut o = ready();
    o.status.retiring = Some(Box::new(RetiringCredential {
        id: "us-b".into(),
        public_key_sha256: Some(KEY_B.into()),
        seal: None,
        retire_at: None,
    }));
    o.seals.retiring = false;
    assert!(is_foreign(&next_step(&o), "us-b"));
    o.seals.retiring = true;
    assert_eq!(next_step(&o), Step::RetirePrevious { id: "us-b".into() });
}

#[test]
fn a_forged_pending_create_with_anothers_fingerprint_retires_and_adopts_nothing() {
    // A's Secret holds its own key A; pendingCreate was patched to B's fingerprint, and Dfns
    // shows B's active credential with that key.
    let mut o = observed();
    o.secret = key_only(KEY_A);
    o.status.pending_create = pending(KEY_B).map(Box::new);
    o.seals.pending_key = false;
    o.dfns = DfnsView::Candidates(vec![object("us-b", "cr-b", KEY_B)]);
    let step = next_step(&o);
    assert!(
        !matches!(step, Step::RetireOrphan(_) | Step::Adopt(_)),
        "{step:?}"
    );
    // Naming B's credential id in A's Secret does not make B adoptable either.
    o.secret = full_secret(KEY_A, "cr-b");
    let step = next_step(&o);
    assert!(
        !matches!(step, Step::RetireOrphan(_) | Step::Adopt(_)),
        "{step:?}"
    );
}

#[test]
fn a_sealed_pending_key_still_proves_an_orphan_after_the_secret_lost_it() {
    let mut o = observed();
    o.status.pending_create = pending(KEY_A).map(Box::new);
    o.dfns = DfnsView::Candidates(vec![object("us-1", "cr-1", KEY_A)]);
    assert_eq!(
        next_step(&o),
        Step::RetireOrphan(object("us-1", "cr-1", KEY_A))
    );
    o.seals.pending_key = false;
    assert!(!matches!(next_step(&o), Step::RetireOrphan(_)));
}

#[test]
fn deleting_a_resource_never_touches_an_unproven_recorded_or_retiring_id() {
    for policy in [DeletionPolicy::Deactivate, DeletionPolicy::Archive] {
        let mut o = patched_with_anothers_ids();
        o.desired.deletion_policy = policy;
        let step = next_cleanup_step(&o, false);
        assert!(
            matches!(&step, CleanupStep::Foreign { message } if message.contains("us-b")),
            "{step:?}"
        );
        // With the Secret deleted as well.
        o.secret = SecretState::Missing;
        assert!(matches!(
            next_cleanup_step(&o, false),
            CleanupStep::Foreign { .. }
        ));
    }
    let mut o = ready();
    o.status.retiring = Some(Box::new(RetiringCredential {
        id: "us-b".into(),
        public_key_sha256: None,
        seal: None,
        retire_at: None,
    }));
    o.seals.retiring = false;
    assert!(matches!(
        next_cleanup_step(&o, false),
        CleanupStep::Foreign { .. }
    ));
    // skip-cleanup still releases the resource without touching Dfns.
    assert_eq!(next_cleanup_step(&o, true), CleanupStep::DeleteSecret);
}
