//! The leader pod deleted while credentials are being created: the other replica takes over and
//! every resource ends with exactly one active credential in Dfns.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dfns_emulator::EmulatorConfig;
use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_test_support::NodeCluster;
use dfns_test_support::credential_checks::{Recorded, assert_one_working_credential_each};
use dfns_test_support::operator::Setup;
use serde_json::json;

use crate::release::{Release, eventually};

const RESOURCES: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn leader_pod_deleted_while_20_service_accounts_are_created_the_other_replica_takes_over_and_each_gets_one_active_credential()
 {
    let Some(node) = NodeCluster::shared() else {
        return;
    };
    let setup = on_node_emulator(node, "node-failover").await;
    let (release, _) = Release::install(node, setup.namespace(), &[]);
    setup.admin_connection("main", json!({})).await;
    setup.wait_ready::<DfnsConnection>("main").await;
    let leader = eventually(Duration::from_secs(60), "a replica holds the Lease", || {
        release.leader()
    })
    .await;
    let standby = release
        .ready_pods()
        .into_iter()
        .find(|p| *p != leader)
        .expect("a second Ready replica");
    let logs_dir = tempfile::tempdir().expect("temp dir");
    release.save_pod_log(&leader, &logs_dir.path().join("leader.log"));

    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    let names: Vec<String> = (0..RESOURCES).map(|i| format!("sa-{i}")).collect();
    for name in &names[..RESOURCES / 2] {
        setup
            .apply::<DfnsServiceAccount>(name, json!({ "connectionRef": conn }))
            .await;
    }
    node.kubectl(
        &[
            "delete",
            "pod",
            &leader,
            "-n",
            &release.namespace,
            "--wait=false",
        ],
        "",
    );
    let deleted_at = Instant::now();
    for name in &names[RESOURCES / 2..] {
        setup
            .apply::<DfnsServiceAccount>(name, json!({ "connectionRef": conn }))
            .await;
    }
    let new_leader = eventually(
        Duration::from_secs(60),
        "another replica takes the Lease",
        || release.leader().filter(|holder| *holder != leader),
    )
    .await;
    eprintln!(
        "timing: failover (leader pod deleted to new Lease holder) {:.1?}",
        deleted_at.elapsed()
    );
    // The deleted leader hands the Lease back on SIGTERM; the standby or the Deployment's
    // replacement pod, whichever asks first, takes it.
    let ready = eventually(Duration::from_secs(60), "the new leader is Ready", || {
        Some(release.ready_pods()).filter(|ready| ready.contains(&new_leader))
    })
    .await;
    eprintln!("failover: {new_leader} leads (standby was {standby}; Ready: {ready:?})");

    let mut recorded = Vec::new();
    for name in &names {
        recorded.push(Recorded::of(
            &setup.wait_ready::<DfnsServiceAccount>(name).await,
        ));
    }
    assert_one_working_credential_each(&setup, &recorded).await;
    release.save_logs(&logs_dir.path().join("survivors.log"));
    setup
        .leak_check()
        .with_log_file(logs_dir.path().join("leader.log"))
        .with_log_file(logs_dir.path().join("survivors.log"))
        .assert_clean()
        .await;
}

/// A setup whose emulator listens on the node IP, where the node's pods reach it.
pub async fn on_node_emulator(node: &NodeCluster, prefix: &str) -> Setup {
    let config = EmulatorConfig {
        listen: SocketAddr::new(node.node_ip(), 0),
        ..EmulatorConfig::default()
    };
    Setup::with_emulator(prefix, config).await
}
