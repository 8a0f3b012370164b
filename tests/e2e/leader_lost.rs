//! A leader that finds its Lease taken (here: overwritten by someone else) stops reconciling at
//! once and returns an error, so the process exits and restarts as a standby; it never writes
//! the Lease back, and its leader gauge drops to 0.

use std::sync::Arc;
use std::time::Duration;

use dfns_operator::controller::RunOptions;
use dfns_operator::controller::leader::LeaseConfig;
use dfns_operator::telemetry::Metrics;
use dfns_test_support::operator::Setup;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_and_reports_lost_leadership() {
    let setup = Setup::new("e2e-leader-lost").await;
    let leases: Api<Lease> = Api::namespaced(setup.kube.clone(), setup.namespace());
    let mut lease = LeaseConfig::new(setup.namespace(), "dfns-operator", "replica-a_1");
    lease.lease_duration = Duration::from_secs(4);
    lease.renew_deadline = Duration::from_secs(3);
    lease.retry_period = Duration::from_secs(1);
    let metrics = Arc::new(Metrics::new());
    let options = RunOptions {
        leader_election: Some(lease),
        metrics: metrics.clone(),
        ..RunOptions::default()
    };
    let operator = tokio::spawn(dfns_operator::controller::run_with(
        setup.cp.client(),
        setup.config(),
        options,
        std::future::pending(),
    ));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut current = loop {
        if let Some(lease) = leases.get_opt("dfns-operator").await.unwrap()
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some("replica-a_1")
        {
            break lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became the leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Bounded by the same deadline: the gauge follows the Lease within moments.
    while !metrics.encode().contains("dfns_operator_leader 1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leader gauge never rose to 1:\n{}",
            metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Someone else takes the Lease (e.g. after a network partition the leader did not notice).
    let spec = current.spec.as_mut().unwrap();
    spec.holder_identity = Some("thief".into());
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    spec.lease_duration_seconds = Some(60);
    leases
        .replace("dfns-operator", &PostParams::default(), &current)
        .await
        .expect("take the Lease");

    let result = tokio::time::timeout(Duration::from_secs(60), operator)
        .await
        .expect("the operator stops")
        .unwrap();
    let error = result.expect_err("losing leadership is an error, so the process restarts");
    assert!(error.to_string().contains("lost leadership"), "{error}");
    assert!(metrics.encode().contains("dfns_operator_leader 0"));
    let holder = leases
        .get("dfns-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(
        holder.as_deref(),
        Some("thief"),
        "the old leader did not write the Lease back"
    );
    setup
        .leak_check()
        .with_metrics(&metrics)
        .assert_clean()
        .await;
}
