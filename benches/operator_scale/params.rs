//! What to run and with which parameters: the full benchmark, or a quick smaller one for development.
//!
//! Environment: `BENCH_SCENARIO` = `all` (default) | `throughput` | `idle` | `memory`, or a comma
//! list; `BENCH_QUICK=1` for the small version. Every parameter lands in results.json next to the
//! figures it produced.

use std::time::Duration;

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Throughput,
    Idle,
    Memory,
}

impl Scenario {
    pub fn key(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Idle => "idle",
            Scenario::Memory => "memory",
        }
    }

    fn parse(text: &str) -> Result<Vec<Scenario>, String> {
        let mut chosen = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => chosen.extend([Scenario::Throughput, Scenario::Idle, Scenario::Memory]),
                "throughput" => chosen.push(Scenario::Throughput),
                "idle" => chosen.push(Scenario::Idle),
                "memory" => chosen.push(Scenario::Memory),
                other => {
                    return Err(format!(
                        "unknown scenario {other:?} (all, throughput, idle, memory)"
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
    /// Operator `--concurrency` (reconciles at once per kind); the operator's default.
    pub operator_concurrency: u16,
    /// Operator `--resync-interval`, used by the idle scenario.
    pub resync_interval: Duration,
    /// Applies the bench sends at once.
    pub apply_concurrency: usize,
}

#[derive(Clone, Debug)]
pub struct IdleParams {
    pub duration: Duration,
}

#[derive(Clone, Debug)]
pub struct MemoryParams {
    pub resources: usize,
    pub unrelated_secrets: usize,
    pub unrelated_secret_bytes: usize,
    /// High enough never to bind: this scenario measures memory, not Dfns pacing.
    pub requests_per_minute: u32,
    pub operator_concurrency: u16,
    pub create_concurrency: usize,
    /// Wait after each phase before reading RSS, so caches and allocator settle.
    pub settle: Duration,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub scenarios: Vec<Scenario>,
    pub quick: bool,
    pub fleet: FleetParams,
    pub idle: IdleParams,
    pub memory: MemoryParams,
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
        Ok(params)
    }

    fn full(scenarios: Vec<Scenario>) -> Self {
        Self {
            scenarios,
            quick: false,
            fleet: FleetParams {
                resources: 1000,
                dfns_latency: Duration::from_millis(50),
                requests_per_minute: 6000,
                operator_concurrency: 16,
                // Half the 10m default so the 10-minute window holds two full resync cycles of
                // every resource instead of a jitter-dependent fraction of one.
                resync_interval: Duration::from_secs(300),
                apply_concurrency: 64,
            },
            idle: IdleParams {
                duration: Duration::from_secs(600),
            },
            memory: MemoryParams {
                resources: 10_000,
                unrelated_secrets: 10_000,
                unrelated_secret_bytes: 100 * 1024,
                requests_per_minute: 100_000,
                operator_concurrency: 16,
                create_concurrency: 32,
                settle: Duration::from_secs(30),
            },
        }
    }

    fn quick(scenarios: Vec<Scenario>) -> Self {
        let full = Self::full(scenarios);
        Self {
            quick: true,
            fleet: FleetParams {
                resources: 100,
                resync_interval: Duration::from_secs(30),
                ..full.fleet
            },
            idle: IdleParams {
                duration: Duration::from_secs(60),
            },
            memory: MemoryParams {
                resources: 300,
                unrelated_secrets: 300,
                settle: Duration::from_secs(10),
                ..full.memory
            },
            ..full
        }
    }

    pub fn floor_seconds(&self) -> f64 {
        let f = &self.fleet;
        f.resources as f64 * CALLS_PER_CREATE / (f64::from(f.requests_per_minute) / 60.0)
    }
}

impl FleetParams {
    pub fn to_json(&self) -> Value {
        json!({
            "resources": self.resources,
            "kind": "DfnsServiceAccount",
            "dfns_latency_ms": self.dfns_latency.as_millis() as u64,
            "rate_limit_requests_per_minute": self.requests_per_minute,
            "connection_rate_limit_requests_per_minute": self.requests_per_minute,
            "operator_concurrency": self.operator_concurrency,
            "operator_resync_interval_seconds": self.resync_interval.as_secs(),
            "bench_apply_concurrency": self.apply_concurrency,
        })
    }
}

impl MemoryParams {
    pub fn to_json(&self) -> Value {
        json!({
            "resources": self.resources,
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
