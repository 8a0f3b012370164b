//! The Helm chart: lint clean, CRDs identical to crds/, a hardened Deployment, and every rendered
//! object accepted by a real API server (server-side dry-run).

use dfns_test_support::chart::{
    chart_dir, documents, helm_template, kubectl, of_kind, one_of_kind, to_yaml, tool,
};
use dfns_test_support::repo_root;
use dfns_test_support::{ControlPlane, TestNamespace};

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated = std::fs::read_to_string(repo_root().join("crds/dfns.io.yaml")).unwrap();
    let packaged = std::fs::read_to_string(chart_dir().join("crds/dfns.io.yaml")).unwrap();
    assert!(
        generated == packaged,
        "charts/dfns-operator/crds/dfns.io.yaml differs from crds/dfns.io.yaml: run `make crds`"
    );
}

#[test]
fn helm_lint_is_clean() {
    ControlPlane::shared();
    let output = std::process::Command::new(tool("helm"))
        .args(["lint", "--strict"])
        .arg(chart_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "helm lint failed:\n{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("[WARNING]") && !text.contains("[ERROR]"),
        "{text}"
    );
}

#[test]
fn deployment_runs_non_root_read_only_without_capabilities_with_probes_and_requests() {
    ControlPlane::shared();
    let docs = documents(&helm_template("dfns", "dfns-system", &[]));
    let deployment = one_of_kind(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert!(
        container["resources"]["requests"]["cpu"].is_string()
            && container["resources"]["requests"]["memory"].is_string()
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env: Vec<_> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"POD_NAMESPACE") && env.contains(&"POD_NAME"),
        "{env:?}"
    );
    let args: Vec<_> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(
        args.contains(&"--leader-election=true")
            && args.contains(&"--metrics-address=0.0.0.0:8080")
            && args.contains(&"--allowed-api-hosts=api.dfns.io,api.uae.dfns.io"),
        "{args:?}"
    );
    // Two replicas by default, so a PodDisruptionBudget keeps one during drains.
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        one_of_kind(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        1
    );
}

#[test]
fn more_than_one_replica_without_leader_election_is_refused() {
    ControlPlane::shared();
    let output = std::process::Command::new(tool("helm"))
        .args(["template", "dfns"])
        .arg(chart_dir())
        .args([
            "--set",
            "replicaCount=2",
            "--set",
            "operator.leaderElection.enabled=false",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("needs operator.leaderElection.enabled")
    );
}

#[test]
fn values_outside_the_schema_are_refused() {
    ControlPlane::shared();
    for bad in [
        "operator.concurrency=0",
        "operator.logFormat=xml",
        "operator.resyncInterval=soon",
        "operator.approvalCheckInterval=soon",
        "operator.restartDebounce=0s",
        "rbac.rolloutRestart=maybe",
        "operator.allowedApiHosts={https://api.dfns.io}",
        "operator.allowedApiHosts={api.dfns.io/path}",
        "operator.allowedApiHosts=null",
        "operator.allowedApiHosts={}",
        "unknownKey=1",
    ] {
        let output = std::process::Command::new(tool("helm"))
            .args(["template", "dfns"])
            .arg(chart_dir())
            .args(["--set", bad])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad} was accepted");
    }
}

#[test]
fn allowed_api_hosts_render_as_one_comma_separated_flag() {
    ControlPlane::shared();
    let docs = documents(&helm_template(
        "dfns",
        "dfns-system",
        &["operator.allowedApiHosts={api.dfns.io,*.gateway.example,127.0.0.1:8080}"],
    ));
    let args =
        one_of_kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .clone();
    assert!(
        args.iter()
            .any(|a| a == "--allowed-api-hosts=api.dfns.io,*.gateway.example,127.0.0.1:8080"),
        "{args:?}"
    );
}

