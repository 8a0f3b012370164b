//! A workload for the renewal tests: the official Dfns SDK (`tests/sdk-interop/renewal-probe.mjs`)
//! re-reading a credential Secret every 2 s and making an authenticated read and a signed user
//! action with it, while the operator renews the credential underneath.
//!
//! The Secret reaches the probe the way a Secret volume reaches a pod: this harness mirrors it
//! every second into a directory laid out as the kubelet lays out a Secret volume (each version
//! in its own directory, a `..data` symlink swapped atomically to the newest, and one symlink
//! per key through `..data`), so the probe never sees half an update.
//!
//! ```ignore
//! let probe = RenewalProbe::start(setup.kube.clone(), setup.namespace(), "payments").await;
//! probe.wait_for("two good rounds", |r| r.signs_ok >= 2).await;
//! let report = probe.stop().await;
//! assert_eq!(report.failures, Vec::<String>::new());
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::operator::WAIT;
use crate::repo_root;

/// How often the Secret is mirrored (the kubelet's sync is slower; faster only makes a renewal
/// reach the probe sooner).
const MIRROR_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stopped probe may take to finish its round (two calls of at most 10 s each).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What the probe recorded: counts per call, and each failed call's JSON line (never a token or
/// key: the probe prints none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeReport {
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub signs_ok: u64,
    pub signs_failed: u64,
    pub failures: Vec<String>,
}

/// One line the probe prints.
#[derive(Deserialize)]
struct CallLine {
    call: String,
    ok: bool,
}

impl ProbeReport {
    fn record(&mut self, line: &str) {
        let Ok(call) = serde_json::from_str::<CallLine>(line) else {
            self.failures.push(format!("not a probe line: {line}"));
            return;
        };
        let counter = match (call.call.as_str(), call.ok) {
            ("read", true) => &mut self.reads_ok,
            ("read", false) => &mut self.reads_failed,
            ("sign", true) => &mut self.signs_ok,
            ("sign", false) => &mut self.signs_failed,
            _ => {
                self.failures.push(format!("unknown call: {line}"));
                return;
            }
        };
        *counter += 1;
        if !call.ok {
            self.failures.push(line.to_owned());
        }
    }
}

/// A running probe; [`RenewalProbe::stop`] ends it and returns what it recorded.
pub struct RenewalProbe {
    /// The mirrored Secret volume; removed when the probe is dropped.
    _volume: tempfile::TempDir,
    child: Child,
    mirror: JoinHandle<()>,
    lines: JoinHandle<()>,
    stderr: JoinHandle<String>,
    report: Arc<Mutex<ProbeReport>>,
}

impl RenewalProbe {
    /// Mirrors Secret `namespace/secret_name` (waiting for it to exist) and starts the probe on
    /// it. The credential must be allowed the probe's calls: a PAT always is; a service account
    /// needs a role with `Auth:ServiceAccounts:Read` and `Auth:ServiceAccounts:Update` (it reads
    /// its own record and writes its own name back unchanged).
    pub async fn start(kube: kube::Client, namespace: &str, secret_name: &str) -> Self {
        Self::start_mirroring_every(kube, namespace, secret_name, MIRROR_INTERVAL).await
    }

