//! Scenario 1: N service accounts applied at once against a Dfns with latency and a rate limit
//! whose bucket starts nearly empty, so the limit binds from the first second. Run once on the
//! quiet machine and once under a fixed synthetic CPU load (`cpu_load.rs`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cpu_load::CpuLoad;
use crate::fleet::{Fleet, FleetOptions};
use crate::params::Params;
use crate::stats::percentile;
use dfns_test_support::ControlPlane;
use dfns_test_support::apiserver_requests::Snapshot;

/// How long writes must have stopped before the follow-up reconciles count as finished.
const SETTLE_QUIET: Duration = Duration::from_secs(15);
const SETTLE_LIMIT: Duration = Duration::from_secs(180);

/// A fleet ready to be measured: when the applies started, and the API server's counts then.
pub struct Created {
    pub fleet: Fleet,
    pub started: Instant,
    pub requests_at_start: Snapshot,
}

/// Builds the fleet of scenario 1 and waits until all of it is Ready; shared with the idle scenario.
pub async fn create_fleet(
    cp: &'static ControlPlane,
    params: &Params,
    prefix: &'static str,
) -> Result<Created, String> {
    let f = &params.fleet;
    let mut fleet = Fleet::start(cp, FleetOptions::rate_limited(prefix, f)).await?;
    eprintln!(
        "bench: applying {} DfnsServiceAccounts in {}",
        f.resources,
        fleet.namespace()
    );
    // The emulator's bucket has refilled while the fleet was set up: start it again as configured.
    fleet.emulator.set_faults(fleet.emulator.faults());
    let requests_at_start = fleet.request_snapshot().await?;
    let started = Instant::now();
    fleet
        .apply_service_accounts(f.resources, f.apply_concurrency)
        .await?;
    let timeout = Duration::from_secs_f64((params.floor_seconds() * 20.0).max(600.0));
    if let Err(ready) = fleet.ready.wait_for(f.resources, timeout).await {
        return Err(format!(
            "only {ready}/{} Ready after {timeout:?}; operator log: {}",
            f.resources,
            fleet.operator.log.display()
        ));
    }
    Ok(Created {
        fleet,
        started,
        requests_at_start,
    })
}

/// Runs the scenario; with `under_load`, the synthetic CPU load runs from before the fleet is
/// set up until the namespace is quiet.
pub async fn run(
    cp: &'static ControlPlane,
    params: &Params,
    under_load: bool,
) -> Result<(Value, Fleet), String> {
    let load = if under_load {
        eprintln!("bench: starting the synthetic CPU load {:?}", params.load);
        Some(CpuLoad::start(&params.load)?)
    } else {
        None
    };
    let prefix = if under_load {
        "bench-throughput-loaded"
    } else {
        "bench-throughput"
    };
    let Created {
        mut fleet,
        started,
        requests_at_start,
    } = create_fleet(cp, params, prefix).await?;
    let n = params.fleet.resources;

    let first_ready = fleet.ready.first_ready();
    let last_ready = first_ready
        .values()
        .max()
        .copied()
        .ok_or("no resource Ready")?;
    let wall = last_ready.duration_since(started).as_secs_f64();
    let mut to_ready: Vec<f64> = fleet
        .applied_at
        .iter()
        .filter_map(|(name, applied)| {
            Some(
                first_ready
                    .get(name)?
                    .saturating_duration_since(*applied)
                    .as_secs_f64(),
            )
        })
        .collect();
    to_ready.sort_by(f64::total_cmp);
    let dfns_at_ready = fleet.emulator.request_counts();

    // The status and Secret writes after Ready (and their follow-up reconciles) belong to the cost
    // of creating: wait until the namespace is quiet before counting.
    let settled_in = fleet.writes.settle(SETTLE_QUIET, SETTLE_LIMIT).await;
    let kube_requests = fleet.operator_requests_since(&requests_at_start).await?;
    let load_cpu_seconds = load.as_ref().and_then(CpuLoad::cpu_seconds);
    drop(load);
    let writes = fleet.writes.snapshot();
    let own = fleet.own_writes;
    let operator_sa = writes.service_accounts - own.service_accounts;
    let operator_conn = writes.connections - own.connections;
    let operator_secrets = writes.secrets - own.secrets;
    let dfns = fleet.emulator.request_counts();
    let sample = fleet.operator.sample()?;
    let floor = params.floor_seconds();
    let per = |x: u64| round(x as f64 / n as f64, 3);

    let result = json!({
        "parameters": params.fleet.to_json(),
        "wall_seconds": round(wall, 2),
        "floor_seconds": round(floor, 2),
        "ratio_to_floor": round(wall / floor, 3),
        "p50_seconds": round(percentile(&to_ready, 50.0), 2),
        "p95_seconds": round(percentile(&to_ready, 95.0), 2),
        "max_seconds": round(to_ready.last().copied().unwrap_or_default(), 2),
        "dfns_calls_per_resource": per(dfns.total),
        "dfns_writes_per_resource": per(dfns.writes),
        "dfns_auth_calls_per_resource": per(dfns.auth),
        "dfns_reads_per_resource": per(dfns.reads),
        "dfns_rate_limited": dfns.rate_limited,
        "dfns_calls_until_all_ready": dfns_at_ready.total,
        "achieved_dfns_requests_per_second": round(dfns_at_ready.total as f64 / wall, 1),
        "allowed_dfns_requests_per_second": round(f64::from(params.fleet.requests_per_minute) / 60.0, 1),
        "creates_per_second": round(n as f64 / wall, 1),
        "ready_after_seconds_by_share": ready_curve(&first_ready, started),
        "dfns_requests_by_endpoint": serde_json::to_value(&dfns.by_endpoint).unwrap_or_default(),
        "kube_writes_per_resource": per(operator_sa + operator_conn + operator_secrets),
        "kube_requests_per_create": round(kube_requests.requests() / n as f64, 2),
        "kube_reads_per_create": round(kube_requests.reads() / n as f64, 2),
        "kube_requests": kube_requests.to_json(&fleet.background),
        "kube_writes": {
            "service_account_writes": operator_sa,
            "connection_writes": operator_conn,
            "secret_writes": operator_secrets,
            "event_objects_written": writes.events,
            "watch_gaps": writes.gaps,
        },
        "settled_after_all_ready_seconds": round(settled_in.as_secs_f64(), 1),
        "operator_cpu_seconds": round(sample.cpu_seconds, 2),
        "operator_peak_rss_mib": round(crate::operator_process::mib(sample.peak_rss_kib), 1),
        "synthetic_load": if under_load {
            json!({ "parameters": params.load.to_json(), "cpu_seconds_used": load_cpu_seconds.map(|s| round(s, 1)) })
        } else {
            Value::Null
        },
        "units": units(),
        "definitions": definitions(),
    });
    Ok((result, fleet))
}

