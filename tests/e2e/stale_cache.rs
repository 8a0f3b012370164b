//! A replica whose watch cache lags behind the resource (docs/architecture.md, "A reconcile"):
//! the operator no longer reads the resource before writing; its status writes carry the
//! `resourceVersion` they were decided on, so a decision made on a stale copy is refused (409)
//! and made again on a fresh read, and Dfns is never asked for a second create.

use std::sync::Arc;

use dfns_operator::api::DfnsServiceAccount;
use dfns_operator::controller::Context;
use dfns_operator::controller::credential::{self, CredentialResource, FINALIZER};
use dfns_operator::controller::seal::Sealer;
use dfns_operator::telemetry::{KubeWriteCounterLayer, Metrics};
use dfns_test_support::operator::{Setup, kubernetes_writes_by_resource};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const NAME: &str = "app";

/// Service accounts Dfns holds, archived or not: every create the operator ever made.
fn dfns_creates(setup: &Setup) -> usize {
    setup.emulator.state().service_accounts.len()
}

#[tokio::test]
async fn a_reconcile_on_a_stale_copy_meets_a_conflict_and_never_creates_twice() {
    let mut setup = Setup::new("e2e-stale").await;
    setup.admin_connection("main", json!({})).await;
    setup
        .apply::<DfnsServiceAccount>(
            NAME,
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } }),
        )
        .await;
    // The copy a lagging cache holds: the resource as it was before its create, finalizer in
    // place (so a reconcile of it goes straight to the create path).
    let api = setup.api::<DfnsServiceAccount>();
    let stale = api
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": [FINALIZER] } })),
        )
        .await
        .expect("add the finalizer");

    setup.start_operator();
    let ready = setup.wait_ready::<DfnsServiceAccount>(NAME).await;
    setup.stop_operator().await;
    assert_eq!(dfns_creates(&setup), 1, "one create for the resource");
    let recorded = ready.credential_status().and_then(|s| s.recorded_id());
    assert!(recorded.is_some(), "the ids are recorded");

    // Another replica reconciles from its cache, which still shows no create: the Secret (read
    // fresh) holds a key, so it decides to record a pending create — on a version long gone.
    let metrics = Arc::new(Metrics::new());
    let kube = kube::client::ClientBuilder::try_from(setup.cp.config())
        .expect("kube client")
        .with_layer(&KubeWriteCounterLayer::new(metrics.clone()))
        .build();
    let config = setup.config();
    let sealer = Sealer::load_or_create(
        kube.clone(),
        &config.operator_namespace,
        &config.seal_key_secret,
    )
    .await
    .expect("the seal key");
    let ctx = Arc::new(Context::new(
        kube,
        config,
        None,
        sealer,
        dfns_client::Gate::new(),
        metrics.clone(),
    ));
    credential::reconcile::<DfnsServiceAccount>(Arc::new(stale), ctx)
        .await
        .expect("the lagging replica's reconcile ends well, on a fresh read");

    assert_eq!(
        dfns_creates(&setup),
        1,
        "no second create in Dfns: the reconcile decided again on a fresh read"
    );
    let writes = kubernetes_writes_by_resource(&metrics);
    assert_eq!(
        writes.get("dfnsserviceaccounts/status"),
        Some(&1),
        "the stale decision was sent once, conditional on the stale version: {writes:?}"
    );
    let after = api.get(NAME).await.expect("get the resource");
    assert_eq!(
        after.resource_version(),
        ready.resource_version(),
        "the API server refused it (409): the resource is unchanged"
    );
    assert_eq!(
        after.credential_status().and_then(|s| s.recorded_id()),
        recorded,
        "the recorded ids stay"
    );
    setup
        .leak_check()
        .with_metrics(&metrics)
        .assert_clean()
        .await;
}