    /// As [`RenewalProbe::start`], with the Secret mirrored into the volume every `period`: a
    /// kubelet propagates a Secret's change to its volumes only after a while, and the workload
    /// keeps using the old values until then.
    pub async fn start_mirroring_every(
        kube: kube::Client,
        namespace: &str,
        secret_name: &str,
        period: Duration,
    ) -> Self {
        ensure_sdk_installed().await;
        let secrets: Api<Secret> = Api::namespaced(kube, namespace);
        let volume = tempfile::tempdir().expect("temp dir for the Secret volume");
        let mut mirror = SecretVolume::new(volume.path().to_owned());
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(data) = secret_data(&secrets, secret_name).await {
                mirror.write(&data);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Secret {namespace}/{secret_name} did not appear within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let name = secret_name.to_owned();
        let mirror = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                // A Secret that is gone keeps its last content, as a mounted volume does.
                if let Some(data) = secret_data(&secrets, &name).await {
                    mirror.write(&data);
                }
            }
        });

        let mut child = Command::new("node")
            .arg(probe_script())
            .arg("--dir")
            .arg(volume.path())
            .current_dir(sdk_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node (Node.js 20 or newer must be installed)");
        let report = Arc::new(Mutex::new(ProbeReport::default()));
        let stdout = child.stdout.take().expect("probe stdout");
        let sink = report.clone();
        let lines = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap_or_else(|p| p.into_inner()).record(&line);
            }
        });
        let mut stderr_pipe = child.stderr.take().expect("probe stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text).await;
            text
        });
        Self {
            _volume: volume,
            child,
            mirror,
            lines,
            stderr,
            report,
        }
    }

    /// What the probe recorded so far.
    pub fn report(&self) -> ProbeReport {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits (at most [`WAIT`]) until `done` holds for the report; `what` names it in the
    /// failure message. Fails at once if the probe process ended.
    pub async fn wait_for(
        &mut self,
        what: &str,
        done: impl Fn(&ProbeReport) -> bool,
    ) -> ProbeReport {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let report = self.report();
            if done(&report) {
                return report;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the probe ended ({status}) before {what}: {report:?}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} within {WAIT:?}: {report:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the probe (SIGTERM: it finishes the round under way) and returns everything it
    /// recorded. Panics if the probe failed as a program (not a call: a crash or a bad exit).
    pub async fn stop(mut self) -> ProbeReport {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let status = match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(status) => status.expect("wait for the probe"),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!("the probe did not stop within {STOP_GRACE:?} of SIGTERM");
            }
        };
        self.mirror.abort();
        let _ = (&mut self.lines).await;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        assert!(
            status.success(),
            "the probe failed ({status}); stderr:\n{stderr}"
        );
        self.report()
    }

    /// Stops the probe and asserts that `workload` (named in the messages) saw no failed call
    /// and kept calling: at least `at_least` reads and as many signatures.
    pub async fn stop_with_no_failures(self, workload: &str, at_least: u64) {
        let report = self.stop().await;
        assert_eq!(
            report.failures,
            Vec::<String>::new(),
            "the {workload}'s workload saw failed calls"
        );
        assert!(
            report.reads_ok >= at_least && report.signs_ok >= at_least,
            "the {workload}'s workload kept calling: {} reads, {} signatures",
            report.reads_ok,
            report.signs_ok
        );
    }
}

impl Drop for RenewalProbe {
    fn drop(&mut self) {
        self.mirror.abort();
    }
}

async fn secret_data(secrets: &Api<Secret>, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let secret = secrets.get_opt(name).await.ok().flatten()?;
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .collect(),
    )
}

/// A directory laid out as the kubelet lays out a Secret volume (its `AtomicWriter`).
struct SecretVolume {
    dir: PathBuf,
    written: Option<BTreeMap<String, Vec<u8>>>,
    /// Version directories, oldest first.
    versions: Vec<String>,
    serial: u64,
}

const DATA_LINK: &str = "..data";

impl SecretVolume {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            written: None,
            versions: Vec::new(),
            serial: 0,
        }
    }

    /// Publishes `data` as the new version unless it is the one published already: write a
    /// new version directory, point a fresh symlink at it, rename that over `..data` (atomic),
    /// then add the per-key symlinks and drop keys that are gone.
    fn write(&mut self, data: &BTreeMap<String, Vec<u8>>) {
        if self.written.as_ref() == Some(data) {
            return;
        }
        self.serial += 1;
        let version = format!("..version_{:06}", self.serial);
        let version_dir = self.dir.join(&version);
        std::fs::create_dir(&version_dir).expect("create a Secret version directory");
        for (key, value) in data {
            std::fs::write(version_dir.join(key), value).expect("write a Secret key");
        }
        let staged = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&staged);
        std::os::unix::fs::symlink(&version, &staged).expect("symlink the new version");
        std::fs::rename(&staged, self.dir.join(DATA_LINK)).expect("swap ..data");
        for key in data.keys() {
            let link = self.dir.join(key);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new(DATA_LINK).join(key), &link)
                    .expect("symlink a Secret key");
            }
        }
        if let Some(old) = &self.written {
            for gone in old.keys().filter(|key| !data.contains_key(*key)) {
                let _ = std::fs::remove_file(self.dir.join(gone));
            }
        }
        // The kubelet removes the previous version at once; here it stays until the next
        // update, so a reader that resolved `..data` just before the swap can still finish
        // reading it (updates are a second apart) and the probe reports only real failures.
        self.versions.push(version);
        while self.versions.len() > 2 {
            let oldest = self.versions.remove(0);
            let _ = std::fs::remove_dir_all(self.dir.join(oldest));
        }
        self.written = Some(data.clone());
    }
}

