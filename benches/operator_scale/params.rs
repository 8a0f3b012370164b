//! What to run and with which parameters: the full benchmark, or a quick smaller one for development.
//!
//! Environment: `BENCH_SCENARIO` = `all` (default) | `throughput` | `idle` |
//! `throughput_under_load` | `memory` | `renewal`, or a comma list; `BENCH_QUICK=1` for the small
//! version. Every parameter lands in results.json next to the figures it produced.

use std::time::Duration;

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Throughput,
    Idle,
    /// Throughput again, with a synthetic CPU load started by the bench.
    ThroughputUnderLoad,
    Memory,
    /// Every resource's token falls due for renewal within one interval.
    Renewal,
}

impl Scenario {
    pub fn key(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Idle => "idle",
            Scenario::ThroughputUnderLoad => "throughput_under_load",
            Scenario::Memory => "memory",
            Scenario::Renewal => "renewal",
        }
    }

    fn parse(text: &str) -> Result<Vec<Scenario>, String> {
        let mut chosen = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => chosen.extend([
                    Scenario::Throughput,
                    Scenario::Idle,
                    Scenario::ThroughputUnderLoad,
                    Scenario::Memory,
                    Scenario::Renewal,
                ]),
                "throughput" => chosen.push(Scenario::Throughput),
                "idle" => chosen.push(Scenario::Idle),
                "throughput_under_load" => chosen.push(Scenario::ThroughputUnderLoad),
                "memory" => chosen.push(Scenario::Memory),
                "renewal" => chosen.push(Scenario::Renewal),
                other => {
                    return Err(format!(
                        "unknown scenario {other:?} (all, throughput, idle, throughput_under_load, memory, renewal)"
                    ));
                }
            }
        }
        chosen.dedup();
        if chosen.is_empty() {
            return Err("no scenario chosen".into());
        }
        Ok(chosen)
    }
}

/// Scenarios 1 and 2 share their resources: idle measures the fleet throughput created.
#[derive(Clone, Debug)]
pub struct FleetParams {
    pub resources: usize,
    /// Emulator latency added to every Dfns call.
    pub dfns_latency: Duration,
    /// The emulator's per-organisation limit, and the connection's `spec.rateLimit` to match.
    pub requests_per_minute: u32,
    /// What the emulator's one-minute bucket holds at start: the operator client's own burst
    /// (one second's worth), so Dfns' limit binds from the first second and a well-paced client
    /// is never refused.
    pub initial_tokens: u32,
    /// Operator `--concurrency` (reconciles at once per kind); the operator's default.
    pub operator_concurrency: u16,
    /// Operator `--resync-interval`, used by the idle scenario.
    pub resync_interval: Duration,
    /// Applies the bench sends at once.
    pub apply_concurrency: usize,
}

/// A fixed synthetic CPU load: one child process with a thread per core, each busy for `duty`
/// of every `period` and asleep for the rest.
#[derive(Clone, Debug)]
pub struct LoadParams {
    pub duty: f64,
    pub period: Duration,
}

#[derive(Clone, Debug)]
pub struct IdleParams {
    pub duration: Duration,
}

#[derive(Clone, Debug)]
pub struct MemoryParams {
    /// The first measuring point (`rss_mib_1k`); `resources` is the second.
    pub first_resources: usize,
    pub resources: usize,
    /// Short, so a full resync and a refresh of the Dfns listing fall inside the run.
    pub resync_interval: Duration,
    pub unrelated_secrets: usize,
    pub unrelated_secret_bytes: usize,
    /// High enough never to bind: this scenario measures memory, not Dfns pacing.
    pub requests_per_minute: u32,
    pub operator_concurrency: u16,
    pub create_concurrency: usize,
    /// Wait after each phase before reading RSS, so caches and allocator settle.
    pub settle: Duration,
}

/// Scenario 5: renewals of a whole fleet falling due together.
#[derive(Clone, Debug)]
pub struct RenewalParams {
    pub resources: usize,
    /// The emulator's day: a `daysValid: 1` token lives this many seconds.
    pub seconds_per_day: u32,
    /// How long after its create each token falls due (its lifetime less `renewBefore`); longer
    /// than creating the fleet takes, so every renewal falls due after the last create.
    pub due_after: Duration,
    pub grace: Duration,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub scenarios: Vec<Scenario>,
    pub quick: bool,
    pub fleet: FleetParams,
    pub idle: IdleParams,
    pub load: LoadParams,
    pub memory: MemoryParams,
    pub renewal: RenewalParams,
}

/// Dfns calls per create: user-action challenge, signed user action, the create itself.
pub const CALLS_PER_CREATE: f64 = 3.0;

