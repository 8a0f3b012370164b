//! The operator process under signals, with leader election: SIGTERM ends it within seconds even
//! while resources wait on a connection at 1 request per minute, and the Lease is handed back; a
//! leader paused (SIGSTOP) past its Lease while another replica takes over writes nothing when it
//! wakes (SIGCONT): it leaves, and every resource keeps the one credential the new leader gave it.

use std::collections::BTreeMap;
use std::time::Duration;

use dfns_emulator::Faults;
use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_operator::controller::credential::CredentialResource;
use dfns_test_support::credential_checks::{Recorded, assert_one_working_credential_each};
use dfns_test_support::operator::{Setup, WAIT};
use dfns_test_support::operator_process::OperatorCommand;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use tokio::time::Instant;

use crate::fairness::{apply_accounts, slow_down, wait_for_a_create_under_way};

const LEASE: &str = "dfns-operator";

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .expect("read the Lease")?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Waits until someone other than `previous` holds the Lease; returns the holder.
async fn wait_new_holder(leases: &Api<Lease>, previous: Option<&str>) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(current) = holder(leases).await
            && Some(current.as_str()) != previous
        {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "nobody but {previous:?} took the Lease within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_file() -> tempfile::TempPath {
    tempfile::NamedTempFile::new().unwrap().into_temp_path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_resources_wait_on_a_slow_connection_exits_within_5s_and_hands_back_the_lease()
 {
    let setup = Setup::new("e2e-sigterm").await;
    let leases: Api<Lease> = Api::namespaced(setup.kube.clone(), setup.namespace());
    setup.admin_connection("slow", json!({})).await;
    let log_path = log_file();
    let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), &log_path)
        .with_args(&["--leader-election", "--leader-election-lease-name", LEASE])
        .with_args(&["--concurrency", "4"]);
    let mut operator = command.spawn(&setup, None);
    wait_new_holder(&leases, None).await;
    setup.wait_ready::<DfnsConnection>("slow").await;
    slow_down(&setup, "slow", 1).await;
    apply_accounts(&setup, "slow", 20).await;
    // From here on the creates need the connection's next tokens, a minute apart.
    wait_for_a_create_under_way(&setup).await;
    operator.assert_running();

    let sent = Instant::now();
    operator.signal("TERM").await;
    let exit = operator.wait_exit(Duration::from_secs(5)).await;
    eprintln!("exited {:?} after SIGTERM", sent.elapsed());
    assert!(
        exit.success(),
        "exit status {exit}; log: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    assert_eq!(
        holder(&leases).await,
        None,
        "the Lease was handed back, so a standby takes over at once"
    );
    setup
        .leak_check()
        .with_log_file(&log_path)
        .assert_clean()
        .await;
}

/// The recorded service account id of every service account, by name.
async fn recorded_ids(setup: &Setup) -> BTreeMap<String, Option<String>> {
    setup
        .api::<DfnsServiceAccount>()
        .list(&ListParams::default())
        .await
        .expect("list service accounts")
        .items
        .iter()
        .map(|a| {
            let id = a
                .credential_status()
                .and_then(|s| s.recorded_id())
                .map(str::to_owned);
            (a.name_any(), id)
        })
        .collect()
}

async fn ready_count(setup: &Setup) -> usize {
    let accounts = setup
        .api::<DfnsServiceAccount>()
        .list(&ListParams::default())
        .await
        .expect("list service accounts");
    accounts
        .items
        .iter()
        .filter(|a| {
            a.credential_status().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_overwrites_nothing_when_it_wakes() {
    const ACCOUNTS: usize = 20;
    let setup = Setup::new("e2e-fencing").await;
    // Slow answers keep several creates in flight when the leader is paused.
    setup.emulator.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let leases: Api<Lease> = Api::namespaced(setup.kube.clone(), setup.namespace());
    setup.admin_connection("main", json!({})).await;
    let log_path = log_file();
    let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), &log_path)
        .with_args(&["--leader-election", "--leader-election-lease-name", LEASE])
        .with_args(&["--leader-election-lease-duration", "4s"])
        .with_args(&["--leader-election-renew-deadline", "3s"])
        .with_args(&["--leader-election-retry-period", "1s"]);
    let mut first = command.spawn(&setup, None);
    let first_identity = wait_new_holder(&leases, None).await;
    let mut second = command.spawn(&setup, None);
    setup.wait_ready::<DfnsConnection>("main").await;

    for i in 0..ACCOUNTS {
        setup
            .apply::<DfnsServiceAccount>(
                &format!("sa-{i}"),
                json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } }),
            )
            .await;
    }
    let deadline = Instant::now() + WAIT;
    while ready_count(&setup).await == 0 {
        assert!(Instant::now() < deadline, "no service account became Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.signal("STOP").await;
    let paused_with = ready_count(&setup).await;

    // The second replica takes over once the Lease has run out and finishes every resource.
    let second_identity = wait_new_holder(&leases, Some(&first_identity)).await;
    for i in 0..ACCOUNTS {
        setup
            .wait_ready::<DfnsServiceAccount>(&format!("sa-{i}"))
            .await;
    }
    let recorded_by_second = recorded_ids(&setup).await;
    eprintln!(
        "paused the leader with {paused_with}/{ACCOUNTS} Ready; {second_identity} finished the rest"
    );

    // The paused leader wakes up past its Lease: it leaves (exit code 1, so that a restart
    // rejoins as a standby) without overwriting what the new leader recorded.
    first.signal("CONT").await;
    let exit = first.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(
        exit.code(),
        Some(1),
        "the woken leader leaves for lost leadership"
    );
    assert_eq!(
        recorded_ids(&setup).await,
        recorded_by_second,
        "the woken leader changed recorded ids"
    );
    assert_eq!(holder(&leases).await, Some(second_identity));

    let mut resources = Vec::new();
    for i in 0..ACCOUNTS {
        let account = setup
            .wait_ready::<DfnsServiceAccount>(&format!("sa-{i}"))
            .await;
        resources.push(Recorded::of(&account));
    }
    assert_one_working_credential_each(&setup, &resources).await;

    second.signal("TERM").await;
    assert!(second.wait_exit(Duration::from_secs(5)).await.success());
    setup
        .leak_check()
        .with_log_file(&log_path)
        .assert_clean()
        .await;
}
