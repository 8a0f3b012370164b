//! SIGTERM ends the operator process within seconds even while resources wait on a connection at
//! 1 request per minute and a connection check waits on an endpoint that never answers, and the
//! Lease is handed back so a standby takes over at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dfns_operator::api::DfnsConnection;
use dfns_test_support::operator::{Setup, WAIT};
use dfns_test_support::operator_process::OperatorCommand;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use tokio::time::Instant;

use crate::fairness::{apply_accounts, slow_down, wait_for_a_create_under_way};

pub const LEASE: &str = "dfns-operator";

pub async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .expect("read the Lease")?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Waits until someone other than `previous` holds the Lease; returns the holder.
pub async fn wait_new_holder(leases: &Api<Lease>, previous: Option<&str>) -> String {
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

/// A server that accepts connections and never answers; counts what it accepted.
async fn silent_server() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                open.push(stream);
            }
        }
    });
    (port, accepted)
}

pub fn log_file() -> tempfile::TempPath {
    tempfile::NamedTempFile::new().unwrap().into_temp_path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_resources_wait_on_slow_and_silent_connections_exits_within_5s_and_hands_back_the_lease()
 {
    let setup = Setup::new("e2e-sigterm").await;
    let leases: Api<Lease> = Api::namespaced(setup.kube.clone(), setup.namespace());
    setup.admin_connection("slow", json!({})).await;
    let (silent_port, accepted) = silent_server().await;
    setup
        .admin_connection(
            "silent",
            json!({ "apiUrl": format!("http://127.0.0.1:{silent_port}") }),
        )
        .await;
    let log_path = log_file();
    let allowed = format!("{},127.0.0.1:{silent_port}", setup.allowed_api_hosts());
    let command = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), &log_path)
        .with_args(&["--leader-election", "--leader-election-lease-name", LEASE])
        .with_args(&["--concurrency", "4"])
        .with_args(&["--allowed-api-hosts", &allowed]);
    let mut operator = command.spawn(&setup, None);
    wait_new_holder(&leases, None).await;
    setup.wait_ready::<DfnsConnection>("slow").await;
    slow_down(&setup, "slow", 1).await;
    apply_accounts(&setup, "slow", 20).await;
    // From here on the creates need the connection's next tokens, a minute apart.
    wait_for_a_create_under_way(&setup).await;
    // The silent connection's check is on the wire (it would wait for the request timeout).
    let deadline = Instant::now() + WAIT;
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the silent connection was never called"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
