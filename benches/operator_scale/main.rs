//! `make bench`: the operator at scale on the local control plane and the Dfns emulator.
//!
//! 1. throughput — 3,000 DfnsServiceAccounts applied at once, Dfns with 50 ms latency and a
//!    6,000 requests/minute limit whose bucket starts at one second's worth: wall time against the
//!    rate-limit floor, time to Ready, Dfns calls, Kubernetes writes, and the operator's Kubernetes
//!    API requests per create as kube-apiserver counts them.
//! 2. idle — the same fleet left alone: Dfns calls, Kubernetes reads and writes, operator CPU.
//! 3. throughput_under_load — scenario 1 again under a fixed synthetic CPU load (cpu_load.rs).
//! 4. memory — operator RSS with 1,000 then 10,000 resources, each through a full resync and a
//!    listing refresh, and the slope; then with 10,000 unrelated 100 KiB Secrets.
//! 5. renewal — 1,000 service accounts whose tokens fall due for renewal together: wall time
//!    until all switched and retired their previous credential, against the rate-limit floor,
//!    and Dfns calls per renewal.
//!
//! Writes target/bench/results.json and target/bench/results.md. `BENCH_SCENARIO` picks
//! scenarios, `BENCH_QUICK=1` runs a small version (see params.rs). The operator runs as the
//! release binary in a child process; the control plane is `make cluster-up`'s (or one started
//! for this run).

mod cpu_load;
mod fleet;
mod idle;
mod kube_writes;
mod memory;
mod operator_process;
mod params;
mod ready;
mod renewal;
mod report;
mod stats;
mod throughput;

use params::{Params, Scenario};
use serde_json::Value;

#[tokio::main]
async fn main() {
    // The synthetic CPU load is this binary started again in burner mode.
    cpu_load::run_if_burner();
    // `cargo bench` passes `--bench`; there is nothing to filter here.
    let params = match Params::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    dfns_client::install_crypto_provider();
    let cp = dfns_test_support::ControlPlane::shared();
    if let Err(e) = cp.apply_crds().await {
        eprintln!("bench: installing CRDs: {e}");
        std::process::exit(1);
    }

    let mut results = Results {
        quick: params.quick,
        saved: false,
    };
    if let Err(e) = run(cp, &params, &mut results).await {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
    if results.saved {
        let table =
            std::fs::read_to_string(fleet::bench_dir().join("results.md")).unwrap_or_default();
        println!(
            "{table}\nresults: {}",
            fleet::bench_dir().join("results.json").display()
        );
    }
}

/// Saves each scenario as soon as it finishes, so a later failure (or a long memory run) does not
/// lose it.
struct Results {
    quick: bool,
    saved: bool,
}

impl Results {
    fn save(&mut self, scenario: Scenario, section: Value) {
        let path = fleet::bench_dir().join("results.json");
        let all = report::merge(&path, &[(scenario.key(), section)], self.quick);
        std::fs::write(&path, serde_json::to_string_pretty(&all).expect("JSON"))
            .expect("write results.json");
        std::fs::write(
            fleet::bench_dir().join("results.md"),
            report::markdown(&all),
        )
        .expect("write results.md");
        eprintln!(
            "bench: {} results saved to {}",
            scenario.key(),
            path.display()
        );
        self.saved = true;
    }
}

async fn run(
    cp: &'static dfns_test_support::ControlPlane,
    params: &Params,
    results: &mut Results,
) -> Result<(), String> {
    let wants = |s: Scenario| params.scenarios.contains(&s);
    if wants(Scenario::Throughput) || wants(Scenario::Idle) {
        let mut fleet = if wants(Scenario::Throughput) {
            eprintln!("bench: scenario throughput");
            let (result, fleet) = throughput::run(cp, params, false).await?;
            results.save(Scenario::Throughput, result);
            fleet
        } else {
            eprintln!("bench: building the throughput fleet for the idle scenario");
            let created = throughput::create_fleet(cp, params, "bench-throughput").await?;
            let fleet = created.fleet;
            fleet
                .writes
                .settle(
                    std::time::Duration::from_secs(15),
                    std::time::Duration::from_secs(180),
                )
                .await;
            fleet
        };
        if wants(Scenario::Idle) {
            eprintln!("bench: scenario idle");
            let result = idle::run(&mut fleet, params).await;
            fleet.stop().await;
            results.save(Scenario::Idle, result?);
        } else {
            fleet.stop().await;
        }
    }
    if wants(Scenario::ThroughputUnderLoad) {
        eprintln!("bench: scenario throughput_under_load");
        let (result, fleet) = throughput::run(cp, params, true).await?;
        fleet.stop().await;
        results.save(Scenario::ThroughputUnderLoad, result);
    }
    if wants(Scenario::Memory) {
        eprintln!("bench: scenario memory");
        results.save(Scenario::Memory, memory::run(cp, params).await?);
    }
    if wants(Scenario::Renewal) {
        eprintln!("bench: scenario renewal");
        results.save(Scenario::Renewal, renewal::run(cp, params).await?);
    }
    Ok(())
}
