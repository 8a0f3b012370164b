//! Two replicas of the real binary with leader election: only the Lease holder reconciles; when
//! it is killed (SIGKILL, no chance to hand over), the standby takes over within the lease time;
//! on SIGTERM the leader finishes and hands the Lease back.

use std::process::Stdio;
use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_test_support::operator::Setup;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::time::Instant;

const LEASE: &str = "dfns-operator";
const LEASE_DURATION: Duration = Duration::from_secs(4);
const RETRY_PERIOD: Duration = Duration::from_secs(1);

struct Replica {
    name: &'static str,
    child: Child,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_replica(setup: &Setup, name: &'static str, log: &std::fs::File) -> Replica {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_dfns-operator"))
        .args(["run", "--log-format", "json", "--leader-election"])
        .args([
            "--namespace",
            setup.namespace(),
            "--watch-namespace",
            setup.namespace(),
        ])
        .args(["--leader-election-lease-name", LEASE])
        .args([
            "--leader-election-lease-duration",
            &format!("{}s", LEASE_DURATION.as_secs()),
        ])
        .args(["--leader-election-renew-deadline", "3s"])
        .args([
            "--leader-election-retry-period",
            &format!("{}s", RETRY_PERIOD.as_secs()),
        ])
        .args(["--metrics-address", &format!("127.0.0.1:{port}")])
        // Only this test's cluster connections; traced as in-process operators are, so the leak
        // check reads everything it would print.
        .args(["--cluster-connection-selector", &setup.cluster_selector()])
        .args(["--allowed-api-hosts", &setup.allowed_api_hosts()])
        .env("RUST_LOG", dfns_test_support::logs::FILTER)
        .arg("--kubeconfig")
        .arg(setup.cp.kubeconfig_path())
        // The identity is `<POD_NAME>_<random>`.
        .env("POD_NAME", name)
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start dfns-operator");
    Replica { name, child, port }
}

impl Replica {
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let client = reqwest::Client::new();
        let response = client
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.expect("metrics answer").1
    }