impl Params {
    pub fn from_env() -> Result<Self, String> {
        let scenarios =
            Scenario::parse(&std::env::var("BENCH_SCENARIO").unwrap_or_else(|_| "all".into()))?;
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let mut params = if quick {
            Self::quick(scenarios)
        } else {
            Self::full(scenarios)
        };
        // To see how throughput scales with the operator's `--concurrency` (default 16).
        if let Ok(text) = std::env::var("BENCH_OPERATOR_CONCURRENCY") {
            let concurrency = text
                .parse()
                .map_err(|_| format!("BENCH_OPERATOR_CONCURRENCY={text:?} is not a number"))?;
            params.fleet.operator_concurrency = concurrency;
            params.memory.operator_concurrency = concurrency;
        }
        // For profiling runs: `BENCH_MEMORY_RESOURCES=1000,3000` (first step, total) and
        // `BENCH_MEMORY_UNRELATED_SECRETS=0`.
        if let Ok(text) = std::env::var("BENCH_MEMORY_RESOURCES") {
            let parsed = text
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            let Some((first, total)) = parsed.filter(|(a, b): &(usize, usize)| 0 < *a && a < b)
            else {
                return Err(format!(
                    "BENCH_MEMORY_RESOURCES={text:?} is not FIRST,TOTAL with 0 < FIRST < TOTAL"
                ));
            };
            params.memory.first_resources = first;
            params.memory.resources = total;
        }
        if let Ok(text) = std::env::var("BENCH_MEMORY_UNRELATED_SECRETS") {
            params.memory.unrelated_secrets = text
                .parse()
                .map_err(|_| format!("BENCH_MEMORY_UNRELATED_SECRETS={text:?} is not a number"))?;
        }
        Ok(params)
    }

    fn full(scenarios: Vec<Scenario>) -> Self {
        Self {
            scenarios,
            quick: false,
            fleet: FleetParams {
                resources: 3000,
                dfns_latency: Duration::from_millis(50),
                requests_per_minute: 6000,
                initial_tokens: client_burst(6000),
                operator_concurrency: 32,
                // Half the 10m default so the 10-minute window holds two full resync cycles of
                // every resource instead of a jitter-dependent fraction of one.
                resync_interval: Duration::from_secs(300),
                apply_concurrency: 64,
            },
            idle: IdleParams {
                duration: Duration::from_secs(600),
            },
            load: LoadParams {
                duty: 0.5,
                period: Duration::from_millis(100),
            },
            memory: MemoryParams {
                first_resources: 1_000,
                resources: 10_000,
                resync_interval: Duration::from_secs(120),
                unrelated_secrets: 10_000,
                unrelated_secret_bytes: 100 * 1024,
                requests_per_minute: 100_000,
                operator_concurrency: 32,
                create_concurrency: 32,
                settle: Duration::from_secs(30),
            },
            renewal: RenewalParams {
                resources: 1_000,
                seconds_per_day: 1_800,
                due_after: Duration::from_secs(300),
                grace: Duration::from_secs(5),
            },
        }
    }

    fn quick(scenarios: Vec<Scenario>) -> Self {
        let full = Self::full(scenarios);
        Self {
            quick: true,
            fleet: FleetParams {
                resources: 300,
                resync_interval: Duration::from_secs(30),
                ..full.fleet
            },
            idle: IdleParams {
                duration: Duration::from_secs(60),
            },
            memory: MemoryParams {
                first_resources: 100,
                resources: 300,
                resync_interval: Duration::from_secs(20),
                unrelated_secrets: 300,
                settle: Duration::from_secs(10),
                ..full.memory
            },
            renewal: RenewalParams {
                resources: 100,
                due_after: Duration::from_secs(60),
                ..full.renewal
            },
            ..full
        }
    }

    /// The least time the creates can take: every call but the first `initial_tokens` (what both
    /// the emulator's bucket and the client's burst allow at once) waits for the rate.
    pub fn floor_seconds(&self) -> f64 {
        let f = &self.fleet;
        let calls = f.resources as f64 * CALLS_PER_CREATE - f64::from(f.initial_tokens);
        calls.max(0.0) / (f64::from(f.requests_per_minute) / 60.0)
    }
}

/// The operator's Dfns client bursts up to one second's worth of its limit (dfns-client's
/// `RateLimiter::per_minute`).
fn client_burst(requests_per_minute: u32) -> u32 {
    requests_per_minute.div_ceil(60).max(1)
}

impl FleetParams {
    pub fn to_json(&self) -> Value {
        json!({
            "resources": self.resources,
            "kind": "DfnsServiceAccount",
            "dfns_latency_ms": self.dfns_latency.as_millis() as u64,
            "rate_limit_requests_per_minute": self.requests_per_minute,
            "rate_limit_initial_tokens": self.initial_tokens,
            "connection_rate_limit_requests_per_minute": self.requests_per_minute,
            "operator_concurrency": self.operator_concurrency,
            "operator_resync_interval_seconds": self.resync_interval.as_secs(),
            "bench_apply_concurrency": self.apply_concurrency,
        })
    }
}

impl LoadParams {
    pub fn to_json(&self) -> Value {
        json!({
            "duty_cycle": self.duty,
            "period_ms": self.period.as_millis() as u64,
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "what": "one child process (the bench binary in burner mode), one thread per core, each busy-looping for duty x period and sleeping the rest",
        })
    }
}

impl MemoryParams {
    pub fn to_json(&self) -> Value {
        json!({
            "first_resources": self.first_resources,
            "resources": self.resources,
            "operator_resync_interval_seconds": self.resync_interval.as_secs(),
            "kind": "DfnsServiceAccount",
            "unrelated_secrets": self.unrelated_secrets,
            "unrelated_secret_bytes": self.unrelated_secret_bytes,
            "dfns_latency_ms": 0,
            "connection_rate_limit_requests_per_minute": self.requests_per_minute,
            "operator_concurrency": self.operator_concurrency,
            "operator_watch_scope": "all namespaces",
            "bench_create_concurrency": self.create_concurrency,
            "settle_seconds": self.settle.as_secs(),
        })
    }
}
