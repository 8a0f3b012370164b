//! Renewal before expiry: when it starts, each step of minting the replacement into the staging
//! Secret, each point where a crash can interrupt it, and the previous credential's grace period.

use super::*;
use crate::api::{PendingApproval, PendingRenewal, UnaskedPermissions};
use crate::controller::credential::renewal::{
    RENEWAL_OPERATION_SUFFIX, RenewalPolicy, RenewalStep, Trigger, renewal_time,
};
use jiff::{SignedDuration, Timestamp};

const KEY_C: &str = "cccc";

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

/// A ready credential whose token was issued `age` seconds before `now` and lives `lifetime`.
fn aged(age: i64, lifetime: i64) -> Observed {
    let mut o = ready();
    let issued = o.now - secs(age);
    if let SecretState::Owned(m) = &mut o.secret {
        m.token_issued_at = Some(issued);
        m.token_expires_at = Some(issued + secs(lifetime));
    }
    o
}

/// A renewal under way: `pendingRenewal` recorded, the current credential still held.
fn renewing() -> Observed {
    let mut o = aged(250, 300);
    o.status.pending_renewal = Some(Box::new(PendingRenewal {
        started_at: o.now.into(),
        trigger: "Scheduled".into(),
        requested: None,
        pending_create: None,
    }));
    o
}

fn pending_renewal_key(o: &mut Observed, fp: &str) {
    o.status.pending_renewal.as_mut().unwrap().pending_create = pending(fp);
}

fn material(m: &SecretState) -> SecretMaterial {
    match m {
        SecretState::Owned(m) => m.clone(),
        _ => panic!("owned"),
    }
}

fn renewal(step: RenewalStep) -> Step {
    Step::Renewal(step)
}

#[test]
fn the_default_renewal_is_one_third_of_the_lifetime_before_expiry() {
    let o = aged(0, 300);
    let m = material(&o.secret);
    let expiry = m.token_expires_at.unwrap();
    assert_eq!(
        renewal_time(&m, &RenewalPolicy::default()),
        Some(expiry - secs(100))
    );
    let before = |s| RenewalPolicy {
        renew_before: Some(secs(s)),
        ..Default::default()
    };
    assert_eq!(renewal_time(&m, &before(60)), Some(expiry - secs(60)));
    // As long as the lifetime: it would renew right after every renewal, so the default holds.
    assert_eq!(renewal_time(&m, &before(300)), Some(expiry - secs(100)));
    let unexpiring = SecretMaterial {
        token_expires_at: None,
        ..m
    };
    assert_eq!(renewal_time(&unexpiring, &before(60)), None);
}

#[test]
fn a_credential_before_its_renewal_time_records_it_and_is_up_to_date() {
    let o = aged(100, 300);
    let at = o.now + secs(100);
    assert_eq!(next_step(&o), Step::RecordRenewalTime(Some(at)));
    let mut recorded = o;
    recorded.status.renewal_time = Some(at.into());
    assert_eq!(next_step(&recorded), Step::UpToDate);
}

#[test]
fn a_renewal_starts_when_its_time_comes_when_asked_or_when_the_token_expired() {
    let begin = |trigger| renewal(RenewalStep::Begin { trigger });
    assert_eq!(next_step(&aged(200, 300)), begin(Trigger::Scheduled));
    assert_eq!(next_step(&aged(300, 300)), begin(Trigger::Expired));
    let mut asked = aged(10, 300);
    asked.renewal.requested = Some("r1".into());
    asked.status.renewal_time = Some((asked.now + secs(190)).into());
    assert_eq!(next_step(&asked), begin(Trigger::Requested));
    // Once per value: the value a renewal answered does not start another.
    asked.status.renew_requested = Some("r1".into());
    assert_eq!(next_step(&asked), Step::UpToDate);
}

#[test]
fn a_deactivated_credential_is_not_renewed() {
    let mut o = aged(300, 300);
    o.desired.active = false;
    o.status.active = Some(false);
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        active: false,
        ..object("us-1", "cr-1", KEY_A)
    }));
    assert!(!matches!(next_step(&o), Step::Renewal(_)));
}

#[test]
fn a_renewal_mints_its_replacement_into_the_staging_secret_step_by_step() {
    // Nothing staged yet: a fresh key in the staging Secret, never in the Secret workloads read.
    let mut o = renewing();
    assert_eq!(next_step(&o), renewal(RenewalStep::GenerateKey));
    // The key is staged: record it before calling Dfns.
    o.renewal.staging = key_only(KEY_B);
    assert_eq!(
        next_step(&o),
        renewal(RenewalStep::MarkPendingCreate {
            key_fingerprint: KEY_B.into()
        })
    );
    // Recorded, and Dfns shows nothing with it: create.
    pending_renewal_key(&mut o, KEY_B);
    assert_eq!(next_step(&o), renewal(RenewalStep::Create));
    // Created and its token staged: switch the Secret to it.
    let replacement = object("us-2", "cr-2", KEY_B);
    o.renewal.candidates = vec![replacement.clone()];
    o.renewal.staging = full_secret(KEY_B, "cr-2");
    assert_eq!(next_step(&o), renewal(RenewalStep::Switch(replacement)));
}

#[test]
fn the_current_credential_is_never_taken_for_a_leftover_of_the_replacements_create() {
    let mut o = renewing();
    o.renewal.staging = key_only(KEY_B);
    pending_renewal_key(&mut o, KEY_B);
    // Dfns lists the current credential among the candidates (it carries this resource's
    // externalId where Dfns shows it): active, and its token is not in the staging Secret.
    o.renewal.candidates = vec![DfnsObject {
        external_id: Some("uid-1".into()),
        ..object("us-1", "cr-1", KEY_A)
    }];
    assert_eq!(next_step(&o), renewal(RenewalStep::Create));
}

