//! Key rotation in place: when it starts, each step, each point where a crash can interrupt it,
//! the previous key's grace period, a refusal answered once, and a rotated key never taken for a
//! loss or a foreign credential.

use super::*;
use crate::api::{KeyCredential, KeyRotationRefusal, PendingKeyRotation, RetiringKey};
use crate::controller::credential::key_rotation::{KeyRotationStep, KeyTrigger, next_time};
use jiff::SignedDuration;

const KEY_N: &str = "nnnn";

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn rotation(step: KeyRotationStep) -> Step {
    Step::KeyRotation(step)
}

fn key_credential(cred_id: &str) -> KeyCredential {
    KeyCredential {
        cred_id: cred_id.into(),
        credential_uuid: None,
        seal: None,
    }
}

/// A ready resource asked to rotate its key (`dfns.io/rotate-key` = r1).
fn asked() -> Observed {
    let mut o = ready();
    o.renewal.rotate_key_requested = Some("r1".into());
    o
}

/// A rotation under way: recorded, nothing staged yet.
fn rotating() -> Observed {
    let mut o = asked();
    o.status.pending_key_rotation = Some(Box::new(PendingKeyRotation {
        started_at: o.now.into(),
        trigger: "Requested".into(),
        requested: Some("r1".into()),
        new: None,
        public_key_sha256: None,
    }));
    o
}

/// The new key credential `cr-new` chosen and recorded, its key in the staging Secret.
fn marked() -> Observed {
    let mut o = rotating();
    let pending = o.status.pending_key_rotation.as_mut().unwrap();
    pending.new = Some(key_credential("cr-new"));
    pending.public_key_sha256 = Some(KEY_N.into());
    o.renewal.staging = key_only(KEY_N);
    o
}

/// After a rotation: the Secret signs as `cr-new` with the new key; Dfns still shows `cr-1`
/// with the original key.
fn rotated() -> Observed {
    let mut o = ready();
    o.status.key_credential = Some(Box::new(key_credential("cr-new")));
    o.status.credential_id = Some("cr-new".into());
    o.secret = full_secret(KEY_N, "cr-new");
    o
}

#[test]
fn a_new_rotate_key_value_rotates_once() {
    assert_eq!(
        next_step(&asked()),
        rotation(KeyRotationStep::Begin {
            trigger: KeyTrigger::Requested
        })
    );
    let mut answered = asked();
    answered.status.key_rotation_requested = Some("r1".into());
    assert_eq!(next_step(&answered), Step::UpToDate);
}

#[test]
fn a_rotation_stages_a_key_then_records_its_credential_id_then_registers() {
    let mut o = rotating();
    assert_eq!(next_step(&o), rotation(KeyRotationStep::GenerateKey));
    o.renewal.staging = key_only(KEY_N);
    assert_eq!(
        next_step(&o),
        rotation(KeyRotationStep::MarkNew {
            key_fingerprint: KEY_N.into()
        })
    );
    assert_eq!(next_step(&marked()), rotation(KeyRotationStep::Register));
}

#[test]
fn a_crash_after_the_registration_registers_again_which_dfns_answers_as_taken() {
    // Nothing in status tells the registration happened: Register again (a 409 means it did).
    assert_eq!(next_step(&marked()), rotation(KeyRotationStep::Register));
}

#[test]
fn a_crash_after_the_secret_switched_finishes_the_switch_instead_of_losing_the_credential() {
    let mut o = marked();
    o.secret = full_secret(KEY_N, "cr-new");
    for staging in [SecretState::Missing, key_only(KEY_N)] {
        o.renewal.staging = staging;
        assert_eq!(next_step(&o), rotation(KeyRotationStep::Switch));
    }
}

#[test]
fn an_unsealed_new_credential_id_is_not_switched_to() {
    // A tenant wrote a credential id into pendingKeyRotation and the Secret.
    let mut o = marked();
    o.seals.new_key_credential = false;
    o.secret = full_secret(KEY_N, "cr-new");
    assert!(matches!(
        next_step(&o),
        Step::KeyRotation(KeyRotationStep::Abandon { .. })
    ));
}

#[test]
fn a_staging_secret_that_lost_a_registered_key_abandons_and_names_the_credential() {
    let mut o = marked();
    o.renewal.staging = SecretState::Missing;
    let Step::KeyRotation(KeyRotationStep::Abandon { message }) = next_step(&o) else {
        panic!("abandon");
    };
    assert!(message.contains("cr-new"), "{message}");
}

