//! The operator as a separate process (`dfns-operator run`), for tests that kill it: scoped to the
//! test's namespace and cluster-scoped objects like the in-process one, logging JSON at the leak
//! check's level into a file that every run appends to, optionally armed with a crash point
//! (docs/architecture.md, "Crash points").

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use dfns_operator::controller::crash_point::{self, CrashPoint};
use tokio::process::{Child, Command};

use crate::operator::Setup;

/// How long a process may take to reach a crash point or to die after SIGKILL.
pub const EXIT_WAIT: Duration = Duration::from_secs(90);

/// What every run of the operator binary shares.
#[derive(Clone, Debug)]
pub struct OperatorCommand {
    /// `env!("CARGO_BIN_EXE_dfns-operator")`, which only the test crate can name.
    pub binary: PathBuf,
    /// Every run appends its stdout and stderr here.
    pub log_file: PathBuf,
    /// Extra `run` arguments, e.g. `["--resync-interval", "30s"]`.
    pub extra_args: Vec<String>,
}

impl OperatorCommand {
    pub fn new(binary: impl Into<PathBuf>, log_file: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            log_file: log_file.into(),
            extra_args: Vec::new(),
        }
    }

    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra_args
            .extend(args.iter().map(|a| (*a).to_string()));
        self
    }

    /// Starts a run serving `setup`'s namespace, aborting at `crash_at` if given.
    pub fn spawn(&self, setup: &Setup, crash_at: Option<CrashPoint>) -> OperatorProcess {
        let markers_before = crash_at.map_or(0, |p| self.marker_count(p));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .unwrap_or_else(|e| panic!("operator log {}: {e}", self.log_file.display()));
        let mut command = Command::new(&self.binary);
        command
            .args(["run", "--log-format", "json"])
            .args(["--namespace", setup.namespace()])
            .args(["--watch-namespace", setup.namespace()])
            .arg("--cluster-connection-selector")
            .arg(setup.cluster_selector())
            .arg("--kubeconfig")
            .arg(setup.cp.kubeconfig_path())
            .args(&self.extra_args)
            .env("RUST_LOG", crate::logs::FILTER)
            .env_remove(crash_point::ENV)
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // The emulator's host, unless the test chose the allowed hosts itself.
        if !self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--allowed-api-hosts"))
        {
            command
                .arg("--allowed-api-hosts")
                .arg(setup.allowed_api_hosts());
        }
        if let Some(point) = crash_at {
            command.env(crash_point::ENV, point.name());
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.binary.display()));
        OperatorProcess {
            child,
            log_file: self.log_file.clone(),
            crash_at,
            markers_before,
        }
    }

    /// How often the marker of `point` is in the log file so far.
    pub fn marker_count(&self, point: CrashPoint) -> usize {
        marker_count(&self.log_file, point)
    }
}

/// How often the marker of `point` is in the log file at `path` (0 if it does not exist yet).
pub fn marker_count(path: &Path, point: CrashPoint) -> usize {
    let marker = crash_point::marker(point);
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter(|l| *l == marker).count())
        .unwrap_or(0)
}

/// One running (or ended) operator process; killed when dropped.
pub struct OperatorProcess {
    child: Child,
    log_file: PathBuf,
    crash_at: Option<CrashPoint>,
    markers_before: usize,
}

impl OperatorProcess {
    /// Waits for the process to end by itself, panicking after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait for the operator process"),
            Err(_) => panic!(
                "the operator process did not exit within {within:?} (crash point {:?}); log: {}",
                self.crash_at.map(CrashPoint::name),
                self.log_file.display()
            ),
        }
    }

    /// The process's peak resident memory so far (`VmHWM` in `/proc/<pid>/status`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the operator process is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// The process ended by itself, if it did.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the operator process")
    }

    /// Panics if the process has ended.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_exit() {
            panic!(
                "the operator process ended by itself ({status}); log: {}",
                self.log_file.display()
            );
        }
    }

    /// Waits until the armed crash point aborted the process and asserts both that it died by
    /// SIGABRT and that this run printed the point's marker: the point was hit, for certain.
    pub async fn assert_crashed_at_armed_point(&mut self) {
        let point = self.crash_at.expect("this run has no crash point armed");
        let status = self.wait_exit(EXIT_WAIT).await;
        assert_eq!(
            status.signal(),
            Some(SIGABRT),
            "the operator should have aborted at {}, but ended with {status}; log: {}",
            point.name(),
            self.log_file.display()
        );
        let markers = marker_count(&self.log_file, point);
        assert_eq!(
            markers,
            self.markers_before + 1,
            "the log should hold one more marker of {} than before this run",
            point.name()
        );
    }

    /// Sends `signal` (a name `kill` understands: `TERM`, `STOP`, `CONT`) to the process.
    pub async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the operator process is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGKILL, then waits (bounded) until the process is gone; nothing if it ended already
    /// (callers that expect it alive say so with [`Self::assert_running`] first).
    pub async fn kill(&mut self) {
        if self.try_exit().is_some() {
            return;
        }
        self.child.start_kill().expect("SIGKILL the operator");
        self.wait_exit(EXIT_WAIT).await;
    }
}

/// The signal `std::process::abort` raises (6 on every Unix the tests run on).
const SIGABRT: i32 = 6;
