//! The leak check itself: a secret that does reach an Event is reported, as text and as the
//! `{:?}` of its bytes, so a clean check at the end of every other test means something.

use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_test_support::operator::{Setup, secret_text};
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::json;

/// An Event about the service account `app` whose message is `message`, as a careless
/// controller would publish it.
fn event(setup: &Setup, name: &str, message: String) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("dfns.io/v1alpha1".into()),
            kind: Some("DfnsServiceAccount".into()),
            name: Some("app".into()),
            namespace: Some(setup.namespace().into()),
            ..ObjectReference::default()
        },
        reason: Some("Careless".into()),
        message: Some(message),
        type_: Some("Normal".into()),
        ..Event::default()
    }
}

#[tokio::test]
async fn the_leak_check_reports_a_token_and_the_bytes_of_a_key_published_in_events() {
    let mut setup = Setup::new("e2e-leak-check").await;
    setup.admin_connection("main", json!({})).await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } }),
        )
        .await;
    setup.wait_ready::<DfnsServiceAccount>("app").await;
    setup.stop_operator().await;
    let found = setup.leak_check().findings().await;
    assert!(found.is_empty(), "clean before anything leaks: {found:?}");

    let secret = setup.secrets().get("app").await.unwrap();
    let token = secret_text(&secret, "DFNS_AUTH_TOKEN").expect("a token");
    let key = secret_text(&secret, "DFNS_PRIVATE_KEY").expect("a key");
    let seal_secret_name = setup.config().seal_key_secret;
    let seal_secret = setup.secrets().get(&seal_secret_name).await.unwrap();
    let seal_key = seal_secret.data.as_ref().unwrap()["seal-key"].0.clone();
    let events = Api::<Event>::namespaced(setup.kube.clone(), setup.namespace());
    for (name, message) in [
        ("leaked-token", format!("logged in with {token}")),
        ("leaked-key", format!("key bytes: {:?}", key.as_bytes())),
        (
            "leaked-seal-key",
            format!(
                "seal={}",
                seal_key
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
        ),
    ] {
        events
            .create(&PostParams::default(), &event(&setup, name, message))
            .await
            .unwrap();
    }

    let found = setup.leak_check().findings().await;
    let seal_finding = format!("Secret {seal_secret_name} seal-key in Events (as hex)");
    for expected in [
        "Secret app DFNS_AUTH_TOKEN in Events (as text)",
        "Secret app DFNS_PRIVATE_KEY in Events (as bytes {:?})",
        seal_finding.as_str(),
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "{expected} not reported: {found:?}"
        );
    }
    assert!(
        found.iter().all(|f| f.contains(" in Events ")),
        "only the Events leaked: {found:?}"
    );
    assert!(
        found
            .iter()
            .all(|f| !f.contains(&token) && !f.contains(key.trim())),
        "findings name the secret, never its value"
    );

    // With the two Events gone the check is clean again: they were what it found.
    for name in ["leaked-token", "leaked-key", "leaked-seal-key"] {
        events.delete(name, &DeleteParams::default()).await.unwrap();
    }
    setup.assert_no_leaks().await;
}
