//! Scenario 3: operator memory with many resources, then with many large Secrets it has no
//! business caching. The operator watches all namespaces, as installed in production.

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
            resync_interval: Duration::from_secs(600),
            operator_watches_only_bench_namespace: false,
        },
    )
    .await?;
    let baseline = fleet.operator.sample()?;

    eprintln!(
        "bench: creating {} DfnsServiceAccounts in {}",
        m.resources,
        fleet.namespace()
    );
    let started = Instant::now();
    fleet
        .apply_service_accounts(m.resources, m.create_concurrency)
        .await?;
    if let Err(ready) = fleet
        .ready
        .wait_for(m.resources, Duration::from_secs(3600))
        .await
    {
        return Err(format!(
            "only {ready}/{} Ready; operator log: {}",
            m.resources,
            fleet.operator.log.display()
        ));
    }
    let all_ready_seconds = started.elapsed().as_secs_f64();
    fleet
        .writes
        .settle(Duration::from_secs(10), Duration::from_secs(300))
        .await;
    tokio::time::sleep(m.settle).await;
    let with_resources = fleet.operator.sample()?;

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

    let figures = |s: &ProcSample| json!({ "rss_mib": round(mib(s.rss_kib), 1), "peak_rss_mib": round(mib(s.peak_rss_kib), 1) });
    Ok(json!({
        "parameters": m.to_json(),
        "rss_mib": round(mib(with_resources.peak_rss_kib), 1),
        "rss_mib_with_unrelated_secrets": round(mib(with_secrets.peak_rss_kib), 1),
        "unrelated_secrets_added_mib": round(mib(with_secrets.peak_rss_kib) - mib(with_resources.peak_rss_kib), 1),
        "steady_rss_mib": round(mib(with_resources.rss_kib), 1),
        "steady_rss_mib_with_unrelated_secrets": round(mib(with_secrets.rss_kib), 1),
        "unrelated_secrets_added_steady_mib": round(mib(with_secrets.rss_kib) - mib(with_resources.rss_kib), 1),
        "phases": {
            "operator_started": figures(&baseline),
            "resources_ready": figures(&with_resources),
            "unrelated_secrets_added": figures(&with_secrets),
        },
        "seconds_until_all_ready": round(all_ready_seconds, 1),
        "seconds_to_create_unrelated_secrets": round(secrets_seconds, 1),
        "operator_cpu_seconds": round(with_secrets.cpu_seconds, 1),
        "units": {
            "rss_mib": "MiB (VmHWM, peak resident set)", "rss_mib_with_unrelated_secrets": "MiB (VmHWM)",
            "unrelated_secrets_added_mib": "MiB", "steady_rss_mib": "MiB (VmRSS)",
            "steady_rss_mib_with_unrelated_secrets": "MiB (VmRSS)", "unrelated_secrets_added_steady_mib": "MiB",
            "seconds_until_all_ready": "s", "seconds_to_create_unrelated_secrets": "s", "operator_cpu_seconds": "s",
        },
    }))
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
