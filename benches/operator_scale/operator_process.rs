//! The operator as a child process (the release binary built with this bench), so its CPU time and
//! memory come from the kernel: `/proc/<pid>/stat` (utime + stime) and `/proc/<pid>/status`
//! (VmRSS now, VmHWM peak).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct OperatorOptions<'a> {
    pub kubeconfig: &'a Path,
    /// The operator's own namespace (where ClusterDfnsConnection Secrets would live).
    pub namespace: &'a str,
    /// `None`: watch all namespaces, as a production install does.
    pub watch_namespace: Option<&'a str>,
    pub resync_interval: Duration,
    pub concurrency: u16,
    /// `--allowed-api-hosts`: the emulator's `host:port`.
    pub allowed_api_hosts: &'a str,
    pub log: PathBuf,
}

pub struct OperatorProcess {
    child: Child,
    pid: u32,
    clock_ticks_per_second: f64,
    /// Where the operator serves /metrics (a free loopback port picked at start).
    metrics_address: std::net::SocketAddr,
    pub log: PathBuf,
    stopped: bool,
}

/// One reading of the operator's resource use.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

impl OperatorProcess {
    pub fn spawn(options: OperatorOptions<'_>) -> Result<Self, String> {
        let log = std::fs::File::create(&options.log)
            .map_err(|e| format!("{}: {e}", options.log.display()))?;
        // BENCH_OPERATOR_WRAPPER (e.g. `heaptrack -o /tmp/op`) runs the operator under a profiler;
        // the /proc figures then describe the wrapper, so use it for profiling runs only.
        let binary = env!("CARGO_BIN_EXE_dfns-operator");
        let mut command = match std::env::var("BENCH_OPERATOR_WRAPPER") {
            Ok(wrapper) if !wrapper.trim().is_empty() => {
                let mut words = wrapper.split_whitespace();
                let mut c = Command::new(words.next().expect("non-empty"));
                c.args(words).arg(binary);
                c
            }
            _ => Command::new(binary),
        };
        let metrics_address = free_loopback_address()?;
        command
            .args([
                "run",
                "--log-format",
                "json",
                "--namespace",
                options.namespace,
            ])
            .args([
                "--resync-interval",
                &format!("{}s", options.resync_interval.as_secs()),
            ])
            .args(["--concurrency", &options.concurrency.to_string()])
            .args(["--allowed-api-hosts", options.allowed_api_hosts])
            .args(["--metrics-address", &metrics_address.to_string()])
            .arg("--kubeconfig")
            .arg(options.kubeconfig);
        // For allocator experiments: `BENCH_OPERATOR_ENV="MALLOC_ARENA_MAX=2 OTHER=x"`.
        if let Ok(pairs) = std::env::var("BENCH_OPERATOR_ENV") {
            for pair in pairs.split_whitespace() {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("BENCH_OPERATOR_ENV: {pair:?} is not KEY=VALUE"))?;
                command.env(key, value);
            }
        }
        if let Some(ns) = options.watch_namespace {
            command.args(["--watch-namespace", ns]);
        }
        // The operator's default log level, unless a profiling run asks for more.
        match std::env::var("BENCH_OPERATOR_RUST_LOG") {
            Ok(filter) => command.env("RUST_LOG", filter),
            Err(_) => command.env_remove("RUST_LOG"),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .kill_on_drop(true)
            // Its own process group, so that stopping it also stops what a wrapper started
            // (heaptrack runs the operator as its child; killing heaptrack alone left the
            // operator running, reconciling whatever the next run created).
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting dfns-operator: {e}"))?;
        let pid = child.id().ok_or("dfns-operator exited at once")?;
        Ok(Self {
            child,
            pid,
            clock_ticks_per_second: clock_ticks_per_second(),
            metrics_address,
            log: options.log,
            stopped: false,
        })
    }

    /// Reconciles the operator has finished so far, all kinds and results
    /// (`dfns_operator_reconciles_total`).
    pub async fn reconciles(&self) -> Result<f64, String> {
        let url = format!("http://{}/metrics", self.metrics_address);
        let text = reqwest::get(&url)
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("dfns_operator_reconciles_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    }

    /// Fails when the operator has exited (a crash must not pass as a quiet operator).
    pub fn sample(&mut self) -> Result<ProcSample, String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!(
                "dfns-operator exited ({status}); see {}",
                self.log.display()
            ));
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map_err(|e| e.to_string())?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| e.to_string())?;
        let ticks = cpu_ticks(&stat).ok_or("unreadable /proc/<pid>/stat")?;
        Ok(ProcSample {
            cpu_seconds: ticks as f64 / self.clock_ticks_per_second,
            rss_kib: status_kib(&status, "VmRSS:").ok_or("no VmRSS")?,
            peak_rss_kib: status_kib(&status, "VmHWM:").ok_or("no VmHWM")?,
        })
    }

    pub async fn stop(mut self) {
        self.kill_group();
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        self.stopped = true;
    }

    /// SIGKILL to the operator's process group: the operator and anything a wrapper started.
    fn kill_group(&self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid)])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        // Once stopped, the group id may already name someone else's group.
        if !self.stopped {
            self.kill_group();
        }
    }
}

/// A loopback address no one listens on right now.
fn free_loopback_address() -> Result<std::net::SocketAddr, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("picking a metrics port: {e}"))
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(cpu_ticks(&stat)? as f64 / clock_ticks_per_second())
}

/// utime + stime: fields 14 and 15, counted after the parenthesised command name (which may
/// itself contain spaces).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
