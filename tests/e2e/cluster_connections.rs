//! `ClusterDfnsConnection` as namespaces meet it: its `namespaceSelector` refuses a namespace it
//! does not select (nothing made in Dfns), relabelling the namespace lets the resource through at
//! once, and narrowing the selector again is reported. A resource naming no connection uses the
//! cluster connection named `default` (the only test creating that name).

use std::collections::BTreeMap;

use dfns_operator::api::{ClusterDfnsConnection, DEFAULT_CLUSTER_CONNECTION, DfnsServiceAccount};
use dfns_test_support::operator::{Setup, ready_condition};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const ALLOWED: &str = "e2e.dfns.io/credentials";

/// Applies cluster connection `name` (the test's labels, the admin's login Secret) with `extra`.
async fn apply_cluster_connection(setup: &Setup, name: &str, extra: Value) {
    setup
        .admin_cluster_connection(name, "cluster-login", extra)
        .await;
}

async fn label_namespace(setup: &Setup, value: &str) {
    let labels: BTreeMap<&str, &str> = [(ALLOWED, value)].into();
    Api::<Namespace>::all(setup.kube.clone())
        .patch(
            setup.namespace(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": labels } })),
        )
        .await
        .expect("label the namespace");
}

async fn wait_cluster_ready(setup: &Setup, name: &str) {
    let api = Api::<ClusterDfnsConnection>::all(setup.kube.clone());
    let deadline = tokio::time::Instant::now() + dfns_test_support::operator::WAIT;
    loop {
        let c = api.get(name).await.expect("get ClusterDfnsConnection");
        let generation = c.metadata.generation;
        let ready = c.status.iter().flat_map(|s| &s.conditions).any(|cond| {
            cond.type_ == "Ready" && cond.status == "True" && cond.observed_generation == generation
        });
        if ready {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} not Ready: {:?}",
            c.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn namespace_selector_refuses_admits_on_relabel_deactivates_on_narrowing_and_default_is_used()
{
    let mut setup = Setup::new("e2e-cluster-conn").await;
    setup.create_admin_login_secret("cluster-login").await;
    let picky = format!("picky-{}", setup.namespace());
    let selector =
        |value: &str| json!({ "namespaceSelector": { "matchLabels": { ALLOWED: value } } });
    apply_cluster_connection(&setup, &picky, selector("yes")).await;
    apply_cluster_connection(&setup, DEFAULT_CLUSTER_CONNECTION, json!({})).await;
    setup.start_operator();
    wait_cluster_ready(&setup, &picky).await;

    // Not selected: refused, and nothing in Dfns.
    let picky_ref = json!({ "kind": "ClusterDfnsConnection", "name": picky });
    setup
        .apply::<DfnsServiceAccount>("app", json!({ "connectionRef": picky_ref }))
        .await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(
            "app",
            "Stalled",
            "True",
            Some("ConnectionNotAllowed"),
        )
        .await;
    let message = ready_condition(sa.status.as_ref()).message;
    assert!(
        message.contains(&picky) && message.contains("namespaceSelector"),
        "{message}"
    );
    assert!(
        setup.emulator.state().service_accounts.is_empty(),
        "nothing in Dfns"
    );
    assert!(setup.secrets().get_opt("app").await.unwrap().is_none());

    // Relabelled to match: Ready (the namespace's change wakes it; no resync is due for 10 min).
    label_namespace(&setup, "yes").await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("app").await;
    let id = sa.status.unwrap().service_account_id.unwrap();

    // The selector narrowed to exclude it again: the credential is deactivated, never left Ready.
    apply_cluster_connection(&setup, &picky, selector("only-others")).await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(
            "app",
            "Stalled",
            "True",
            Some("CredentialNoLongerAllowed"),
        )
        .await;
    let message = ready_condition(sa.status.as_ref()).message;
    assert!(message.contains("namespaceSelector"), "{message}");
    let state = setup.emulator.state();
    let in_dfns = state
        .service_accounts
        .iter()
        .find(|s| s.service_account_id == id)
        .expect("still in Dfns");
    assert!(
        !in_dfns.is_active,
        "narrowing the selector deactivates the credential"
    );

    // No connectionRef: the cluster connection named `default`.
    setup
        .apply::<DfnsServiceAccount>("defaulted", json!({}))
        .await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("defaulted").await;
    let id = sa.status.unwrap().service_account_id.unwrap();
    assert!(
        setup
            .emulator
            .state()
            .service_accounts
            .iter()
            .any(|s| s.service_account_id == id),
        "made in Dfns through the default connection"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
