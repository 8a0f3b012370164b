//! One Helm release of the chart on the node, scoped to its test's namespace, and the commands
//! the README shows for it.

use std::time::{Duration, Instant};

use dfns_test_support::NodeCluster;
use dfns_test_support::chart::chart_dir;
use dfns_test_support::operator::Setup;
use serde_json::Value;

/// Values every install in this suite sets beyond the image and the namespace scope; extra
/// `--set` values for all installs belong here. The emulator listens on the node IP, which the
/// operator's API host allow list (`operator.allowedApiHosts`, any port for a plain host) must
/// name; charts from before that value have no list to extend.
fn suite_values() -> Vec<String> {
    let chart_values =
        std::fs::read_to_string(chart_dir().join("values.yaml")).expect("chart values.yaml");
    let mut values = Vec::new();
    if chart_values.contains("allowedApiHosts:") {
        let node_ip = std::net::Ipv4Addr::from(dfns_test_support::node::NODE_IP);
        values.extend([
            "--set".to_owned(),
            format!("operator.allowedApiHosts={{{node_ip}}}"),
        ]);
    }
    values
}

/// A release named after its namespace; uninstalled when dropped (its cluster-scoped RBAC would
/// otherwise outlive the test namespace).
pub struct Release {
    pub node: &'static NodeCluster,
    pub name: String,
    pub namespace: String,
    pub image: String,
    uninstalled: bool,
}

impl Release {
    /// `helm install --wait` of the chart with the node's operator image, watching only
    /// `namespace` (tests run in parallel, each with its own operator); returns the release and
    /// how long the install took to have every replica Ready.
    pub fn install(
        node: &'static NodeCluster,
        namespace: &str,
        extra: &[&str],
    ) -> (Self, Duration) {
        let (image, _) = node.operator_image(env!("CARGO_BIN_EXE_dfns-operator").as_ref());
        let release = Self {
            node,
            name: namespace.to_owned(),
            namespace: namespace.to_owned(),
            image: image.clone(),
            uninstalled: false,
        };
        let started = Instant::now();
        let mut args = vec!["install", &release.name];
        let chart = chart_dir();
        let chart = chart.to_str().expect("chart path");
        args.push(chart);
        let values = release.values(extra);
        args.extend(values.iter().map(String::as_str));
        args.extend(["--wait", "--timeout", "180s"]);
        let (ok, output) = node.helm(&args);
        assert!(ok, "helm install: {output}");
        (release, started.elapsed())
    }

    /// `-n <ns>`, the image, the namespace scope, [`suite_values`] and `extra`.
    pub fn values(&self, extra: &[&str]) -> Vec<String> {
        let (repository, tag) = self
            .image
            .rsplit_once(':')
            .expect("image reference with a tag");
        let mut values: Vec<String> = [
            "--namespace",
            &self.namespace,
            "--set",
            &format!("image.repository={repository}"),
            "--set-string",
            &format!("image.tag={tag}"),
            "--set",
            "image.pullPolicy=Never",
            "--set",
            &format!("operator.watchNamespace={}", self.namespace),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        values.extend(suite_values());
        values.extend(extra.iter().map(|s| (*s).to_owned()));
        values
    }

    /// The release's objects of `kind` in its namespace, by the chart's instance label.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        let selector = format!("app.kubernetes.io/instance={}", self.name);
        let out = self.node.kubectl(
            &[
                "get",
                kind,
                "-n",
                &self.namespace,
                "-l",
                &selector,
                "-o",
                "json",
            ],
            "",
        );
        let list: Value = serde_json::from_str(&out).expect("kubectl JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The pod names whose Ready condition is True.
    pub fn ready_pods(&self) -> Vec<String> {
        self.objects("pods")
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The pod holding the leader Lease (its identity is `<pod>_<random>`), if any.
    pub fn leader(&self) -> Option<String> {
        let (ok, out) = dfns_test_support::chart::kubectl(
            self.node.control_plane().kubeconfig_path(),
            &[
                "get",
                "lease",
                "dfns-operator",
                "-n",
                &self.namespace,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            "",
        );
        let holder = out.trim();
        (ok && !holder.is_empty()).then(|| holder.split('_').next().unwrap().to_owned())
    }

    /// Writes the log of `pod` (the operator's JSON lines) to `path`, for the leak check.
    pub fn save_pod_log(&self, pod: &str, path: &std::path::Path) {
        let logs = self.node.kubectl(&["logs", pod, "-n", &self.namespace], "");
        std::fs::write(path, logs).expect("write pod log");
    }

    /// Writes the logs of all the release's current pods to `path`, for the leak check.
    pub fn save_logs(&self, path: &std::path::Path) {
        let logs: String = self
            .objects("pods")
            .iter()
            .map(|p| {
                self.node.kubectl(
                    &[
                        "logs",
                        p["metadata"]["name"].as_str().unwrap(),
                        "-n",
                        &self.namespace,
                    ],
                    "",
                )
            })
            .collect();
        std::fs::write(path, logs).expect("write pod logs");
    }

    /// The leak check over the test's namespace with the release's pod logs as the operator's.
    pub async fn assert_no_leaks(&self, setup: &Setup) {
        let logs_dir = tempfile::tempdir().expect("temp dir");
        let operator_log = logs_dir.path().join("operator.log");
        self.save_logs(&operator_log);
        setup
            .leak_check()
            .with_log_file(&operator_log)
            .assert_clean()
            .await;
    }

    /// `helm uninstall --wait`.
    pub fn uninstall(&mut self) {
        let (ok, output) = self.node.helm(&[
            "uninstall",
            &self.name,
            "--namespace",
            &self.namespace,
            "--wait",
            "--timeout",
            "120s",
        ]);
        assert!(ok, "helm uninstall: {output}");
        self.uninstalled = true;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.uninstalled {
            let (ok, output) =
                self.node
                    .helm(&["uninstall", &self.name, "--namespace", &self.namespace]);
            if !ok {
                eprintln!("release {}: uninstall failed: {output}", self.name);
            }
        }
    }
}

/// Polls `check` every 200 ms until it returns Some, or panics with `what` after `within`.
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
