//! `helm install` as a user runs it: the pods run with the chart's RBAC only.

use std::collections::BTreeSet;
use std::time::Duration;

use dfns_test_support::NodeCluster;
use serde_json::Value;

use crate::failover::on_node_emulator;
use crate::release::{Release, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_runs_two_ready_replicas_that_elect_one_leader_and_serve_metrics_through_the_service()
 {
    let Some(node) = NodeCluster::shared() else {
        return;
    };
    eprintln!("timing: node start {:.1?}", node.start_time);
    let setup = on_node_emulator(node, "node-install").await;
    let (release, install_time) = Release::install(node, setup.namespace(), &[]);
    eprintln!("timing: helm install to 2/2 Ready {install_time:.1?}");

    let ready = release.ready_pods();
    assert_eq!(ready.len(), 2, "two Ready replicas, got {ready:?}");
    let leader = eventually(Duration::from_secs(60), "a replica holds the Lease", || {
        release.leader()
    })
    .await;
    assert!(
        ready.contains(&leader),
        "the leader {leader} is one of the Ready pods {ready:?}"
    );

    // Through the Service: the API server's service proxy picks one of its endpoints.
    let service = format!("{}-dfns-operator-metrics", release.name);
    let path = format!(
        "/api/v1/namespaces/{}/services/http:{service}:http-metrics/proxy/metrics",
        release.namespace
    );
    let metrics = node.kubectl(&["get", "--raw", &path], "");
    assert!(
        metrics.contains("dfns_operator_build_info"),
        "/metrics through Service {service}: {}",
        &metrics[..metrics.len().min(500)]
    );

    // The pods authenticate as the chart's ServiceAccount with its token, and nothing but the
    // chart binds that account: what the operator can do is exactly the chart's RBAC.
    let account = format!("{}-dfns-operator", release.name);
    for pod in release.objects("pods") {
        assert_eq!(
            pod["spec"]["serviceAccountName"],
            account.as_str(),
            "pod runs as the chart's ServiceAccount"
        );
    }
    let (ok, manifest) = node.helm(&[
        "get",
        "manifest",
        &release.name,
        "--namespace",
        &release.namespace,
    ]);
    assert!(ok, "helm get manifest: {manifest}");
    let chart_bindings: BTreeSet<String> = dfns_test_support::chart::documents(&manifest)
        .iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("RoleBinding" | "ClusterRoleBinding")
            )
        })
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        bindings_of(node, &account, &release.namespace),
        chart_bindings
    );

    release.assert_no_leaks(&setup).await;
}

/// Every RoleBinding and ClusterRoleBinding in the cluster naming this ServiceAccount.
fn bindings_of(node: &NodeCluster, account: &str, namespace: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (kind, scope) in [
        ("RoleBinding", "--all-namespaces"),
        ("ClusterRoleBinding", ""),
    ] {
        let mut args = vec!["get", kind, "-o", "json"];
        if !scope.is_empty() {
            args.push(scope);
        }
        let list: Value = serde_json::from_str(&node.kubectl(&args, "")).expect("kubectl JSON");
        for binding in list["items"].as_array().into_iter().flatten() {
            let names_account = binding["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["name"] == account
                        && s["namespace"] == namespace
                });
            if names_account {
                found.insert(format!(
                    "{kind}/{}",
                    binding["metadata"]["name"].as_str().unwrap()
                ));
            }
        }
    }
    found
}
