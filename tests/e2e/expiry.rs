//! An expired token is never `Ready`: a platform engineer sees `Expired` (condition, Warning
//! Event) the moment the token in the Secret stops working, whether the operator ran through
//! the expiry or was stopped across it; deleting the Secret mints a working credential again.

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken};
use dfns_test_support::events::wait_event;
use dfns_test_support::operator::{Setup, WAIT};
use jiff::Timestamp;
use kube::api::DeleteParams;
use serde_json::json;

use super::credentials::verify_with;

/// Seconds a test token lives: long enough to be seen `Ready` under load, short enough to expire
/// within the test.
const LIFETIME_SECS: u64 = 30;

async fn short_lived_token(setup: &mut Setup, name: &str) -> (String, Timestamp) {
    let role = setup
        .create_role("reader", &["Auth:ServiceAccounts:Read"])
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    setup
        .apply::<DfnsPersonalAccessToken>(
            name,
            json!({
                "connectionRef": { "kind": "DfnsConnection", "name": "main" },
                "permissionId": role,
                "secondsValid": LIFETIME_SECS,
            }),
        )
        .await;
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>(name).await;
    let status = pat.status.expect("status");
    let expires_at = status
        .expires_at
        .expect("expiresAt of a token with secondsValid")
        .0;
    (status.token_id.expect("token id"), expires_at)
}

/// Waits until the wall clock has passed `at` (bounded by the harness' deadline).
async fn wait_until_past(at: Timestamp) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while Timestamp::now() <= at {
        assert!(tokio::time::Instant::now() < deadline, "{at} did not pass");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready_reason(pat: &DfnsPersonalAccessToken) -> Option<(String, String)> {
    pat.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn a_token_expiring_while_the_operator_runs_turns_expired_at_its_expiry_without_a_resync() {
    let mut setup = Setup::new("e2e-expiry-live").await;
    let (token_id, expires_at) = short_lived_token(&mut setup, "ci").await;
    let secret = setup.secrets().get("ci").await.expect("Secret");
    let (works, output) = verify_with(&secret).await;
    assert!(works, "the fresh token works: {output}");

    // The resync interval is ten minutes: only a requeue at the expiry can report it in time.
    let pat = setup
        .wait_condition::<DfnsPersonalAccessToken>("ci", "Ready", "False", Some("Expired"))
        .await;
    let reported_at = Timestamp::now();
    assert!(
        reported_at >= expires_at,
        "reported Expired before {expires_at}"
    );
    assert!(
        reported_at.duration_since(expires_at) < jiff::SignedDuration::from_secs(30),
        "reported Expired {} after the expiry",
        reported_at.duration_since(expires_at)
    );
    let stalled = pat
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .any(|c| c.type_ == "Stalled" && c.status == "True");
    assert!(stalled, "Expired waits for a person: {:?}", pat.status);
    let note = wait_event(&setup, "ci", "Expired").await;
    assert!(
        note.contains(&token_id) && note.contains("delete Secret ci"),
        "{note}"
    );
    let (works, _) = verify_with(&secret).await;
    assert!(!works, "the expired token no longer works");
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_token_that_expired_while_the_operator_was_stopped_is_reported_expired_then_a_new_secret_is_ready()
 {
    let mut setup = Setup::new("e2e-expiry-stopped").await;
    let (old_id, expires_at) = short_lived_token(&mut setup, "ci").await;
    setup.stop_operator().await;
    wait_until_past(expires_at).await;

    setup.start_operator();
    let pat = setup
        .wait_condition::<DfnsPersonalAccessToken>("ci", "Ready", "False", Some("Expired"))
        .await;
    assert_eq!(
        pat.status.as_ref().and_then(|s| s.token_id.clone()),
        Some(old_id.clone()),
        "nothing replaced the credential on its own"
    );

    // The way forward the message names: without the Secret, a new credential is minted and
    // the expired one deactivated.
    setup
        .secrets()
        .delete("ci", &DeleteParams::default())
        .await
        .expect("delete Secret");
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    assert_eq!(
        ready_reason(&pat).map(|(_, reason)| reason).as_deref(),
        Some("Ready")
    );
    let status = pat.status.clone().unwrap();
    let new_id = status.token_id.expect("new token id");
    assert_ne!(new_id, old_id, "a new credential");
    let secret = setup.secrets().get("ci").await.expect("new Secret");
    let (works, output) = verify_with(&secret).await;
    assert!(works, "Ready means the Secret's token works: {output}");
    let old = setup
        .emulator
        .state()
        .pats
        .into_iter()
        .find(|p| p.token_id == old_id)
        .expect("the expired token in Dfns");
    assert!(!old.is_active, "the expired credential was deactivated");
    setup.assert_no_leaks().await;
}
