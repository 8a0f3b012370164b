//! Scenario 5: N service accounts whose tokens all fall due for renewal within one interval. The
//! emulator's day lasts `seconds_per_day`, so `daysValid: 1` tokens expire minutes after their
//! create; `renewBefore` puts every renewal `due_after` after its create. Measured from the first
//! renewal falling due until every resource has switched to its replacement and retired the
//! previous one: wall time against the rate-limit floor, and Dfns calls per renewal.

use std::time::{Duration, Instant};

use dfns_operator::api::DfnsServiceAccount;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

use crate::fleet::{Fleet, FleetOptions};
use crate::params::Params;
use dfns_test_support::ControlPlane;

pub async fn run(cp: &'static ControlPlane, params: &Params) -> Result<Value, String> {
    let r = &params.renewal;
    let f = &params.fleet;
    let lifetime = Duration::from_secs(u64::from(r.seconds_per_day));
    let renew_before = lifetime - r.due_after;
    let mut fleet = Fleet::start(
        cp,
        FleetOptions {
            seconds_per_valid_day: r.seconds_per_day,
            spec_extra: json!({
                "daysValid": 1,
                "rotation": {
                    "renewBefore": format!("{}s", renew_before.as_secs()),
                    "gracePeriod": format!("{}s", r.grace.as_secs()),
                },
            }),
            ..FleetOptions::rate_limited("bench-renewal", f)
        },
    )
    .await?;
    eprintln!(
        "bench: creating {} renewing DfnsServiceAccounts",
        r.resources
    );
    fleet
        .apply_service_accounts(r.resources, f.apply_concurrency)
        .await?;
    let timeout = Duration::from_secs(900);
    if let Err(ready) = fleet.ready.wait_for(r.resources, timeout).await {
        return Err(format!(
            "only {ready}/{} Ready after {timeout:?}",
            r.resources
        ));
    }
    let api: Api<DfnsServiceAccount> = Api::namespaced(fleet.kube.clone(), fleet.namespace());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("list: {e}"))?;
    let due: Vec<jiff::Timestamp> = list
        .items
        .iter()
        .filter_map(|sa| sa.status.as_ref()?.renewal_time.as_ref().map(|t| t.0))
        .collect();
    let first_due = due.iter().min().copied().ok_or("no renewalTime recorded")?;
    let last_due = due.iter().max().copied().ok_or("no renewalTime recorded")?;
    if jiff::Timestamp::now() >= first_due {
        return Err(format!(
            "creating the fleet outlasted the renewal offset ({:?}); raise due_after",
            r.due_after
        ));
    }
    let dfns_before = fleet.emulator.request_counts();
    let wait = first_due.duration_since(jiff::Timestamp::now());
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    let started = Instant::now();
    eprintln!(
        "bench: renewals fall due (within {})",
        last_due.duration_since(first_due)
    );

    // Done: every resource switched to a replacement and retired its previous credential.
    let deadline = Instant::now() + timeout;
    let wall = loop {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("list: {e}"))?;
        let done = list
            .items
            .iter()
            .filter(|sa| {
                sa.status.as_ref().is_some_and(|s| {
                    s.switched_at.is_some() && s.pending_renewal.is_none() && s.retiring.is_none()
                })
            })
            .count();
        if done == r.resources {
            break started.elapsed().as_secs_f64();
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {done}/{} renewed after {timeout:?}",
                r.resources
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let dfns = fleet.emulator.request_counts();
    let calls = dfns.total - dfns_before.total;
    let writes = dfns.writes - dfns_before.writes;
    let n = r.resources as f64;
    let per_renewal = calls as f64 / n;
    // Dfns' limit allows `requests_per_minute`, so the calls renewals need take at least this
    // long; and renewals cannot finish before the last one falls due.
    let rate_floor = calls as f64 / (f64::from(f.requests_per_minute) / 60.0);
    let spread = last_due.duration_since(first_due).as_secs_f64();
    let floor = rate_floor.max(spread);
    let sample = fleet.operator.sample()?;
    fleet.stop().await;
    Ok(json!({
        "wall_seconds": round(wall),
        "floor_seconds": round(floor),
        "ratio_to_floor": round(wall / floor),
        "rate_limit_floor_seconds": round(rate_floor),
        "due_spread_seconds": round(spread),
        "dfns_calls_per_renewal": round(per_renewal),
        "dfns_writes_per_renewal": round(writes as f64 / n),
        "dfns_rate_limited": dfns.rate_limited - dfns_before.rate_limited,
        "operator_cpu_seconds": sample.cpu_seconds,
        "parameters": {
            "resources": r.resources,
            "seconds_per_valid_day": r.seconds_per_day,
            "renew_before_seconds": renew_before.as_secs(),
            "grace_seconds": r.grace.as_secs(),
            "dfns_latency_ms": f.dfns_latency.as_millis() as u64,
            "requests_per_minute": f.requests_per_minute,
            "operator_concurrency": f.operator_concurrency,
        },
    }))
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
