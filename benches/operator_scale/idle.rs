//! Scenario 2: the throughput fleet left alone. Every resource resyncs on the operator's interval;
//! the cost should be one Dfns list per connection and kind per interval and nothing written.

use std::time::Instant;

use serde_json::{Value, json};

use crate::fleet::Fleet;
use crate::operator_process::mib;
use crate::params::Params;
use crate::throughput::round;

/// The reads an interval may cost: the shared inventory's list of service accounts, and the
/// connection reconciler's proof that its credentials still work (one List PATs, the read every
/// identity kind may make; List Credentials before that).
const INTERVAL_LIST_ROUTES: [&str; 3] = [
    "GET /auth/service-accounts",
    "GET /auth/pats",
    "GET /auth/credentials",
];

pub async fn run(fleet: &mut Fleet, params: &Params) -> Result<Value, String> {
    let duration = params.idle.duration;
    let resync = params.fleet.resync_interval;
    eprintln!(
        "bench: idle for {}s with {} Ready resources",
        duration.as_secs(),
        fleet.ready.ready_count()
    );
    fleet.emulator.reset_request_counts();
    let writes_before = fleet.writes.snapshot();
    let before = fleet.operator.sample()?;
    let requests_at_start = fleet.request_snapshot().await?;
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let kube_requests = fleet.operator_requests_since(&requests_at_start).await?;
    let after = fleet.operator.sample()?;
    let elapsed = started.elapsed().as_secs_f64();
    let writes = fleet.writes.snapshot().minus(writes_before);
    let dfns = fleet.emulator.request_counts();

    // Resync wake-ups are spread over [interval, 1.1 x interval]; one list serves a whole interval.
    let allowed_per_route = (elapsed / resync.as_secs_f64()).ceil() as u64 + 1;
    let per_route: Vec<u64> = INTERVAL_LIST_ROUTES
        .iter()
        .map(|r| dfns.by_endpoint.get(*r).map_or(0, |e| e.requests))
        .collect();
    let list_calls: u64 = per_route.iter().sum();
    let kube_writes = writes.resource_and_secret_writes();
    Ok(json!({
        "parameters": {
            "resources": params.fleet.resources,
            "duration_seconds": round(elapsed, 1),
            "operator_resync_interval_seconds": resync.as_secs(),
            "operator_resync_jitter": "up to +10%",
            "dfns_latency_ms": params.fleet.dfns_latency.as_millis() as u64,
            "rate_limit_requests_per_minute": params.fleet.requests_per_minute,
        },
        "dfns_reads": dfns.reads,
        "dfns_writes": dfns.writes,
        "dfns_auth_calls": dfns.auth,
        "dfns_list_calls": list_calls,
        "dfns_list_calls_allowed_per_route": allowed_per_route,
        "dfns_list_routes": INTERVAL_LIST_ROUTES,
        "dfns_requests_by_endpoint": serde_json::to_value(&dfns.by_endpoint).unwrap_or_default(),
        "kube_writes": kube_writes,
        "kube_reads": kube_requests.reads(),
        "kube_reads_per_resource_per_resync": round(kube_requests.reads() / params.fleet.resources as f64 / (elapsed / resync.as_secs_f64()), 3),
        "kube_requests": kube_requests.to_json(&fleet.background),
        "kube_writes_detail": {
            "service_account_writes": writes.service_accounts,
            "connection_writes": writes.connections,
            "secret_writes": writes.secrets,
            "event_objects_written": writes.events,
            "watch_gaps": writes.gaps,
        },
        "cpu_seconds": round(after.cpu_seconds - before.cpu_seconds, 2),
        "cpu_percent_of_one_core": round(100.0 * (after.cpu_seconds - before.cpu_seconds) / elapsed, 2),
        "rss_mib": round(mib(after.rss_kib), 1),
        "peak_rss_mib": round(mib(after.peak_rss_kib), 1),
        "units": {
            "dfns_reads": "Dfns requests", "dfns_writes": "Dfns requests", "dfns_auth_calls": "Dfns requests",
            "dfns_list_calls": "Dfns requests", "kube_writes": "Kubernetes writes",
            "kube_reads": "Kubernetes GET + LIST requests in the window (kube-apiserver's count, the operator's share)",
            "kube_reads_per_resource_per_resync": "GET + LIST / resource / resync interval", "cpu_seconds": "s (user + system)",
            "cpu_percent_of_one_core": "%", "rss_mib": "MiB", "peak_rss_mib": "MiB",
        },
        "met": {
            "zero_writes": dfns.writes == 0 && dfns.auth == 0 && kube_writes == 0 && writes.events == 0,
            "only_interval_list_calls": dfns.reads == list_calls && per_route.iter().all(|n| *n <= allowed_per_route),
        },
    }))
}