/// Seconds from the first apply until 10%, 25%, 50%, 75%, 90% and 100% of resources were Ready:
/// a straight line means a steady rate, a bend shows where the operator slowed down.
fn ready_curve(
    first_ready: &std::collections::HashMap<String, Instant>,
    started: Instant,
) -> Value {
    let mut at: Vec<f64> = first_ready
        .values()
        .map(|t| t.duration_since(started).as_secs_f64())
        .collect();
    at.sort_by(f64::total_cmp);
    let mut curve = serde_json::Map::new();
    for share in [10.0, 25.0, 50.0, 75.0, 90.0, 100.0] {
        curve.insert(format!("{share}%"), json!(round(percentile(&at, share), 2)));
    }
    Value::Object(curve)
}

pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn units() -> Value {
    json!({
        "wall_seconds": "s", "floor_seconds": "s", "ratio_to_floor": "x", "p50_seconds": "s",
        "p95_seconds": "s", "max_seconds": "s", "dfns_calls_per_resource": "Dfns requests / resource",
        "dfns_writes_per_resource": "Dfns requests / resource", "dfns_auth_calls_per_resource": "Dfns requests / resource",
        "dfns_reads_per_resource": "Dfns requests / resource", "kube_writes_per_resource": "Kubernetes writes / resource",
        "operator_cpu_seconds": "s", "operator_peak_rss_mib": "MiB",
        "achieved_dfns_requests_per_second": "requests/s", "allowed_dfns_requests_per_second": "requests/s",
        "creates_per_second": "resources/s", "ready_after_seconds_by_share": "s", "settled_after_all_ready_seconds": "s",
        "kube_requests_per_create": "Kubernetes API requests / resource (excluding watches)", "kube_reads_per_create": "Kubernetes GET + LIST / resource",
    })
}

fn definitions() -> Value {
    json!({
        "wall_seconds": "first apply sent -> last resource seen Ready=True by the bench's watch",
        "time_to_ready": "the resource's apply returned -> first seen Ready=True",
        "floor_seconds": "(resources x 3 Dfns calls per create - the emulator bucket's initial tokens, which equal the client's one-second burst) / (rate limit per second)",
        "kube_requests_per_create": "the operator's Kubernetes API requests from the first apply until the namespace was quiet, as counted by kube-apiserver (apiserver_request_total) minus the bench's own and other clients' (see kube_requests.method), watches excluded, divided by resources; includes the Event and the operator's start-up reads of the connection",
        "dfns_calls": "every request the emulator received in the scenario (login, connection checks, user-action signing, creates, reads), divided by resources",
        "kube_writes": "ADDED + MODIFIED watch events on DfnsServiceAccounts, DfnsConnections and Secrets in the bench namespace, minus the bench's own applies, counted until the namespace was quiet for 15 s; Event objects are listed apart",
    })
}