    /// Waits until /readyz answers 200 with `expected`.
    async fn wait_readyz(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.get("/readyz").await;
            if answer
                .as_ref()
                .is_some_and(|(status, body)| *status == 200 && body == expected)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: /readyz never answered {expected:?}; last: {answer:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Sum of `dfns_operator_reconciles_total` over all labels.
fn reconciles(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("dfns_operator_reconciles_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// The Lease's renewTime, acquireTime and transitions.
fn lease_times(lease: &Lease) -> (jiff::Timestamp, jiff::Timestamp, i32) {
    let spec = lease.spec.as_ref().expect("a Lease spec");
    (
        spec.renew_time.as_ref().expect("renewTime").0,
        spec.acquire_time.as_ref().expect("acquireTime").0,
        spec.lease_transitions.unwrap_or(0),
    )
}

/// Waits until the Lease's holder has renewed it at `at` or later.
async fn wait_renewed_after(leases: &Api<Lease>, at: jiff::Timestamp, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let lease = leases.get(LEASE).await.unwrap();
        if lease_times(&lease).0 >= at {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Lease was not renewed after {at}: {:?}",
            lease.spec
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .unwrap()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Waits until a replica named `prefix` holds the Lease; returns the Lease.
async fn wait_holder(leases: &Api<Lease>, prefix: &str, within: Duration) -> Lease {
    let started = Instant::now();
    loop {
        if let Some(lease) = leases.get_opt(LEASE).await.unwrap()
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(|h| h.starts_with(&format!("{prefix}_")))
        {
            return lease;
        }
        assert!(
            started.elapsed() < within,
            "{prefix} did not take the Lease within {within:?}; holder: {:?}",
            holder(leases).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let setup = Setup::new("e2e-leader").await;
    setup.admin_connection("main", json!({})).await;
    let leases: Api<Lease> = Api::namespaced(setup.kube.clone(), setup.namespace());
    let log_path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let log = std::fs::File::create(&log_path).unwrap();
    dfns_client::install_crypto_provider();

    let mut a = start_replica(&setup, "replica-a", &log);
    wait_holder(&leases, "replica-a", Duration::from_secs(60)).await;
    a.wait_readyz("ok: leading\n").await;
    let b = start_replica(&setup, "replica-b", &log);
    b.wait_readyz("ok: standby, another replica leads\n").await;
    let standby_since = jiff::Timestamp::now();

    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>("first", json!({ "connectionRef": conn }))
        .await;
    setup.wait_ready::<DfnsConnection>("main").await;
    setup.wait_ready::<DfnsServiceAccount>("first").await;
    // A standby that is alive past a whole lease duration (and more) of the leader's renewals
    // still does not take over or reconcile.
    wait_renewed_after(
        &leases,
        standby_since + LEASE_DURATION + 2 * RETRY_PERIOD,
        Duration::from_secs(60),
    )
    .await;
    assert!(holder(&leases).await.unwrap().starts_with("replica-a_"));
    let (a_metrics, b_metrics) = (a.metrics().await, b.metrics().await);
    assert!(
        reconciles(&a_metrics) > 0,
        "the leader reconciled:\n{a_metrics}"
    );
    assert_eq!(
        reconciles(&b_metrics),
        0,
        "the standby reconciled:\n{b_metrics}"
    );
    assert!(
        a_metrics.contains("dfns_operator_leader 1")
            && b_metrics.contains("dfns_operator_leader 0")
    );
    assert!(
        a_metrics
            .contains(r#"dfns_operator_credentials{kind="DfnsServiceAccount",state="ready"} 1"#),
        "{a_metrics}"
    );
    assert!(
        !b_metrics.contains("dfns_operator_credentials{"),
        "a standby exports no credential gauges"
    );
    // Dfns calls by endpoint (ids stripped) and the operator's Kubernetes writes are counted.
    assert!(
        a_metrics.contains(r#"dfns_operator_dfns_requests_total{method="POST",endpoint="/auth/service-accounts",status="200"} 1"#),
        "{a_metrics}"
    );
    assert!(
        a_metrics
            .contains(r#"dfns_operator_kubernetes_writes_total{verb="update",resource="secrets"}"#),
        "{a_metrics}"
    );
    assert!(
        a_metrics
            .contains(r#"dfns_operator_kubernetes_writes_total{verb="update",resource="leases"}"#),
        "{a_metrics}"
    );
    assert!(
        !b_metrics.contains("dfns_operator_dfns_requests_total{"),
        "the standby called Dfns:\n{b_metrics}"
    );

    // SIGKILL: the leader cannot hand over; the standby waits for the lease to run out.
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    let (last_renewal, _, transitions) = lease_times(&leases.get(LEASE).await.unwrap());
    let taken = wait_holder(&leases, "replica-b", Duration::from_secs(60)).await;
    let (_, acquired, transitions_after) = lease_times(&taken);
    // Measured on the Lease's own timestamps (the replicas' clocks), not on when this test saw
    // the change: never before the dead leader's lease expired (the standby counts from when it
    // saw the last renewal, which is after it was made; its acquireTime is taken just before the
    // read that finds the lease expired, hence the allowance of one read) …
    let waited = Duration::try_from(acquired.duration_since(last_renewal)).unwrap_or_default();
    assert!(
        waited + Duration::from_millis(250) >= LEASE_DURATION,
        "taken over {waited:?} after the last renewal, before the lease duration ran out"
    );
    // … and at one of its next attempts after that (it tries every retry period).
    let bound = LEASE_DURATION + 5 * RETRY_PERIOD;
    assert!(
        waited <= bound,
        "taken over {waited:?} after the last renewal, more than {bound:?}"
    );
    assert_eq!(transitions_after, transitions + 1, "one transition");
    eprintln!(
        "standby took over {waited:?} after the last renewal (lease duration {LEASE_DURATION:?})"
    );

    setup
        .apply::<DfnsServiceAccount>("second", json!({ "connectionRef": conn }))
        .await;
    setup.wait_ready::<DfnsServiceAccount>("second").await;
    let b_metrics = b.metrics().await;
    assert!(
        reconciles(&b_metrics) > 0 && b_metrics.contains("dfns_operator_leader 1"),
        "{b_metrics}"
    );
    // One Dfns service account per resource: the takeover created nothing twice.
    assert_eq!(setup.emulator.state().service_accounts.len(), 2);

    // SIGTERM: the leader stops, hands the Lease back and exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &b.child.id().unwrap().to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let mut b = b;
    let exit = tokio::time::timeout(Duration::from_secs(30), b.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(
        exit.success(),
        "exit status {exit:?}; log: {}",
        std::fs::read_to_string(&log_path).unwrap()
    );
    assert_eq!(
        holder(&leases).await,
        None,
        "the Lease was handed back on shutdown"
    );
    setup
        .leak_check()
        .with_log_file(&log_path)
        .assert_clean()
        .await;
}