#[test]
fn a_crash_after_the_replacements_create_retires_it_and_mints_with_a_new_key() {
    let mut o = renewing();
    o.renewal.staging = key_only(KEY_B);
    pending_renewal_key(&mut o, KEY_B);
    let orphan = object("us-2", "cr-2", KEY_B);
    o.renewal.candidates = vec![orphan.clone()];
    assert_eq!(next_step(&o), Step::RetireOrphan(orphan.clone()));
    // Retired; its key is never registered again.
    o.renewal.candidates = vec![DfnsObject {
        archived: true,
        active: false,
        ..orphan
    }];
    assert_eq!(next_step(&o), renewal(RenewalStep::GenerateKey));
}

#[test]
fn a_crash_after_the_secret_switched_finishes_the_switch_instead_of_losing_the_credential() {
    let mut o = renewing();
    pending_renewal_key(&mut o, KEY_B);
    let replacement = object("us-2", "cr-2", KEY_B);
    o.renewal.candidates = vec![replacement.clone()];
    // The Secret already holds the replacement; the staging Secret is gone or still there.
    o.secret = full_secret(KEY_B, "cr-2");
    for staging in [SecretState::Missing, full_secret(KEY_B, "cr-2")] {
        o.renewal.staging = staging;
        assert_eq!(
            next_step(&o),
            renewal(RenewalStep::Switch(replacement.clone()))
        );
    }
}

#[test]
fn a_secret_naming_a_candidate_without_its_key_is_not_a_switch() {
    let mut o = renewing();
    pending_renewal_key(&mut o, KEY_B);
    o.renewal.staging = key_only(KEY_B);
    o.renewal.candidates = vec![object("us-2", "cr-2", KEY_B)];
    // A tenant copied the replacement's credential id into the Secret, with another key.
    o.secret = full_secret(KEY_C, "cr-2");
    assert!(!matches!(
        next_step(&o),
        Step::Renewal(RenewalStep::Switch(_))
    ));
}

#[test]
fn the_previous_credential_stays_active_for_its_grace_period_then_is_retired() {
    let mut o = aged(10, 300);
    o.status.renewal_time = Some((o.now + secs(190)).into());
    o.status.retiring = Some(Box::new(RetiringCredential {
        id: "us-0".into(),
        public_key_sha256: Some(KEY_C.into()),
        seal: None,
        retire_at: Some((o.now + secs(30)).into()),
    }));
    assert_eq!(next_step(&o), Step::UpToDate);
    o.now += secs(30);
    o.status.renewal_time = Some((o.now + secs(160)).into());
    assert_eq!(next_step(&o), Step::RetirePrevious { id: "us-0".into() });
}

#[test]
fn never_more_than_two_active_a_due_renewal_or_a_loss_first_retires_the_previous() {
    let previous = |o: &Observed| {
        Some(RetiringCredential {
            id: "us-0".into(),
            public_key_sha256: Some(KEY_C.into()),
            seal: None,
            retire_at: Some((o.now + secs(30)).into()),
        })
    };
    let retire = Step::RetirePrevious { id: "us-0".into() };
    let mut due = aged(200, 300);
    due.status.retiring = previous(&due).map(Box::new);
    assert_eq!(next_step(&due), retire);
    let mut lost = aged(10, 300);
    lost.status.retiring = previous(&lost).map(Box::new);
    lost.secret = SecretState::Missing;
    assert_eq!(next_step(&lost), retire);
    let mut renewing = renewing();
    renewing.status.retiring = previous(&renewing).map(Box::new);
    assert_eq!(next_step(&renewing), retire);
}

#[test]
fn a_replacement_with_unasked_roles_stalls_the_renewal_until_the_spec_changes() {
    let mut o = renewing();
    o.status.unasked_permissions = Some(Box::new(UnaskedPermissions {
        id: "us-2".into(),
        permission_ids: vec!["pm-admin".into()],
        generation: 1,
    }));
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::UnaskedPermissions,
            ..
        }
    ));
    o.generation = 2;
    assert_eq!(next_step(&o), renewal(RenewalStep::GenerateKey));
}

#[test]
fn a_replacements_create_held_for_approval_is_decided_like_a_first_create() {
    let mut o = renewing();
    o.renewal.staging = key_only(KEY_B);
    pending_renewal_key(&mut o, KEY_B);
    o.status.pending_approval = Some(Box::new(PendingApproval {
        operation: format!("create service account{RENEWAL_OPERATION_SUFFIX}"),
        approval_id: Some("ap-1".into()),
        change_request_id: None,
        requested_at: Timestamp::UNIX_EPOCH.into(),
        generation: 1,
        outcome: None,
        reason: None,
        during_deletion: false,
    }));
    o.approval = ApprovalView::Pending;
    assert!(matches!(next_step(&o), Step::AwaitApproval { .. }));
    // Approved: Dfns shows the created token to no one, as for a first create.
    o.approval = ApprovalView::Approved;
    assert!(matches!(
        next_step(&o),
        Step::RecordApprovalOutcome { outcome, .. } if outcome == APPROVED_WITHOUT_TOKEN
    ));
}

#[test]
fn a_renewal_refused_by_the_connections_rules_stalls() {
    let mut o = renewing();
    o.guard = Guard::Refused {
        reason: ConditionReason::PermissionNotAllowed,
        message: "pm-x is not allowed".into(),
    };
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::PermissionNotAllowed,
            ..
        }
    ));
}

#[test]
fn a_staging_secret_someone_else_owns_is_never_written() {
    let mut o = renewing();
    o.renewal.staging = SecretState::Foreign;
    assert!(matches!(
        next_step(&o),
        Step::Stall {
            reason: ConditionReason::SecretConflict,
            ..
        }
    ));
}
