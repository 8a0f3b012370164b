//! Workload restarts on a real kubelet: a Deployment whose pods load the service account's Secret
//! with envFrom, named in the service account's `rolloutRestartTargets`, gets new pods once each
//! time the Secret switches to a new credential (here: the Secret deleted, a replacement minted),
//! the old pods go, and the new ones work with the new credential through the official SDK. The
//! operator runs from the chart, so its RBAC (`rbac.rolloutRestart`) is the chart's.

use std::time::Duration;

use dfns_operator::api::DfnsServiceAccount;
use dfns_test_support::operator::Setup;
use dfns_test_support::{NodeCluster, TestNamespace};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

use crate::failover::on_node_emulator;
use crate::release::Release;

const SIGNER: &str = "payments-signer";
const WORKER: &str = "payments-worker";

#[tokio::test(flavor = "multi_thread")]
async fn a_workload_loading_the_secret_gets_new_pods_once_per_switch_that_use_the_new_credential() {
    let Some(node) = NodeCluster::shared() else {
        return;
    };
    let setup = on_node_emulator(node, "node-restart").await;
    let operator_ns = TestNamespace::new(node.control_plane(), "node-restart-operator").await;
    let watch = format!("operator.watchNamespace={}", setup.namespace());
    let (release, _) = Release::install(
        node,
        operator_ns.name(),
        &["--set", &watch, "--set", "operator.restartDebounce=2s"],
    );
    let role = setup
        .create_role(
            "restart-role",
            &["Auth:ServiceAccounts:Read", "Permissions:Create"],
        )
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    setup
        .apply::<DfnsServiceAccount>(
            SIGNER,
            json!({
                "connectionRef": { "kind": "DfnsConnection", "name": "main" },
                "permissionId": role,
                "rolloutRestartTargets": [{ "kind": "Deployment", "name": WORKER }],
            }),
        )
        .await;
    setup.wait_ready::<DfnsServiceAccount>(SIGNER).await;
    create_worker(&setup, &node.sdk_workload_image().0).await;
    let mut pod = one_working_pod(&setup, None).await;

    for switch in 1..=2 {
        switch_by_deleting_the_secret(&setup).await;
        pod = one_working_pod(&setup, Some(&pod)).await;
        let deployment = setup.api::<Deployment>().get(WORKER).await.unwrap();
        assert_eq!(
            deployment.metadata.generation,
            Some(1 + switch),
            "one pod-template change per switch"
        );
    }
    let replica_sets = setup
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels(&format!("app={WORKER}")))
        .await
        .unwrap();
    assert_eq!(replica_sets.items.len(), 3, "the first and one per switch");
    release.assert_no_leaks(&setup).await;
}

/// The SDK workload (an authenticated read and a signed action at start, then it stays up), with
/// the Secret as its environment. The signed action creates a role named after the pod.
async fn create_worker(setup: &Setup, image: &str) {
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": WORKER },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": WORKER } },
            "template": {
                "metadata": { "labels": { "app": WORKER } },
                "spec": {
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 5,
                    "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": "worker",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "env": [{ "name": "WORKLOAD_PROOF_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
                        "envFrom": [{ "secretRef": { "name": SIGNER } }],
                        "securityContext": {
                            "readOnlyRootFilesystem": true,
                            "allowPrivilegeEscalation": false,
                            "capabilities": { "drop": ["ALL"] },
                        },
                    }],
                },
            },
        },
    });
    setup
        .api::<Deployment>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .expect("create the worker Deployment");
}

/// Deletes the Secret and waits until the operator has switched it to a replacement credential.
async fn switch_by_deleting_the_secret(setup: &Setup) {
    let api = setup.api::<DfnsServiceAccount>();
    let switched_at = |sa: DfnsServiceAccount| sa.status.and_then(|s| s.switched_at);
    let before = switched_at(api.get(SIGNER).await.unwrap());
    setup
        .secrets()
        .delete(SIGNER, &DeleteParams::default())
        .await
        .expect("delete the Secret");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while switched_at(api.get(SIGNER).await.unwrap()) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Secret did not switch"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    setup.wait_ready::<DfnsServiceAccount>(SIGNER).await;
}

/// Waits until the worker runs exactly one pod, other than `previous` (which is gone), and that
/// pod made its authenticated read and signed action; its name.
async fn one_working_pod(setup: &Setup, previous: Option<&str>) -> String {
    let pods = setup.api::<Pod>();
    let params = ListParams::default().labels(&format!("app={WORKER}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let mut seen = String::new();
    while tokio::time::Instant::now() < deadline {
        let names: Vec<String> = pods
            .list(&params)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        if let [name] = names.as_slice()
            && Some(name.as_str()) != previous
        {
            let logs = pods
                .logs(name, &LogParams::default())
                .await
                .unwrap_or_default();
            assert!(!logs.contains("workload: failed"), "{name} failed: {logs}");
            if logs.contains("workload: signed user action ok") {
                return name.clone();
            }
            seen = format!("{name}: {logs}");
        } else {
            seen = format!("pods {names:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no single working pod after {previous:?}; last seen {seen}");
}
