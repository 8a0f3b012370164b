//! Scenario 3: operator memory with 1,000 resources, then 10,000, each time through a full resync
//! and a refresh of the shared Dfns listing (a short resync interval puts both inside the run);
//! the slope between them is the cost per resource. Then many large Secrets it has no business
//! caching. The operator watches all namespaces, as installed in production.

use std::time::{Duration, Instant};

use dfns_emulator::Faults;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::RngExt;
use serde_json::{Value, json};

use crate::fleet::{Fleet, FleetOptions};
use crate::operator_process::{ProcSample, mib};
use crate::params::Params;
use crate::throughput::round;
use dfns_test_support::ControlPlane;

pub async fn run(cp: &'static ControlPlane, params: &Params) -> Result<Value, String> {
    let m = &params.memory;
    let mut fleet = Fleet::start(
        cp,
        FleetOptions {
            prefix: "bench-memory",
            faults: Faults::default(),
            requests_per_minute: m.requests_per_minute,
            operator_concurrency: m.operator_concurrency,
            resync_interval: m.resync_interval,
            operator_watches_only_bench_namespace: false,
            seconds_per_valid_day: 86_400,
            spec_extra: serde_json::Value::Null,
        },
    )
    .await?;
    let baseline = fleet.operator.sample()?;

    let started = Instant::now();
    let first = grow_and_resync(&mut fleet, params, 0..m.first_resources).await?;
    let second = grow_and_resync(&mut fleet, params, m.first_resources..m.resources).await?;
    let all_ready_seconds = started.elapsed().as_secs_f64();
    let with_resources = second.after_resync;

    eprintln!(
        "bench: creating {} unrelated {} KiB Secrets",
        m.unrelated_secrets,
        m.unrelated_secret_bytes / 1024
    );
    let started = Instant::now();
    create_unrelated_secrets(
        &fleet,
        m.unrelated_secrets,
        m.unrelated_secret_bytes,
        m.create_concurrency,
    )
    .await?;
    let secrets_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(m.settle).await;
    let with_secrets = fleet.operator.sample()?;
    fleet.stop().await;

    let added = (m.resources - m.first_resources) as f64;
    let slope_kib =
        (with_resources.peak_rss_kib as f64 - first.after_resync.peak_rss_kib as f64) / added;
    let figures = |s: &ProcSample| json!({ "rss_mib": round(mib(s.rss_kib), 1), "peak_rss_mib": round(mib(s.peak_rss_kib), 1) });
    Ok(json!({
        "parameters": m.to_json(),
        "rss_mib_1k": round(mib(first.after_resync.peak_rss_kib), 1),
        "rss_mib": round(mib(with_resources.peak_rss_kib), 1),
        "kib_per_resource": round(slope_kib, 2),
        "rss_mib_with_unrelated_secrets": round(mib(with_secrets.peak_rss_kib), 1),
        "unrelated_secrets_added_mib": round(mib(with_secrets.peak_rss_kib) - mib(with_resources.peak_rss_kib), 1),
        "steady_rss_mib": round(mib(with_resources.rss_kib), 1),
        "steady_rss_mib_with_unrelated_secrets": round(mib(with_secrets.rss_kib), 1),
        "unrelated_secrets_added_steady_mib": round(mib(with_secrets.rss_kib) - mib(with_resources.rss_kib), 1),
        "phases": {
            "operator_started": figures(&baseline),
            "first_resources_ready": figures(&first.ready),
            "first_resources_after_resync": figures(&first.after_resync),
            "resources_ready": figures(&second.ready),
            "resources_after_resync": figures(&second.after_resync),
            "unrelated_secrets_added": figures(&with_secrets),
        },
        "resync": {
            "first": first.resync,
            "second": second.resync,
        },
        "seconds_until_all_ready_and_resynced": round(all_ready_seconds, 1),
        "seconds_to_create_unrelated_secrets": round(secrets_seconds, 1),
        "operator_cpu_seconds": round(with_secrets.cpu_seconds, 1),
        "units": {
            "rss_mib_1k": "MiB (VmHWM, peak resident set, with the first resources, after their resync)",
            "rss_mib": "MiB (VmHWM, with all resources, after their resync)",
            "kib_per_resource": "KiB (peak RSS growth from the first to all resources / resources added)",
            "rss_mib_with_unrelated_secrets": "MiB (VmHWM)",
            "unrelated_secrets_added_mib": "MiB", "steady_rss_mib": "MiB (VmRSS)",
            "steady_rss_mib_with_unrelated_secrets": "MiB (VmRSS)", "unrelated_secrets_added_steady_mib": "MiB",
            "seconds_until_all_ready_and_resynced": "s", "seconds_to_create_unrelated_secrets": "s", "operator_cpu_seconds": "s",
        },
        "definitions": {
            "resync": "after all resources were Ready and writes had stopped: waited until the emulator had served two more lists of service accounts (the drift watch's refreshes of the shared inventory, each compared with every resource; settled resources are not reconciled one by one), then for the settle time",
        },
    }))
}

