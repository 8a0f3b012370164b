//! Expiry cannot pass unnoticed: when renewal fails inside the `renewBefore` window, a platform
//! engineer gets Warning Events saying how long the token still works, and once it expired the
//! resource is never `Ready`. (Renewal itself, and a token that expired while the operator was
//! stopped: `renewal.rs`.)

use std::time::Duration;

use dfns_emulator::Faults;
use dfns_operator::api::DfnsPersonalAccessToken;
use dfns_test_support::events::events_of;
use dfns_test_support::operator::{Setup, WAIT};
use jiff::Timestamp;
use serde_json::json;

use super::credentials::verify_with;

#[tokio::test]
async fn a_renewal_failing_before_expiry_warns_with_the_time_left_and_the_expired_token_is_never_ready()
 {
    let mut setup = Setup::new("e2e-expiry-failing").await;
    let role = setup
        .running_with_role("reader", &["Auth:ServiceAccounts:Read"])
        .await;
    setup
        .apply::<DfnsPersonalAccessToken>(
            "ci",
            json!({
                "connectionRef": { "kind": "DfnsConnection", "name": "main" },
                "permissionId": role,
                "secondsValid": 30,
                "rotation": { "renewBefore": "24s" },
            }),
        )
        .await;
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let status = pat.status.unwrap();
    let expires_at = status.expires_at.expect("expiresAt").0;
    let first = status.token_id.expect("token id");
    // Dfns fails every call from now on: the renewal due in ~6 s cannot happen.
    setup.emulator.set_faults(Faults {
        error_ratio: 1.0,
        ..Faults::default()
    });

    let deadline = tokio::time::Instant::now() + WAIT;
    let warned = loop {
        let events = events_of(&setup, "ci").await;
        if let Some((_, note)) = events
            .iter()
            .find(|(reason, note)| reason == "Failed" && note.contains("still works for"))
        {
            break note.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Warning with the time left: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(warned.contains("Secret ci"), "{warned}");
    assert!(Timestamp::now() < expires_at + jiff::SignedDuration::from_secs(2));

    // Past the expiry, with renewal still failing: never Ready.
    while Timestamp::now() <= expires_at + jiff::SignedDuration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pat = setup
            .api::<DfnsPersonalAccessToken>()
            .get("ci")
            .await
            .unwrap();
        let ready = pat
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .cloned()
            .expect("Ready condition");
        if ready.status == "False" {
            assert!(
                ready.message.contains("expired"),
                "the condition says the token expired: {ready:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "an expired token stays Ready: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Dfns back: renewed at once, Ready again with a live token.
    setup.emulator.set_faults(Faults::default());
    let pat = setup.wait_ready::<DfnsPersonalAccessToken>("ci").await;
    let status = pat.status.unwrap();
    assert_ne!(status.token_id.as_deref(), Some(first.as_str()), "renewed");
    let secret = setup.secrets().get("ci").await.unwrap();
    let (works, output) = verify_with(&secret).await;
    assert!(works, "{output}");
    setup.assert_no_leaks().await;
}
