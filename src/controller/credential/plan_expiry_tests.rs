//! An expired token is never `Ready`: the decisions around the token's `exp` in the Secret.

use super::*;
use crate::controller::credential::renewal::{RenewalStep, Trigger};

/// A ready credential whose Secret's token expires `secs` after the planner's `now`.
fn expiring_in(secs: i64) -> Observed {
    let mut o = ready();
    if let SecretState::Owned(material) = &mut o.secret {
        material.token_expires_at = Some(o.now + jiff::SignedDuration::from_secs(secs));
    }
    o
}

fn is_expired_stall(step: &Step) -> bool {
    matches!(
        step,
        Step::Stall {
            reason: ConditionReason::Expired,
            ..
        }
    )
}

#[test]
fn a_token_that_still_works_is_up_to_date() {
    assert_eq!(next_step(&expiring_in(1)), Step::UpToDate);
}

#[test]
fn a_token_past_its_expiry_is_renewed_at_once() {
    for secs in [0, -1, -86_400] {
        assert_eq!(
            next_step(&expiring_in(secs)),
            Step::Renewal(RenewalStep::Begin {
                trigger: Trigger::Expired
            }),
            "{secs}"
        );
    }
}

#[test]
fn a_token_without_expiry_never_expires() {
    let mut o = ready();
    o.now = jiff::Timestamp::MAX;
    assert_eq!(next_step(&o), Step::UpToDate);
}

#[test]
fn an_expired_token_does_not_stay_ready_while_the_connection_is_unavailable() {
    let mut o = expiring_in(-5);
    o.guard = Guard::ConnectionUnavailable {
        reason: ConditionReason::ConnectionNotReady,
        message: "connection main is not ready".into(),
    };
    let step = next_step(&o);
    assert!(is_expired_stall(&step), "{step:?}");
    let Step::Stall { message, .. } = step else {
        unreachable!()
    };
    assert!(
        message.contains("connection main is not ready"),
        "{message}"
    );
    // Still live: the usual wait, which keeps the last verdict.
    o = expiring_in(5);
    o.guard = Guard::ConnectionUnavailable {
        reason: ConditionReason::ConnectionNotReady,
        message: "x".into(),
    };
    assert!(matches!(next_step(&o), Step::Wait { .. }));
}

#[test]
fn a_deleted_secret_of_an_expired_token_mints_a_new_credential() {
    let mut o = expiring_in(-5);
    o.secret = SecretState::Missing;
    assert!(matches!(
        next_step(&o),
        Step::LoseCredential { retire: true, .. }
    ));
}

#[test]
fn pending_changes_are_made_before_expiry_is_reported() {
    let mut o = expiring_in(-5);
    o.desired.display_name = "renamed".into();
    assert_eq!(
        next_step(&o),
        Step::Rename {
            name: "renamed".into()
        }
    );
}

#[test]
fn a_deactivated_credential_with_an_expired_token_is_not_reported_expired() {
    let mut o = expiring_in(-5);
    o.desired.active = false;
    o.status.active = Some(false);
    o.dfns = DfnsView::Recorded(Some(DfnsObject {
        active: false,
        ..object("us-1", "cr-1", KEY_A)
    }));
    assert_eq!(next_step(&o), Step::UpToDate);
}
