//! The operator with exactly the Helm chart's RBAC: the ServiceAccount, ClusterRole, Role and
//! bindings that `helm template` renders are applied to the real control plane, and the operator
//! runs as that ServiceAccount (impersonation) through create, update and delete, with leader
//! election, Events, a namespaced and a cluster connection. Any missing permission would show as
//! a 403 and the resources would never get Ready.

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_operator::controller::RunOptions;
use dfns_operator::controller::leader::LeaseConfig;
use dfns_operator::telemetry::Metrics;
use dfns_test_support::chart::{documents, helm_template, kubectl, of_kind, to_yaml};
use dfns_test_support::operator::{Setup, WAIT};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_with_exactly_the_charts_rbac_creates_updates_and_deletes() {
    let setup = Setup::new("e2e-chart-rbac").await;
    let ns = setup.namespace().to_owned();
    let release = format!("r-{ns}");

    // The chart's RBAC, as `helm install` would create it in the release namespace.
    let docs = documents(&helm_template(&release, &ns, &[]));
    let mut rbac: Vec<serde_json::Value> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ]
    .iter()
    .flat_map(|kind| of_kind(&docs, kind))
    .cloned()
    .collect();
    // Two Roles (the Lease; the seal key in the release namespace), one of each other kind.
    assert_eq!(rbac.len(), 7, "the chart renders these RBAC objects");
    // The cluster-scoped ones carry the test's labels, so the namespace's clean-up removes them
    // also when the test fails.
    for doc in &mut rbac {
        if doc["kind"] == "ClusterRole" || doc["kind"] == "ClusterRoleBinding" {
            let labels = &mut doc["metadata"]["labels"];
            if labels.is_null() {
                *labels = json!({});
            }
            for (key, value) in setup.cluster_labels() {
                labels[key] = value.into();
            }
        }
    }
    let rbac: Vec<&serde_json::Value> = rbac.iter().collect();
    let (ok, output) = kubectl(
        setup.cp.kubeconfig_path(),
        &["apply", "--server-side", "-f", "-"],
        &to_yaml(&rbac),
    );
    assert!(ok, "applying the chart's RBAC failed:\n{output}");
    let service_account = of_kind(&docs, "ServiceAccount")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let lease_name = "dfns-operator"; // the chart's operator.leaderElection.leaseName

    // Connections, created by an administrator as a platform team would.
    let role = setup
        .create_role("rbac-role", &["Auth:ServiceAccounts:Read"])
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    let cluster_connection = format!("rbac-{ns}");
    setup.create_admin_login_secret("cluster-login").await;
    setup
        .admin_cluster_connection(
            &cluster_connection,
            "cluster-login",
            json!({
                "allowUnscopedTokens": true,
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } },
            }),
        )
        .await;

    // The operator as the chart's ServiceAccount, with leader election on the chart's Lease,
    // serving only this test's cluster connection (setup.config()).
    let user = format!("system:serviceaccount:{ns}:{service_account}");
    let client = setup.cp.impersonating(&user, &[]);
    let metrics = std::sync::Arc::new(Metrics::new());
    let options = RunOptions {
        leader_election: Some(LeaseConfig::new(&ns, lease_name, "rbac-test_1")),
        metrics: metrics.clone(),
        ..RunOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The seal key Secret the chart's Deployment names (its Role grants get on that name only).
    let seal_key_secret = of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
        [0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--seal-key-secret="))
        .expect("the Deployment names its seal key Secret")
        .to_owned();
    let config = dfns_operator::controller::ControllerConfig {
        seal_key_secret,
        ..setup.config()
    };
    let operator = tokio::spawn(dfns_operator::controller::run_with(
        client,
        config,
        options,
        async move {
            let _ = stopped.await;
        },
    ));

    // Create.
    setup.wait_ready::<DfnsConnection>("main").await;
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>(
            "svc",
            json!({ "connectionRef": conn, "permissionId": role }),
        )
        .await;
    let cluster_ref = json!({ "kind": "ClusterDfnsConnection", "name": cluster_connection });
    setup
        .apply::<DfnsPersonalAccessToken>(
            "pat",
            json!({ "connectionRef": cluster_ref, "daysValid": 7 }),
        )
        .await;
    let svc = setup.wait_ready::<DfnsServiceAccount>("svc").await;
    setup.wait_ready::<DfnsPersonalAccessToken>("pat").await;
    assert!(setup.secrets().get_opt("svc").await.unwrap().is_some());
    assert!(setup.secrets().get_opt("pat").await.unwrap().is_some());
    let sa_id = svc.status.unwrap().service_account_id.unwrap();
    let lease = Api::<Lease>::namespaced(setup.kube.clone(), &ns)
        .get(lease_name)
        .await
        .expect("the Lease exists");
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("rbac-test_1")
    );

    // Update: deactivate, and relabel the Secret.
    setup
        .apply::<DfnsServiceAccount>(
            "svc",
            json!({ "connectionRef": conn, "permissionId": role, "active": false, "secret": { "labels": { "team": "payments" } } }),
        )
        .await;
    setup
        .wait_condition::<DfnsServiceAccount>("svc", "Ready", "True", Some("Inactive"))
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let secret = setup.secrets().get("svc").await.unwrap();
        if secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .is_some_and(|v| v == "payments")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Secret labels were not updated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !setup
            .emulator
            .state()
            .service_accounts
            .iter()
            .find(|s| s.service_account_id == sa_id)
            .unwrap()
            .is_active
    );

    // Delete.
    setup
        .api::<DfnsServiceAccount>()
        .delete("svc", &DeleteParams::default())
        .await
        .unwrap();
    setup
        .api::<DfnsPersonalAccessToken>()
        .delete("pat", &DeleteParams::default())
        .await
        .unwrap();
    setup.wait_gone::<DfnsServiceAccount>("svc").await;
    setup.wait_gone::<DfnsPersonalAccessToken>("pat").await;
    setup
        .wait_gone::<k8s_openapi::api::core::v1::Secret>("svc")
        .await;

    // Events were published under the same identity.
    let events = Api::<Event>::namespaced(setup.kube.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reporting_controller.as_deref() == Some("dfns-operator")),
        "no Events from dfns-operator"
    );
    assert!(
        metrics.reconcile_count("DfnsServiceAccount") > 0,
        "metrics counted the reconciles"
    );

    assert!(stop.send(()).is_ok(), "the operator had already stopped");
    let result = tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .expect("operator stops")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let lease = Api::<Lease>::namespaced(setup.kube.clone(), &ns)
        .get(lease_name)
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity,
        None,
        "the Lease was handed back on shutdown"
    );
    setup
        .leak_check()
        .with_metrics(&metrics)
        .assert_clean()
        .await;
}
