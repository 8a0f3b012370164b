//! `helm upgrade` with changed values keeps the credentials working; `helm uninstall` removes
//! everything the chart installed, leaving the CRDs and the credentials' Secrets.

use std::collections::BTreeSet;
use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::NodeCluster;
use serde_json::{Value, json};

use crate::failover::on_node_emulator;
use crate::release::{Release, eventually};

/// Namespaced kinds the chart creates, or that exist because of what it created.
const NAMESPACED: &[&str] = &[
    "deployments",
    "replicasets",
    "pods",
    "services",
    "endpointslices",
    "serviceaccounts",
    "roles",
    "rolebindings",
    "configmaps",
    "secrets",
    "leases",
    "poddisruptionbudgets",
    "networkpolicies",
];

#[tokio::test(flavor = "multi_thread")]
async fn helm_upgrade_keeps_credentials_ready_and_uninstall_leaves_only_the_crds_and_the_credential_secrets()
 {
    let Some(node) = NodeCluster::shared() else {
        return;
    };
    let setup = on_node_emulator(node, "node-uninstall").await;
    let namespace = setup.namespace().to_owned();
    let before = namespaced_objects(node, &namespace);
    let (mut release, _) = Release::install(node, &namespace, &[]);
    // The PAT carries its user's rights (no role to prepare); the connection must allow that.
    setup
        .admin_connection("main", json!({ "allowUnscopedTokens": true }))
        .await;
    setup.wait_ready::<DfnsConnection>("main").await;
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>("sa-1", json!({ "connectionRef": conn }))
        .await;
    setup
        .apply::<DfnsPersonalAccessToken>(
            "pat-1",
            json!({ "connectionRef": conn, "daysValid": 30 }),
        )
        .await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("sa-1").await;
    setup.wait_ready::<DfnsPersonalAccessToken>("pat-1").await;
    let sa_credential = sa.status.as_ref().and_then(|s| s.credential_id.clone());

    // Changed values: one replica, a different log level.
    let mut args = vec!["upgrade".to_owned(), release.name.clone(), chart()];
    args.extend(release.values(&[
        "--set",
        "replicaCount=1",
        "--set",
        "operator.logLevel=debug",
    ]));
    args.extend(["--wait".into(), "--timeout".into(), "180s".into()]);
    let (ok, output) = node.helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "helm upgrade: {output}");
    eventually(
        Duration::from_secs(120),
        "one replica after the upgrade",
        || {
            let pods = release.objects("pods");
            (pods.len() == 1 && release.ready_pods().len() == 1).then_some(())
        },
    )
    .await;
    let deployment = &release.objects("deployments")[0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert!(
        deployment.to_string().contains("debug"),
        "the new log level reached the Deployment"
    );
    // The upgraded operator carries on: a spec change is served, the credential stays the same.
    setup
        .apply::<DfnsServiceAccount>(
            "sa-1",
            json!({ "connectionRef": conn, "secret": { "labels": { "upgraded": "yes" } } }),
        )
        .await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("sa-1").await;
    assert_eq!(
        sa.status.as_ref().and_then(|s| s.credential_id.clone()),
        sa_credential
    );
    assert!(sa_credential.is_some(), "a credential was recorded");

    let logs_dir = tempfile::tempdir().expect("temp dir");
    let operator_log = logs_dir.path().join("operator.log");
    release.save_logs(&operator_log);
    release.uninstall();
    let leftovers = eventually(
        Duration::from_secs(120),
        "the release's pods are gone",
        || {
            let now = namespaced_objects(node, &namespace);
            (!now.iter().any(|o| o.starts_with("pods/"))).then_some(now)
        },
    )
    .await;
    let added: BTreeSet<String> = leftovers.difference(&before).cloned().collect();
    // Exactly: the credentials' Secrets, the test's own login Secret, and what the operator (not
    // the chart) created in its namespace: its seal key (kept on purpose: it unseals the ids
    // recorded in status, so a reinstall adopts the resources) and its leader-election Lease.
    let expected: BTreeSet<String> = [
        "secrets/sa-1".to_owned(),
        "secrets/pat-1".to_owned(),
        "secrets/main-login".to_owned(),
        format!("secrets/{}-dfns-operator-seal-key", release.name),
        "leases/dfns-operator".to_owned(),
    ]
    .into();
    assert_eq!(
        added, expected,
        "what the namespace holds after uninstall, besides what it held before"
    );
    let cluster_wide = cluster_objects_named(node, &release.name);
    assert!(
        cluster_wide.is_empty(),
        "cluster-scoped objects left behind: {cluster_wide:?}"
    );
    setup
        .leak_check()
        .with_log_file(&operator_log)
        .assert_clean()
        .await;
    let crds = node.kubectl(&["get", "crd", "-o", "name"], "");
    for kind in [
        "dfnsserviceaccounts",
        "dfnspersonalaccesstokens",
        "dfnsconnections",
        "clusterdfnsconnections",
    ] {
        assert!(
            crds.contains(&format!("{kind}.dfns.io")),
            "CRD {kind} stays installed"
        );
    }
}

fn chart() -> String {
    dfns_test_support::chart::chart_dir()
        .to_str()
        .expect("chart path")
        .to_owned()
}

/// `kind/name` of every object of [`NAMESPACED`] kinds in `namespace`.
fn namespaced_objects(node: &NodeCluster, namespace: &str) -> BTreeSet<String> {
    let out = node.kubectl(
        &["get", &NAMESPACED.join(","), "-n", namespace, "-o", "json"],
        "",
    );
    let list: Value = serde_json::from_str(&out).expect("kubectl JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let kind = o["kind"].as_str().unwrap().to_lowercase();
            format!("{kind}s/{}", o["metadata"]["name"].as_str().unwrap())
        })
        .collect()
}

/// Cluster-scoped RBAC whose name mentions the release (the chart names them after it).
fn cluster_objects_named(node: &NodeCluster, release: &str) -> Vec<String> {
    node.kubectl(
        &["get", "clusterroles,clusterrolebindings", "-o", "name"],
        "",
    )
    .lines()
    .filter(|l| l.contains(release))
    .map(str::to_owned)
    .collect()
}
