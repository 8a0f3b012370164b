//! One slow connection cannot starve the others: with a connection at 1 request per minute and
//! 20 service accounts on it, a service account on another connection still becomes Ready within
//! 30 s. A reconcile that would wait longer than a moment for its connection's rate limit gives
//! its worker back and is requeued for when a request is possible, and one connection may hold
//! at most half the workers; waiting on the rate limit is not a failure (no Warning Events).

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_operator::controller::secret_layout::PRIVATE_KEY;
use dfns_test_support::operator::{Setup, WAIT};
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;

const SLOW_ACCOUNTS: usize = 20;

/// Patches the connection `name` down to `per_minute` requests per minute.
pub async fn slow_down(setup: &Setup, name: &str, per_minute: u32) {
    setup
        .api::<DfnsConnection>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "rateLimit": { "requestsPerMinute": per_minute } } })),
        )
        .await
        .expect("patch the connection's rate limit");
}

/// Applies `count` service accounts `slow-<i>` on the connection `connection`.
pub async fn apply_accounts(setup: &Setup, connection: &str, count: usize) {
    for i in 0..count {
        setup
            .apply::<DfnsServiceAccount>(
                &format!("slow-{i}"),
                json!({ "connectionRef": { "kind": "DfnsConnection", "name": connection } }),
            )
            .await;
    }
}

/// Waits until some service account's create is due: its key is in its Secret (the step just
/// before the create), so from then on its reconciles need the connection's rate limit. (Its
/// `pendingCreate` is saved only once the create's first request is admitted, which on a
/// connection at 1 request per minute may take minutes.)
pub async fn wait_for_a_create_under_way(setup: &Setup) {
    let deadline = Instant::now() + WAIT;
    loop {
        let secrets = setup
            .secrets()
            .list(&ListParams::default())
            .await
            .expect("list Secrets");
        if secrets.items.iter().any(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("slow-"))
                && s.data.as_ref().is_some_and(|d| d.contains_key(PRIVATE_KEY))
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no create became due within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_at_one_request_per_minute_does_not_hold_up_another_connection() {
    let mut setup = Setup::new("e2e-fairness").await;
    setup.admin_connection("slow", json!({})).await;
    setup.admin_connection("fast", json!({})).await;
    let mut config = setup.config();
    config.concurrency = 4;
    setup.start_operator_with(config);
    setup.wait_ready::<DfnsConnection>("slow").await;
    setup.wait_ready::<DfnsConnection>("fast").await;

    slow_down(&setup, "slow", 1).await;
    apply_accounts(&setup, "slow", SLOW_ACCOUNTS).await;
    wait_for_a_create_under_way(&setup).await;

    let applied = Instant::now();
    setup
        .apply::<DfnsServiceAccount>(
            "other",
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "fast" } }),
        )
        .await;
    let within = Duration::from_secs(30);
    tokio::time::timeout(within, setup.wait_ready::<DfnsServiceAccount>("other"))
        .await
        .unwrap_or_else(|_| {
            panic!("the other connection's service account was not Ready within {within:?}")
        });
    eprintln!(
        "the other connection's service account was Ready after {:?}",
        applied.elapsed()
    );

    // Waiting for the rate limit is not failing: no Warning Event on the slow connection's
    // resources (a Warning would be published at every throttled attempt).
    let events = kube::Api::<Event>::namespaced(setup.kube.clone(), setup.namespace())
        .list(&ListParams::default())
        .await
        .expect("list events");
    let warnings: Vec<String> = events
        .items
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("slow-"))
        })
        .map(|e| format!("{:?}: {:?}", e.involved_object.name, e.message))
        .collect();
    assert!(
        warnings.is_empty(),
        "warnings while throttled: {warnings:?}"
    );

    setup.stop_operator().await;
    setup.leak_check().assert_clean().await;
}