#[test]
fn optional_service_monitor_and_network_policy_render_when_enabled() {
    ControlPlane::shared();
    let off = documents(&helm_template("dfns", "dfns-system", &[]));
    assert!(
        of_kind(&off, "ServiceMonitor").is_empty() && of_kind(&off, "NetworkPolicy").is_empty()
    );
    let on = documents(&helm_template(
        "dfns",
        "dfns-system",
        &[
            "metrics.serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
        ],
    ));
    let monitor = one_of_kind(&on, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http-metrics");
    let service = one_of_kind(&on, "Service");
    assert_eq!(service["spec"]["ports"][0]["name"], "http-metrics");
    // The ServiceMonitor selects the Service by the labels the Service carries.
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    let policy = one_of_kind(&on, "NetworkPolicy");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
}

/// Everything `helm install` would create (CRDs included) passes the API server's validation and
/// admission, without being persisted. The ServiceMonitor is left out: this control plane has no
/// Prometheus Operator CRDs.
#[tokio::test]
async fn rendered_chart_applies_with_server_side_dry_run() {
    let cp = ControlPlane::shared();
    let ns = TestNamespace::new(cp, "chart-dry-run").await;
    let release = format!("dry-{}", ns.name());
    let rendered = helm_template(&release, ns.name(), &["networkPolicy.enabled=true"]);
    let docs = documents(&rendered);
    assert!(docs.len() >= 8, "rendered {} objects", docs.len());
    let crds = std::fs::read_to_string(chart_dir().join("crds/dfns.io.yaml")).unwrap();
    let all: Vec<&serde_json::Value> = docs.iter().collect();
    let (ok, output) = kubectl(
        cp.kubeconfig_path(),
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "--field-manager=helm",
            "-f",
            "-",
        ],
        &format!("{crds}\n{}", to_yaml(&all)),
    );
    assert!(ok, "server-side dry-run refused the chart:\n{output}");
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap().to_lowercase();
        let name = doc["metadata"]["name"].as_str().unwrap();
        assert!(
            output.contains(&format!("{name} serverside-applied (server dry run)")),
            "{kind} {name} missing in:\n{output}"
        );
    }
}

/// Rules of the operator's own ClusterRole (not the tenants' aggregated ones).
fn operator_cluster_role(docs: &[serde_json::Value]) -> &serde_json::Value {
    let mut roles = of_kind(docs, "ClusterRole").into_iter().filter(|r| {
        !r["metadata"]["labels"]
            .to_string()
            .contains("aggregate-to-")
    });
    let role = roles.next().expect("the operator's ClusterRole");
    assert!(roles.next().is_none(), "one operator ClusterRole");
    role
}

fn grants_secrets(rules: &serde_json::Value) -> bool {
    rules.as_array().unwrap().iter().any(|rule| {
        rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "secrets")
    })
}

#[test]
fn watching_one_namespace_grants_secrets_in_that_namespace_only() {
    ControlPlane::shared();
    let all = documents(&helm_template("dfns", "dfns-system", &[]));
    assert!(grants_secrets(&operator_cluster_role(&all)["rules"]));

    let scoped = documents(&helm_template(
        "dfns",
        "dfns-system",
        &["operator.watchNamespace=payments"],
    ));
    let cluster_role = operator_cluster_role(&scoped);
    assert!(
        !grants_secrets(&cluster_role["rules"]),
        "no cluster-wide Secret access: {cluster_role}"
    );
    assert!(
        !cluster_role.to_string().contains("dfnsserviceaccounts"),
        "namespaced kinds are not granted cluster-wide: {cluster_role}"
    );
    let in_payments: Vec<_> = of_kind(&scoped, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["namespace"] == "payments")
        .collect();
    assert_eq!(in_payments.len(), 1, "one Role in the watched namespace");
    assert!(grants_secrets(&in_payments[0]["rules"]));
    assert!(
        of_kind(&scoped, "RoleBinding")
            .iter()
            .any(|b| b["metadata"]["namespace"] == "payments"
                && b["roleRef"]["name"] == in_payments[0]["metadata"]["name"]),
        "the watched namespace's Role is bound"
    );
    // A ClusterDfnsConnection's login Secret is read in the release namespace, with get only.
    let release_secret_verbs: Vec<_> = of_kind(&scoped, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["namespace"] == "dfns-system")
        .flat_map(|r| r["rules"].as_array().unwrap().iter())
        .filter(|rule| {
            rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "secrets")
        })
        .filter(|rule| rule["resourceNames"].is_null())
        .flat_map(|rule| rule["verbs"].as_array().unwrap().iter().cloned())
        .collect();
    assert_eq!(
        release_secret_verbs,
        vec![serde_json::json!("create"), serde_json::json!("get")],
        "create (the seal key) and get (connection Secrets) in the release namespace"
    );
}

