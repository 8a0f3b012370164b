//! One real control plane per test binary, or a reused one that is already running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::crds::{apply_crd_files, crd_files};
use super::error::HarnessError;
use crate::repo_root;

/// A running kube-apiserver (with etcd and kube-controller-manager) and an admin identity for it.
pub struct ControlPlane {
    kubeconfig: PathBuf,
    /// Parsed once; every client is built fresh from it (see [`ControlPlane::client`]).
    config: kube::Config,
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

impl ControlPlane {
    /// The control plane for this test binary, started on first use.
    ///
    /// Reuse order: `DFNS_TEST_KUBECONFIG` if set; else `target/controlplane/kubeconfig` when it
    /// points at a live cluster (`make cluster-up`); else a private cluster under
    /// `target/controlplane/test-<pid>/`, which a watchdog stops as soon as this process exits
    /// (statics are never dropped, and a panicking or killed test binary runs no destructors).
    /// Blocks while starting; a failed start fails every test that asks, with the same message.
    pub fn shared() -> &'static ControlPlane {
        // A test binary that started a node (the node suite) tests everything against it.
        if let Some(node) = crate::node::NodeCluster::started() {
            return node.control_plane();
        }
        match SHARED.get_or_init(|| Self::start_or_reuse().map_err(|e| e.to_string())) {
            Ok(cp) => cp,
            Err(message) => panic!("control plane unavailable: {message}"),
        }
    }

    fn start_or_reuse() -> Result<Self, HarnessError> {
        if let Some(path) = std::env::var_os("DFNS_TEST_KUBECONFIG") {
            return Self::from_kubeconfig(PathBuf::from(path));
        }
        let default = controlplane_dir().join("kubeconfig");
        if kubeconfig_is_live(&default) {
            return Self::from_kubeconfig(default);
        }
        run_script("build.sh", &[])?;
        remove_orphaned_clusters();
        let dir = controlplane_dir().join(format!("test-{}", std::process::id()));
        run_script(
            "cluster-up.sh",
            &[
                ("CONTROLPLANE_DIR", dir.as_os_str().to_owned()),
                (
                    "CONTROLPLANE_OWNER_PID",
                    std::process::id().to_string().into(),
                ),
            ],
        )?;
        Self::from_kubeconfig(dir.join("kubeconfig"))
    }

    pub(crate) fn from_kubeconfig(path: PathBuf) -> Result<Self, HarnessError> {
        let kubeconfig_error = |source| HarnessError::Kubeconfig {
            path: path.clone(),
            source,
        };
        let parsed = kube::config::Kubeconfig::read_from(&path).map_err(kubeconfig_error)?;
        let config = kube::Config::try_from(parsed).map_err(kubeconfig_error)?;
        Ok(Self {
            kubeconfig: path,
            config,
        })
    }

    /// An admin (system:masters) client.
    ///
    /// Built fresh on each call because a kube client's background task lives on the tokio runtime
    /// that created it, and every `#[tokio::test]` has its own runtime. Must be called inside one.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("admin client from a parsed kubeconfig")
    }

    /// The admin client configuration, e.g. to start the operator against this cluster.
    pub fn config(&self) -> kube::Config {
        self.config.clone()
    }

    /// A client that acts as `user` in `groups` through impersonation, so a test sees exactly the
    /// permissions RBAC grants that identity (e.g. the Helm chart's operator ServiceAccount,
    /// `system:serviceaccount:dfns-system:dfns-operator`). With no groups the API server derives
    /// them (service accounts get `system:serviceaccounts[:<ns>]`, everyone `system:authenticated`).
    pub fn impersonating(&self, user: &str, groups: &[&str]) -> kube::Client {
        kube::Client::try_from(self.impersonating_config(user, groups))
            .expect("impersonating client from a parsed kubeconfig")
    }

    /// The configuration behind [`ControlPlane::impersonating`].
    fn impersonating_config(&self, user: &str, groups: &[&str]) -> kube::Config {
        let mut config = self.config();
        config.auth_info.impersonate = Some(user.to_owned());
        config.auth_info.impersonate_groups =
            (!groups.is_empty()).then(|| groups.iter().map(|g| (*g).to_owned()).collect());
        config
    }

    /// Path of a binary built with the control plane (`kubectl`, `helm`, `etcd`, ...) in
    /// `target/controlplane/bin/`, building them first if this checkout has none yet.
    pub fn tool(&self, name: &str) -> PathBuf {
        let path = controlplane_dir().join("bin").join(name);
        if !path.exists() {
            run_script("build.sh", &[]).unwrap_or_else(|e| panic!("building {name}: {e}"));
        }
        path
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Server-side applies every CRD in the repository's `crds/` and waits until each is
    /// Established, so a reused cluster always serves the CRDs of the code under test.
    pub async fn apply_crds(&self) -> Result<(), HarnessError> {
        let files = crd_files(&repo_root().join("crds"))?;
        apply_crd_files(&self.client(), &files).await
    }
}

pub(crate) fn controlplane_dir() -> PathBuf {
    repo_root().join("target").join("controlplane")
}

/// True when `kubeconfig` exists and its API server answers /readyz.
fn kubeconfig_is_live(kubeconfig: &Path) -> bool {
    let kubectl = controlplane_dir().join("bin").join("kubectl");
    kubeconfig.exists()
        && kubectl.exists()
        && Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "--raw=/readyz", "--request-timeout=5s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// Stops and removes per-test clusters whose owning test binary no longer exists. Their watchdog
/// normally does this; leftovers only appear after a reboot or when the watchdog itself was killed.
fn remove_orphaned_clusters() {
    let Ok(entries) = std::fs::read_dir(controlplane_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(owner) = file_name.to_str().and_then(|n| n.strip_prefix("test-")) else {
            continue;
        };
        if owner.parse::<u32>().is_ok() && !Path::new("/proc").join(owner).exists() {
            let dir = entry.path().into_os_string();
            if let Err(e) = run_script("cluster-down.sh", &[("CONTROLPLANE_DIR", dir)]) {
                eprintln!(
                    "removing orphaned control plane {}: {e}",
                    entry.path().display()
                );
            }
        }
    }
}

/// Runs a script from tests/controlplane/. Its output goes straight to the terminal (libtest does
/// not capture child processes), which is where build progress and start-up failures belong.
pub(crate) fn run_script(
    name: &str,
    env: &[(&str, std::ffi::OsString)],
) -> Result<(), HarnessError> {
    let script = repo_root().join("tests").join("controlplane").join(name);
    let status = Command::new(&script)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .status()
        .map_err(|source| HarnessError::Spawn {
            script: script.clone(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::Script { script, status })
    }
}
