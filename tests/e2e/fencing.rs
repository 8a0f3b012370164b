//! A leader paused past its Lease (SIGSTOP, a long GC pause) must not act when it wakes. Its
//! status writes carry the `resourceVersion` they were decided on, so one decided before another
//! writer's fails with 409 instead of overwriting; past its renew deadline (on its monotonic
//! clock) its Kubernetes client refuses writes and its Dfns clients send nothing; and end to end,
//! a leader stopped mid-creates while another replica takes over sends nothing to Dfns when it
//! wakes, changes no recorded id, and leaves: every resource keeps exactly one active credential.

use std::collections::BTreeMap;
use std::time::Duration;

use dfns_client::Gate;
use dfns_operator::api::{CredentialStatus, DfnsConnection, DfnsServiceAccount};
use dfns_operator::controller::credential::CredentialResource;
use dfns_operator::controller::fence::{fenced_client, refused};
use dfns_operator::controller::status::StatusWriter;
use dfns_test_support::credential_checks::{Recorded, assert_one_working_credential_each};
use dfns_test_support::operator::{Setup, WAIT};
use dfns_test_support::operator_process::OperatorCommand;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio::time::Instant;

use crate::shutdown::{LEASE, holder, log_file, wait_new_holder};

fn recording(id: &str) -> CredentialStatus {
    CredentialStatus {
        service_account_id: Some(id.into()),
        ..CredentialStatus::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_write_decided_on_an_older_read_fails_instead_of_overwriting() {
    let setup = Setup::new("e2e-fence-status").await;
    let api = setup.api::<DfnsServiceAccount>();
    setup
        .apply::<DfnsServiceAccount>(
            "sa",
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } }),
        )
        .await;
    // Both leaders decided on this read.
    let read = api.get("sa").await.unwrap();
    let mut new_leader = StatusWriter::new(api.clone(), &read, CredentialStatus::default());
    new_leader.save(recording("us-new-leader")).await.unwrap();

    let mut old_leader = StatusWriter::new(api.clone(), &read, CredentialStatus::default());
    let error = old_leader
        .save(recording("us-old-leader"))
        .await
        .expect_err("a write decided on an older read must fail");
    assert!(
        matches!(&error, kube::Error::Api(status) if status.code == 409),
        "{error}"
    );
    let status = api.get("sa").await.unwrap().status.unwrap();
    assert_eq!(status.service_account_id.as_deref(), Some("us-new-leader"));
    // The writer that saw its own write keeps writing.
    new_leader.save(recording("us-new-leader-2")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_lease_deadline_the_controllers_client_refuses_writes_and_still_reads() {
    let setup = Setup::new("e2e-fence-client").await;
    let gate = Gate::new();
    gate.open_until(tokio::time::Instant::now() + Duration::from_secs(3600));
    let fenced = fenced_client(setup.kube.clone(), gate.clone());
    let config_maps: Api<ConfigMap> = Api::namespaced(fenced, setup.namespace());
    let map = |name: &str| ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    config_maps
        .create(&PostParams::default(), &map("before"))
        .await
        .expect("writes pass while the lease holds");

    gate.open_until(tokio::time::Instant::now());
    let error = config_maps
        .create(&PostParams::default(), &map("after"))
        .await
        .expect_err("a write past the deadline is refused");
    assert!(refused(&error), "{error}");
    config_maps.get("before").await.expect("reads still pass");
    let direct: Api<ConfigMap> = Api::namespaced(setup.kube.clone(), setup.namespace());
    assert!(direct.get_opt("after").await.unwrap().is_none());
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
async fn a_leader_paused_past_its_lease_sends_and_overwrites_nothing_when_it_wakes() {
    const ACCOUNTS: usize = 20;
    let setup = Setup::new("e2e-fencing").await;
    let leases: Api<Lease> = Api::namespaced(setup.kube.clone(), setup.namespace());
    // A pace of 5 requests per second keeps the leader's creates waiting on the rate limit, so
    // when it wakes some of them have a request due at once.
    setup
        .admin_connection("main", json!({ "rateLimit": { "requestsPerMinute": 300 } }))
        .await;
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
    let requests_before = setup.emulator.request_counts().total;
    eprintln!(
        "paused the leader with {paused_with}/{ACCOUNTS} Ready; {second_identity} finished the rest"
    );

    // The paused leader wakes up past its Lease: it leaves (exit code 1, so that a restart
    // rejoins as a standby) without a request to Dfns and without overwriting what the new
    // leader recorded. (The new leader is idle: every resource is Ready and listed.)
    first.signal("CONT").await;
    let exit = first.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(
        exit.code(),
        Some(1),
        "the woken leader leaves for lost leadership"
    );
    assert_eq!(
        setup.emulator.request_counts().total,
        requests_before,
        "the woken leader sent requests to Dfns"
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