/// The verbs a Role's rules grant on apps deployments, statefulsets and daemonsets, if any.
fn workload_verbs(role: &serde_json::Value) -> Option<serde_json::Value> {
    let rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["apiGroups"] == serde_json::json!(["apps"]))?;
    assert_eq!(
        rule["resources"],
        serde_json::json!(["deployments", "statefulsets", "daemonsets"])
    );
    Some(rule["verbs"].clone())
}

fn operator_args(docs: &[serde_json::Value]) -> Vec<String> {
    one_of_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn rollout_restarts_are_granted_get_and_patch_on_workloads_unless_switched_off() {
    ControlPlane::shared();
    let get_patch = Some(serde_json::json!(["get", "patch"]));
    let all = documents(&helm_template("dfns", "dfns-system", &[]));
    assert_eq!(workload_verbs(operator_cluster_role(&all)), get_patch);
    let args = operator_args(&all);
    assert!(
        args.iter().any(|a| a == "--rollout-restarts=true")
            && args.iter().any(|a| a == "--restart-debounce=10s"),
        "{args:?}"
    );

    // Watching one namespace: granted in that namespace only.
    let scoped = documents(&helm_template(
        "dfns",
        "dfns-system",
        &["operator.watchNamespace=payments"],
    ));
    assert_eq!(workload_verbs(operator_cluster_role(&scoped)), None);
    let in_payments = of_kind(&scoped, "Role")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == "payments")
        .expect("the watched namespace's Role");
    assert_eq!(workload_verbs(in_payments), get_patch);

    for watch in ["", "payments"] {
        let off = documents(&helm_template(
            "dfns",
            "dfns-system",
            &[
                "rbac.rolloutRestart=false",
                "operator.restartDebounce=30s",
                &format!("operator.watchNamespace={watch}"),
            ],
        ));
        for role in of_kind(&off, "ClusterRole")
            .into_iter()
            .chain(of_kind(&off, "Role"))
        {
            assert_eq!(workload_verbs(role), None, "watch {watch:?}: {role}");
        }
        let args = operator_args(&off);
        assert!(
            args.iter().any(|a| a == "--rollout-restarts=false")
                && args.iter().any(|a| a == "--restart-debounce=30s"),
            "{args:?}"
        );
    }
}

#[test]
fn tenant_roles_aggregate_into_edit_and_view_without_status_writes() {
    ControlPlane::shared();
    let docs = documents(&helm_template("dfns", "dfns-system", &[]));
    let tenant: Vec<_> = of_kind(&docs, "ClusterRole")
        .into_iter()
        .filter(|r| {
            r["metadata"]["labels"]
                .to_string()
                .contains("aggregate-to-")
        })
        .collect();
    assert_eq!(tenant.len(), 2);
    for role in tenant {
        let labels = &role["metadata"]["labels"];
        let rules = role["rules"].as_array().unwrap();
        let writes = rules.iter().any(|rule| {
            rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| !["get", "list", "watch"].contains(&v.as_str().unwrap()))
        });
        let status_writes = rules.iter().any(|rule| {
            rule["resources"].to_string().contains("/status")
                && rule["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| !["get", "list", "watch"].contains(&v.as_str().unwrap()))
        });
        assert!(!status_writes, "no tenant role writes status: {role}");
        assert!(
            !role.to_string().contains("clusterdfnsconnections"),
            "{role}"
        );
        if labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true" {
            assert_eq!(
                labels["rbac.authorization.k8s.io/aggregate-to-admin"],
                "true"
            );
            assert!(writes, "edit may manage the kinds");
        } else {
            assert_eq!(
                labels["rbac.authorization.k8s.io/aggregate-to-view"],
                "true"
            );
            assert!(!writes, "view only reads: {role}");
        }
    }
    let off = documents(&helm_template(
        "dfns",
        "dfns-system",
        &["rbac.aggregateToDefaultRoles=false"],
    ));
    assert_eq!(of_kind(&off, "ClusterRole").len(), 1);
}
