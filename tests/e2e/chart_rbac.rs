//! The operator with exactly the Helm chart's RBAC: the ServiceAccount, ClusterRole, Role and
//! bindings that `helm template` renders are applied to the real control plane, and the operator
//! runs as that ServiceAccount (impersonation) through create, update and delete, with leader
//! election, Events, a namespaced and a cluster connection. Any missing permission would show as
//! a 403 and the resources would never get Ready. Also: tenants get exactly the access the
//! chart aggregates into the default roles.

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_operator::controller::RunOptions;
use dfns_operator::controller::leader::LeaseConfig;
use dfns_operator::telemetry::Metrics;
use dfns_test_support::chart::{documents, helm_template, kubectl, of_kind, to_yaml};
use dfns_test_support::operator::{Setup, WAIT};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_with_exactly_the_charts_rbac_creates_updates_and_deletes() {
    operator_with_the_charts_rbac("e2e-chart-rbac", false).await;
}

/// With `operator.watchNamespace`, Secrets and the namespaced kinds are granted by a Role in that
/// namespace only; the operator needs nothing cluster-wide beyond ClusterDfnsConnections,
/// namespaces and Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_watching_one_namespace_needs_no_cluster_wide_secret_access() {
    operator_with_the_charts_rbac("e2e-chart-rbac-ns", true).await;
}

async fn operator_with_the_charts_rbac(prefix: &str, namespace_scoped: bool) {
    let setup = Setup::new(prefix).await;
    let ns = setup.namespace().to_owned();
    let release = format!("r-{ns}");

    // The chart's RBAC, as `helm install` would create it in the release namespace (which is also
    // the watched namespace: the test operator watches its own namespace).
    let watch = format!("operator.watchNamespace={ns}");
    let values: &[&str] = if namespace_scoped { &[&watch] } else { &[] };
    let docs = documents(&helm_template(&release, &ns, values));
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
    // Roles for the Lease and the seal key, plus one for the watched namespace when scoped;
    // the operator's ClusterRole and the tenants' edit and view ClusterRoles.
    let expected = if namespace_scoped { 11 } else { 9 };
    assert_eq!(rbac.len(), expected, "the chart renders these RBAC objects");
    if namespace_scoped {
        // The operator's own ClusterRole: the one not aggregated into a tenant role.
        let cluster_role = of_kind(&docs, "ClusterRole")
            .into_iter()
            .find(|r| {
                let labels = r["metadata"]["labels"].to_string();
                !labels.contains("aggregate-to-")
            })
            .expect("the operator's ClusterRole");
        assert!(
            !cluster_role.to_string().contains("\"secrets\""),
            "no cluster-wide Secret access: {cluster_role}"
        );
    }
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

/// Tenants use the kinds through Kubernetes' default roles (the chart's aggregated ClusterRoles):
/// a namespace editor manages its credentials and connections, a viewer reads them, and neither
/// can write the `/status` the operator keeps its record in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_editor_manages_credentials_but_cannot_write_their_status() {
    let setup = Setup::new("e2e-tenant-roles").await;
    let ns = setup.namespace().to_owned();
    let docs = documents(&helm_template(&format!("r-{ns}"), &ns, &[]));
    let mut tenant_roles: Vec<serde_json::Value> = of_kind(&docs, "ClusterRole")
        .into_iter()
        .filter(|r| {
            r["metadata"]["labels"]
                .to_string()
                .contains("aggregate-to-")
        })
        .cloned()
        .collect();
    assert_eq!(
        tenant_roles.len(),
        2,
        "the chart renders an edit and a view role"
    );
    for role in &mut tenant_roles {
        for (key, value) in setup.cluster_labels() {
            role["metadata"]["labels"][key] = value.into();
        }
    }
    let bindings: Vec<serde_json::Value> = [("editor", "edit"), ("viewer", "view")]
        .iter()
        .map(|(user, role)| {
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": { "name": format!("tenant-{user}"), "namespace": ns },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
                "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("{ns}-{user}") }],
            })
        })
        .collect();
    let objects: Vec<&serde_json::Value> = tenant_roles.iter().chain(bindings.iter()).collect();
    let (ok, output) = kubectl(
        setup.cp.kubeconfig_path(),
        &["apply", "--server-side", "-f", "-"],
        &to_yaml(&objects),
    );
    assert!(ok, "applying the tenant roles failed:\n{output}");

    let editor = setup.cp.impersonating(&format!("{ns}-editor"), &[]);
    let viewer = setup.cp.impersonating(&format!("{ns}-viewer"), &[]);
    let spec = json!({
        "apiVersion": "dfns.io/v1alpha1",
        "kind": "DfnsServiceAccount",
        "metadata": { "name": "svc", "namespace": ns },
        "spec": { "connectionRef": { "kind": "DfnsConnection", "name": "main" } },
    });
    let service_account: DfnsServiceAccount = serde_json::from_value(spec).unwrap();
    // The aggregation controller folds the chart's rules into `edit` shortly after they exist.
    let as_editor = Api::<DfnsServiceAccount>::namespaced(editor, &ns);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match as_editor
            .create(&PostParams::default(), &service_account)
            .await
        {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 403 && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("an editor could not create a DfnsServiceAccount: {e}"),
        }
    }
    as_editor
        .patch(
            "svc",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "active": false } })),
        )
        .await
        .expect("an editor changes the spec");
    let forged = Patch::Merge(json!({ "status": { "serviceAccountId": "sa-someone-elses" } }));
    let refused = as_editor
        .patch_status("svc", &PatchParams::default(), &forged)
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
        "an editor must not write status: {refused:?}"
    );

    let as_viewer = Api::<DfnsServiceAccount>::namespaced(viewer, &ns);
    as_viewer
        .get("svc")
        .await
        .expect("a viewer reads the resource");
    for refused in [
        as_viewer
            .patch(
                "svc",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "active": true } })),
            )
            .await,
        as_viewer
            .patch_status("svc", &PatchParams::default(), &forged)
            .await,
    ] {
        assert!(
            matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
            "a viewer must not write: {refused:?}"
        );
    }
    let status = setup
        .api::<DfnsServiceAccount>()
        .get("svc")
        .await
        .unwrap()
        .status;
    assert!(
        status.and_then(|s| s.service_account_id).is_none(),
        "no tenant wrote an id into status"
    );
}
