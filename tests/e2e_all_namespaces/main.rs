//! The chart's default: one operator watching all namespaces (`watch_namespace` unset), serving
//! resources in two namespaces of its own. A separate test binary, because such an operator sees
//! every namespace: cargo runs test binaries one after another, so no other e2e test runs beside
//! it. It asserts only on its own namespaces, and its cluster connection is selected by the test's
//! label (`cluster_connection_selector`), so it serves no other test's cluster connection.

use std::time::Duration;

use dfns_operator::api::DfnsServiceAccount;
use dfns_test_support::TestNamespace;
use dfns_test_support::operator::{Setup, WAIT, secret_text};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Waits until service account `name` in `namespace` is Ready for its current generation.
async fn wait_ready_in(setup: &Setup, namespace: &str, name: &str) -> DfnsServiceAccount {
    let api = Api::<DfnsServiceAccount>::namespaced(setup.kube.clone(), namespace);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sa = api.get(name).await.expect("get DfnsServiceAccount");
        let generation = sa.metadata.generation;
        let ready = sa.status.iter().flat_map(|s| &s.conditions).any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation
        });
        if ready {
            return sa;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace}/{name} not Ready: {:?}",
            sa.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_operator_watching_all_namespaces_serves_resources_in_each() {
    let mut setup = Setup::new("e2e-all-ns").await;
    let other = TestNamespace::new(setup.cp, "e2e-all-ns-b").await;
    let (first, second) = (setup.namespace().to_owned(), other.name().to_owned());

    // The first namespace has its own connection; both may use the cluster connection.
    setup.admin_connection("main", json!({})).await;
    setup.create_admin_login_secret("cluster-login").await;
    let cluster = format!("all-{first}");
    setup
        .admin_cluster_connection(
            &cluster,
            "cluster-login",
            json!({ "namespaceSelector": { "matchExpressions": [
                { "key": "kubernetes.io/metadata.name", "operator": "In", "values": [first, second] },
            ] } }),
        )
        .await;

    let mut config = setup.config();
    config.watch_namespace = None;
    setup.start_operator_with(config);

    setup
        .apply::<DfnsServiceAccount>(
            "local",
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } }),
        )
        .await;
    let sa = json!({
        "apiVersion": "dfns.io/v1alpha1", "kind": "DfnsServiceAccount",
        "metadata": { "name": "remote" },
        "spec": { "connectionRef": { "kind": "ClusterDfnsConnection", "name": cluster } },
    });
    Api::<DfnsServiceAccount>::namespaced(setup.kube.clone(), &second)
        .patch(
            "remote",
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&sa),
        )
        .await
        .expect("apply DfnsServiceAccount in the second namespace");

    let mut ids = Vec::new();
    for (namespace, name) in [(&first, "local"), (&second, "remote")] {
        let sa = wait_ready_in(&setup, namespace, name).await;
        ids.push(sa.status.unwrap().service_account_id.unwrap());
        let secret = Api::<Secret>::namespaced(setup.kube.clone(), namespace)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{namespace}/{name}: Secret written next to it: {e}"));
        assert!(secret_text(&secret, "DFNS_AUTH_TOKEN").is_some());
    }
    let state = setup.emulator.state();
    for (id, namespace, name) in [(&ids[0], &first, "local"), (&ids[1], &second, "remote")] {
        let in_dfns = state
            .service_accounts
            .iter()
            .find(|s| &s.service_account_id == id)
            .expect("in Dfns");
        assert_eq!(in_dfns.name, format!("{namespace}-{name}"));
    }
    setup.stop_operator().await;
    // The second namespace's Secret is outside the default leak check's namespace: add it.
    let remote = Api::<Secret>::namespaced(setup.kube.clone(), &second)
        .get("remote")
        .await
        .unwrap();
    let token = secret_text(&remote, "DFNS_AUTH_TOKEN").unwrap();
    let key = secret_text(&remote, "DFNS_PRIVATE_KEY").unwrap();
    setup
        .leak_check()
        .with_secret("the second namespace's token", &token)
        .with_secret("the second namespace's key", &key)
        .assert_clean()
        .await;
    drop(other);
}