/// Readings around one growth step.
struct Step {
    ready: ProcSample,
    after_resync: ProcSample,
    resync: Value,
}

/// Creates the resources in `range`, waits until they are Ready, then through a full resync and
/// a refresh of the shared Dfns listing.
async fn grow_and_resync(
    fleet: &mut Fleet,
    params: &Params,
    range: std::ops::Range<usize>,
) -> Result<Step, String> {
    let m = &params.memory;
    let total = range.end;
    eprintln!(
        "bench: creating DfnsServiceAccounts {}..{} in {}",
        range.start,
        range.end,
        fleet.namespace()
    );
    fleet
        .apply_service_accounts_in(range, m.create_concurrency)
        .await?;
    if let Err(ready) = fleet.ready.wait_for(total, Duration::from_secs(3600)).await {
        return Err(format!(
            "only {ready}/{total} Ready; operator log: {}",
            fleet.operator.log.display()
        ));
    }
    fleet
        .writes
        .settle(Duration::from_secs(10), Duration::from_secs(300))
        .await;
    let ready = fleet.operator.sample()?;

    let reconciles_before = fleet.operator.reconciles().await?;
    let lists_before = inventory_lists(fleet);
    let waiting_since = Instant::now();
    // The drift watch refreshes the listing and compares every resource with it once per
    // resync interval; two refreshes make sure one whole interval's work is inside the window.
    let limit = m.resync_interval.mul_f64(3.0) + Duration::from_secs(total as u64 / 20);
    loop {
        let reconciled = fleet.operator.reconciles().await? - reconciles_before;
        let listed = inventory_lists(fleet) - lists_before;
        if listed >= 2 {
            break;
        }
        if waiting_since.elapsed() > limit {
            return Err(format!(
                "no full resync within {limit:?}: {reconciled} reconciles for {total} resources, {listed} inventory lists; operator log: {}",
                fleet.operator.log.display()
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let resync_seconds = waiting_since.elapsed().as_secs_f64();
    tokio::time::sleep(m.settle).await;
    let after_resync = fleet.operator.sample()?;
    Ok(Step {
        ready,
        after_resync,
        resync: json!({
            "resources": total,
            "seconds_until_resynced": round(resync_seconds, 1),
            "reconciles": fleet.operator.reconciles().await? - reconciles_before,
            "inventory_lists": inventory_lists(fleet) - lists_before,
        }),
    })
}

/// Lists of service accounts the emulator served: the shared inventory's refreshes.
fn inventory_lists(fleet: &Fleet) -> u64 {
    fleet
        .emulator
        .request_counts()
        .by_endpoint
        .get("GET /auth/service-accounts")
        .map_or(0, |e| e.requests)
}

/// Plain Opaque Secrets without the operator's label, filled with random bytes (incompressible,
/// like keys and certificates), created `concurrency` at a time.
async fn create_unrelated_secrets(
    fleet: &Fleet,
    count: usize,
    bytes: usize,
    concurrency: usize,
) -> Result<(), String> {
    let api: Api<Secret> = Api::namespaced(fleet.kube.clone(), fleet.namespace());
    let results: Vec<Result<(), String>> = futures::stream::iter(0..count)
        .map(|i| {
            let api = &api;
            async move {
                let mut payload = vec![0u8; bytes];
                rand::rng().fill(&mut payload[..]);
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("unrelated-{i}")),
                        ..Default::default()
                    },
                    data: Some([("payload".to_owned(), ByteString(payload))].into()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &secret)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("create unrelated-{i}: {e}"))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}