#[test]
fn a_rotated_key_is_neither_lost_nor_foreign() {
    let o = rotated();
    assert_eq!(next_step(&o), Step::UpToDate);
    // Without the seal, the Secret's credential id is not this identity's: a loss.
    let mut unsealed = rotated();
    unsealed.seals.key_credential = false;
    assert!(matches!(next_step(&unsealed), Step::LoseCredential { .. }));
}

#[test]
fn the_previous_key_stays_active_for_its_grace_period_then_is_retired() {
    let mut o = rotated();
    o.status.retiring_key = Some(Box::new(RetiringKey {
        credential: key_credential("cr-1"),
        retire_at: (o.now + secs(30)).into(),
    }));
    assert_eq!(next_step(&o), Step::UpToDate);
    o.now += secs(30);
    assert_eq!(next_step(&o), rotation(KeyRotationStep::RetireKey));
}

#[test]
fn at_most_one_previous_key_a_new_rotation_first_retires_it() {
    let mut o = rotated();
    o.status.retiring_key = Some(Box::new(RetiringKey {
        credential: key_credential("cr-1"),
        retire_at: (o.now + secs(30)).into(),
    }));
    o.renewal.rotate_key_requested = Some("r2".into());
    assert_eq!(next_step(&o), rotation(KeyRotationStep::RetireKey));
}

#[test]
fn the_interval_schedules_the_next_rotation_and_it_starts_when_due() {
    let mut o = ready();
    o.renewal.policy.key_rotation_interval = Some(secs(600));
    let at = o.now + secs(600);
    assert_eq!(
        next_step(&o),
        rotation(KeyRotationStep::RecordTime(Some(at)))
    );
    o.status.key_rotation_time = Some(at.into());
    assert_eq!(next_step(&o), Step::UpToDate);
    o.now = at;
    assert_eq!(
        next_step(&o),
        rotation(KeyRotationStep::Begin {
            trigger: KeyTrigger::Scheduled
        })
    );
    // A shortened interval brings the next rotation forward.
    let mut shorter = ready();
    shorter.renewal.policy.key_rotation_interval = Some(secs(60));
    shorter.status.key_rotation_time = Some(at.into());
    assert_eq!(next_time(&shorter), Some(shorter.now + secs(60)));
}

#[test]
fn a_refusal_stops_scheduled_rotations_until_the_spec_changes_but_a_new_request_tries_again() {
    let mut o = ready();
    o.renewal.policy.key_rotation_interval = Some(secs(600));
    o.status.key_rotation_time = Some(o.now.into());
    o.status.key_rotation_refused = Some(Box::new(KeyRotationRefusal {
        at: o.now.into(),
        generation: o.generation,
    }));
    assert_eq!(next_step(&o), rotation(KeyRotationStep::RecordTime(None)));
    o.status.key_rotation_time = None;
    assert_eq!(next_step(&o), Step::UpToDate);
    let mut changed = o.clone();
    changed.generation += 1;
    assert!(matches!(
        next_step(&changed),
        Step::KeyRotation(KeyRotationStep::RecordTime(Some(_)))
    ));
    o.renewal.rotate_key_requested = Some("r9".into());
    assert_eq!(
        next_step(&o),
        rotation(KeyRotationStep::Begin {
            trigger: KeyTrigger::Requested
        })
    );
}

#[test]
fn a_due_renewal_comes_before_a_key_rotation() {
    let mut o = asked();
    o.renewal.requested = Some("n1".into());
    assert!(matches!(next_step(&o), Step::Renewal(_)));
}

#[test]
fn a_deactivated_credential_rotates_nothing() {
    let mut o = asked();
    o.desired.active = false;
    o.status.active = Some(false);
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        active: false,
        ..object("us-1", "cr-1", KEY_A)
    }));
    assert!(!matches!(next_step(&o), Step::KeyRotation(_)));
}

#[test]
fn a_lost_secret_during_a_rotation_abandons_it_then_is_a_loss() {
    let mut o = marked();
    o.secret = SecretState::Missing;
    assert!(matches!(
        next_step(&o),
        Step::KeyRotation(KeyRotationStep::Abandon { .. })
    ));
    o.status.pending_key_rotation = None;
    assert!(matches!(next_step(&o), Step::LoseCredential { .. }));
}

#[test]
fn a_staging_secret_someone_else_owns_is_never_written() {
    let mut o = rotating();
    o.renewal.staging = SecretState::Foreign;
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::SecretConflict,
            ..
        }
    ));
}
