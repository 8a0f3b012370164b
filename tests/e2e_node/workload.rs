//! What a user does after `helm install`: a connection, a service account and a PAT applied with
//! kubectl, and a workload in another namespace that loads the service account's Secret with
//! envFrom and uses it with the official Dfns SDK.

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::{NodeCluster, TestNamespace};

use crate::failover::on_node_emulator;
use crate::release::{Release, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn workload_in_another_namespace_uses_the_service_account_secret_with_the_dfns_sdk_for_a_read_and_a_signed_action()
 {
    let Some(node) = NodeCluster::shared() else {
        return;
    };
    // The application's namespace holds the resources, their Secrets and the workload; the
    // operator runs in its own namespace and watches the application's.
    let setup = on_node_emulator(node, "node-app").await;
    let app = setup.namespace().to_owned();
    let operator_ns = TestNamespace::new(node.control_plane(), "node-operator").await;
    let watch = format!("operator.watchNamespace={app}");
    let (release, _) = Release::install(node, operator_ns.name(), &["--set", &watch]);
    let role = setup
        .create_role(
            "workload-role",
            &["Auth:ServiceAccounts:Read", "Permissions:Create"],
        )
        .await;

    let boot = setup.emulator.bootstrap();
    let manifests = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: dfns-login, namespace: {app}}}
stringData:
  DFNS_CRED_ID: "{cred_id}"
  DFNS_PRIVATE_KEY: |
{private_key}
---
apiVersion: dfns.io/v1alpha1
kind: DfnsConnection
metadata: {{name: main, namespace: {app}}}
spec:
  apiUrl: "{api_url}"
  allowInsecureHttp: true
  orgId: "{org_id}"
  allowedPermissionIds: ["{role}"]
  auth: {{userLogin: {{username: "{username}", secretRef: {{name: dfns-login}}}}}}
---
apiVersion: dfns.io/v1alpha1
kind: DfnsServiceAccount
metadata: {{name: payments-signer, namespace: {app}}}
spec:
  connectionRef: {{kind: DfnsConnection, name: main}}
  permissionId: "{role}"
---
apiVersion: dfns.io/v1alpha1
kind: DfnsPersonalAccessToken
metadata: {{name: ci-token, namespace: {app}}}
spec:
  connectionRef: {{kind: DfnsConnection, name: main}}
  permissionId: "{role}"
  daysValid: 30
"#,
        cred_id = boot.admin.cred_id,
        private_key = indent(&boot.admin.private_key, 4),
        api_url = setup.emulator.api_url(),
        org_id = boot.org_id,
        username = boot.admin.username,
    );
    node.kubectl(&["apply", "-f", "-"], &manifests);
    setup.wait_ready::<DfnsConnection>("main").await;
    setup
        .wait_ready::<DfnsServiceAccount>("payments-signer")
        .await;
    setup
        .wait_ready::<DfnsPersonalAccessToken>("ci-token")
        .await;

    let (image, _) = node.sdk_workload_image();
    let workload = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: payments-worker, namespace: {app}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: payments-worker}}}}
  template:
    metadata: {{labels: {{app: payments-worker}}}}
    spec:
      automountServiceAccountToken: false
      securityContext: {{runAsNonRoot: true, runAsUser: 65532, seccompProfile: {{type: RuntimeDefault}}}}
      containers:
      - name: worker
        image: {image}
        imagePullPolicy: Never
        env: [{{name: WORKLOAD_PROOF_NAME, value: workload-proof}}]
        envFrom: [{{secretRef: {{name: payments-signer}}}}]
        securityContext:
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          capabilities: {{drop: [ALL]}}
"#
    );
    node.kubectl(&["apply", "-f", "-"], &workload);
    let logs = eventually(
        Duration::from_secs(120),
        "the workload logs its signed action",
        || {
            let (_, logs) = dfns_test_support::chart::kubectl(
                node.control_plane().kubeconfig_path(),
                &["logs", "deploy/payments-worker", "-n", &app],
                "",
            );
            assert!(
                !logs.contains("workload: failed"),
                "the workload failed: {logs}"
            );
            logs.contains("workload: signed user action ok")
                .then_some(logs)
        },
    )
    .await;
    assert!(logs.contains("workload: authenticated read ok"), "{logs}");
    eprintln!("{}", logs.trim());
    // The operator's image resolves names (glibc's getaddrinfo through the image's nsswitch.conf):
    // its `verify` command reaches the emulator by a host name given to the pod.
    let api_url = setup
        .emulator
        .api_url()
        .replace(&node.node_ip().to_string(), "dfns-emulator.test");
    let verify_pod = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: verify-by-name, namespace: {app}}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  hostAliases: [{{ip: "{node_ip}", hostnames: [dfns-emulator.test]}}]
  securityContext: {{runAsNonRoot: true, seccompProfile: {{type: RuntimeDefault}}}}
  containers:
  - name: verify
    image: {operator_image}
    imagePullPolicy: Never
    args: [verify, --allow-insecure-http]
    envFrom: [{{secretRef: {{name: payments-signer}}}}]
    env: [{{name: DFNS_API_URL, value: "{api_url}"}}]
    securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
"#,
        node_ip = node.node_ip(),
        operator_image = release.image,
    );
    node.kubectl(&["apply", "-f", "-"], &verify_pod);
    let phase = eventually(Duration::from_secs(120), "the verify pod finishes", || {
        let (_, phase) = dfns_test_support::chart::kubectl(
            node.control_plane().kubeconfig_path(),
            &[
                "get",
                "pod",
                "verify-by-name",
                "-n",
                &app,
                "-o",
                "jsonpath={.status.phase}",
            ],
            "",
        );
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
    .await;
    let verify_logs = node.kubectl(&["logs", "verify-by-name", "-n", &app], "");
    assert_eq!(phase, "Succeeded", "verify by host name: {verify_logs}");
    eprintln!("verify by host name: {}", verify_logs.trim());

    release.assert_no_leaks(&setup).await;
}

fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}
