//! A control plane with a real node (tests/controlplane/node-up.sh): containerd, a kubelet,
//! kube-scheduler and kube-proxy, so the chart's pods run. One per machine; it needs root.
//!
//! Reuse order: the `make node-up` cluster (`target/controlplane` in node mode); else a private
//! one under `target/controlplane/test-<pid>/`, stopped with its node by the watchdog as soon as
//! this process exits. On a machine that cannot run a node (not root, no cgroups, no way to get
//! containerd) [`NodeCluster::shared`] prints so, loudly, and each test returns early.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::control_plane::{ControlPlane, controlplane_dir, run_script};
use crate::repo_root;

/// The node's IP (tests/controlplane/node-lib.sh): pods reach services on this machine there.
pub const NODE_IP: [u8; 4] = [10, 213, 0, 1];

pub struct NodeCluster {
    control_plane: ControlPlane,
    dir: PathBuf,
    /// How long `node-up.sh` took (control plane in node mode plus the node).
    pub start_time: Duration,
    image: OnceLock<(String, Duration)>,
    sdk_image: OnceLock<(String, Duration)>,
}

enum Unavailable {
    /// This machine cannot run a node; the suite is skipped.
    CannotRun(String),
    /// It should have started and did not: a test failure.
    Failed(String),
}

static NODE: OnceLock<Result<NodeCluster, Unavailable>> = OnceLock::new();

impl NodeCluster {
    /// The node cluster for this test binary, started on first use; `None` when this machine
    /// cannot run one (the reason is printed on every call, so a skipped suite is never silent).
    /// Panics when the node should start but does not.
    pub fn shared() -> Option<&'static NodeCluster> {
        match NODE.get_or_init(start) {
            Ok(node) => Some(node),
            Err(Unavailable::CannotRun(reason)) => {
                eprintln!(
                    "\n################################################################\n\
                     ## SKIPPED: this machine cannot run the e2e node: {reason}\n\
                     ## (the node suite proves nothing here; run it as root on Linux)\n\
                     ################################################################\n"
                );
                None
            }
            Err(Unavailable::Failed(message)) => panic!("node unavailable: {message}"),
        }
    }

    /// The node cluster if [`NodeCluster::shared`] started one (for [`ControlPlane::shared`]).
    pub(crate) fn started() -> Option<&'static NodeCluster> {
        NODE.get().and_then(|n| n.as_ref().ok())
    }

    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    pub fn node_ip(&self) -> IpAddr {
        IpAddr::from(NODE_IP)
    }

    /// The operator's image built from `binary` with the Dockerfile's recipe
    /// (tests/images/operator-image.sh) and loaded into the node, once per test binary; its
    /// reference and how long building and loading took.
    pub fn operator_image(&self, binary: &Path) -> &(String, Duration) {
        self.image
            .get_or_init(|| self.build_image("operator-image.sh", &[("IMAGE_BINARY", binary)]))
    }

    /// The workload image with Node.js and the official Dfns SDK (tests/images/sdk-image.sh),
    /// loaded into the node once per test binary.
    pub fn sdk_workload_image(&self) -> &(String, Duration) {
        self.sdk_image
            .get_or_init(|| self.build_image("sdk-image.sh", &[]))
    }

    fn build_image(&self, script: &str, env: &[(&str, &Path)]) -> (String, Duration) {
        let started = Instant::now();
        let output = Command::new(repo_root().join("tests/images").join(script))
            .env("CONTROLPLANE_DIR", &self.dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        assert!(output.status.success(), "{script} failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let reference = stdout.lines().last().expect("an image reference").trim();
        let took = started.elapsed();
        eprintln!("timing: {script} (build and load into the node) {took:.1?}: {reference}");
        (reference.to_owned(), took)
    }

    /// Runs kubectl against this cluster; panics with its output when it fails.
    pub fn kubectl(&self, args: &[&str], stdin: &str) -> String {
        let (ok, output) = crate::chart::kubectl(self.control_plane.kubeconfig_path(), args, stdin);
        assert!(ok, "kubectl {}: {output}", args.join(" "));
        output
    }

    /// Runs helm against this cluster; returns (success, stdout and stderr).
    pub fn helm(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(self.control_plane.tool("helm"))
            .arg("--kubeconfig")
            .arg(self.control_plane.kubeconfig_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run helm");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

fn start() -> Result<NodeCluster, Unavailable> {
    if let Some(reason) = cannot_run_reason() {
        return Err(Unavailable::CannotRun(reason));
    }
    let failed = |e: crate::HarnessError| Unavailable::Failed(e.to_string());
    run_script("build.sh", &[]).map_err(failed)?;
    run_script("build-node.sh", &[]).map_err(failed)?;
    let default = controlplane_dir();
    let (dir, owner) = if default.join("state/node-mode").exists() {
        (default, None)
    } else {
        let owner = std::process::id().to_string();
        (default.join(format!("test-{owner}")), Some(owner))
    };
    // Another checkout's node suite may hold the machine's one node: wait for it.
    let mut env = vec![
        ("CONTROLPLANE_DIR", dir.clone().into_os_string()),
        ("CONTROLPLANE_NODE_WAIT", "900".into()),
    ];
    if let Some(owner) = owner {
        env.push(("CONTROLPLANE_OWNER_PID", owner.into()));
    }
    let started = Instant::now();
    run_script("node-up.sh", &env).map_err(failed)?;
    let start_time = started.elapsed();
    let control_plane = ControlPlane::from_kubeconfig(dir.join("kubeconfig")).map_err(failed)?;
    Ok(NodeCluster {
        control_plane,
        dir,
        start_time,
        image: OnceLock::new(),
        sdk_image: OnceLock::new(),
    })
}

/// Why this machine cannot run the node, if it cannot (checked before anything is started).
fn cannot_run_reason() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    if uid.as_deref() != Some("0") {
        return Some(
            "not running as root (containerd, the kubelet and network links need it)".into(),
        );
    }
    if !Path::new("/sys/fs/cgroup").is_dir() {
        return Some("no /sys/fs/cgroup".into());
    }
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for tool in ["ip", "cc", "python3"] {
        if !have(tool) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    // node-up.sh installs what is missing of these with apt-get.
    for tool in ["containerd", "iptables"] {
        if !have(tool) && !have("apt-get") {
            return Some(format!(
                "`{tool}` is not installed and apt-get is not available to install it"
            ));
        }
    }
    None
}