fn sdk_dir() -> PathBuf {
    repo_root().join("tests").join("sdk-interop")
}

fn probe_script() -> PathBuf {
    sdk_dir().join("renewal-probe.mjs")
}

/// The pinned SDK in `tests/sdk-interop/node_modules` (what `tests/sdk-interop/run.sh` installs);
/// installed with `npm ci` once per test binary when missing.
async fn ensure_sdk_installed() {
    static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _once = INSTALL.lock().await;
    let installed = sdk_dir().join("node_modules/@dfns/sdk-keysigner/package.json");
    if installed.exists() {
        return;
    }
    let output = Command::new("npm")
        .args(["ci", "--prefer-offline", "--no-audit", "--no-fund"])
        .current_dir(sdk_dir())
        .output()
        .await
        .expect("run npm (Node.js 20 or newer with npm must be installed)");
    assert!(
        output.status.success() && installed.exists(),
        "npm ci in tests/sdk-interop failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    fn read(dir: &Path, key: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(key)).ok()
    }

    #[test]
    fn the_volume_follows_the_secret_through_an_atomically_swapped_data_link() {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = SecretVolume::new(dir.path().to_owned());
        volume.write(&data(&[("A", "1"), ("B", "old")]));
        assert_eq!(read(dir.path(), "A").as_deref(), Some("1"));
        let first = std::fs::canonicalize(dir.path().join(DATA_LINK)).unwrap();

        volume.write(&data(&[("A", "2"), ("C", "new")]));
        assert_eq!(read(dir.path(), "A").as_deref(), Some("2"));
        assert_eq!(read(dir.path(), "C").as_deref(), Some("new"));
        assert_eq!(read(dir.path(), "B"), None, "a removed key disappears");
        assert!(
            std::fs::symlink_metadata(dir.path().join("A"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "keys are links through ..data"
        );
        // A reader that resolved ..data before the swap still reads one whole version.
        assert_eq!(read(&first, "A").as_deref(), Some("1"));
        assert_eq!(read(&first, "B").as_deref(), Some("old"));

        volume.write(&data(&[("A", "3")]));
        assert!(
            !first.exists(),
            "versions older than the previous one are removed"
        );
    }

    #[test]
    fn an_unchanged_secret_writes_no_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = SecretVolume::new(dir.path().to_owned());
        volume.write(&data(&[("A", "1")]));
        let first = std::fs::read_link(dir.path().join(DATA_LINK)).unwrap();
        volume.write(&data(&[("A", "1")]));
        assert_eq!(
            std::fs::read_link(dir.path().join(DATA_LINK)).unwrap(),
            first
        );
    }

    #[test]
    fn the_report_counts_calls_and_keeps_failed_lines() {
        let mut report = ProbeReport::default();
        report.record(r#"{"call":"read","ok":true,"status":200,"error":""}"#);
        report.record(r#"{"call":"sign","ok":false,"status":401,"error":"expired"}"#);
        report.record("garbage");
        assert_eq!((report.reads_ok, report.reads_failed), (1, 0));
        assert_eq!((report.signs_ok, report.signs_failed), (0, 1));
        assert_eq!(report.failures.len(), 2);
        assert!(report.failures[0].contains("expired"));
        assert!(report.failures[1].contains("not a probe line"));
    }
}
