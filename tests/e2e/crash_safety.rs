//! The crash-safe create (docs/architecture.md) under fire: the operator is killed with SIGKILL at random moments while it creates 50
//! credentials against a Dfns that also loses responses. Afterwards every resource must be Ready
//! with a working credential, Dfns must hold exactly one active credential per resource, and no
//! token or private key may appear in the operator's logs or Events.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use dfns_client::{AuthMode, ClientConfig, DfnsClient, KeySigner, SecretString};
use dfns_emulator::Faults;
use dfns_operator::api::{DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::operator::{Setup, secret_text};
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::ListParams;
use rand::RngExt;
use serde_json::json;
use tokio::process::{Child, Command};

const SERVICE_ACCOUNTS: usize = 25;
const PATS: usize = 25;
const KILLS: usize = 20;

fn spawn_operator(setup: &Setup, log: &std::fs::File) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dfns-operator"))
        .args(["run", "--log-format", "json", "--resync-interval", "30s"])
        .args([
            "--namespace",
            setup.namespace(),
            "--watch-namespace",
            setup.namespace(),
        ])
        .arg("--kubeconfig")
        .arg(setup.cp.kubeconfig_path())
        .env(
            "RUST_LOG",
            "debug,kube=info,hyper=info,reqwest=info,h2=info,rustls=info,tower=info",
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start dfns-operator")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_operator_during_creation_never_loses_a_token_nor_leaves_an_orphan_active() {
    let setup = Setup::new("e2e-crash").await;
    setup
        .admin_connection("main", json!({ "allowUnscopedTokens": true }))
        .await;
    let log_path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let log = std::fs::File::create(&log_path).unwrap();

    // Some responses are lost after Dfns applied the change, some fail before.
    setup.emulator.set_faults(Faults {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(30),
        lost_response_ratio: 0.15,
        error_ratio: 0.05,
        ..Faults::default()
    });
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    for i in 0..SERVICE_ACCOUNTS {
        setup
            .apply::<DfnsServiceAccount>(&format!("sa-{i}"), json!({ "connectionRef": conn }))
            .await;
    }
    for i in 0..PATS {
        setup
            .apply::<DfnsPersonalAccessToken>(&format!("pat-{i}"), json!({ "connectionRef": conn }))
            .await;
    }

    let mut operator = spawn_operator(&setup, &log);
    for _ in 0..KILLS {
        // Long enough for a restarted operator to get back to creating, short enough to catch it
        // in the middle.
        let pause = rand::rng().random_range(400..2500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        operator.kill().await.expect("SIGKILL the operator");
        operator = spawn_operator(&setup, &log);
    }

    // No more kills; Dfns keeps losing responses: everything must still converge.
    let mut ids = HashMap::new();
    for i in 0..SERVICE_ACCOUNTS {
        let sa = setup
            .wait_ready::<DfnsServiceAccount>(&format!("sa-{i}"))
            .await;
        ids.insert(
            sa.uid().unwrap(),
            sa.status.unwrap().service_account_id.unwrap(),
        );
    }
    for i in 0..PATS {
        let pat = setup
            .wait_ready::<DfnsPersonalAccessToken>(&format!("pat-{i}"))
            .await;
        ids.insert(pat.uid().unwrap(), pat.status.unwrap().token_id.unwrap());
    }
    operator.kill().await.unwrap();
    setup.emulator.set_faults(Faults::default());

    // Exactly one active credential per resource, and it is the recorded one.
    let state = setup.emulator.state();
    let mut active: HashMap<String, Vec<String>> = HashMap::new();
    for sa in state
        .service_accounts
        .iter()
        .filter(|s| s.is_active && !s.archived)
    {
        active
            .entry(sa.external_id.clone().unwrap_or_default())
            .or_default()
            .push(sa.service_account_id.clone());
    }
    for pat in state.pats.iter().filter(|p| p.is_active && !p.archived) {
        active
            .entry(pat.external_id.clone().unwrap_or_default())
            .or_default()
            .push(pat.token_id.clone());
    }
    for (uid, id) in &ids {
        assert_eq!(
            active.get(uid),
            Some(&vec![id.clone()]),
            "resource {uid}: active credentials in Dfns"
        );
    }
    assert_eq!(
        active.len(),
        ids.len(),
        "no active credential without a resource: {active:?}"
    );
    let counts = setup.emulator.request_counts();
    eprintln!(
        "Dfns requests: {} total, {} writes, {} lost responses, {} injected errors",
        counts.total, counts.writes, counts.lost_responses, counts.injected_errors
    );
    // With 15% of responses lost, some creates succeeded unseen: their orphans were retired.
    let retired = state.service_accounts.iter().filter(|s| s.archived).count()
        + state.pats.iter().filter(|p| p.archived).count();
    assert!(
        retired > 0,
        "the lost-response recovery path ran (archived orphans in Dfns)"
    );

    // Every Secret's credential works, and we collect the secrets to search the logs for.
    let mut secrets = Vec::new();
    for name in (0..SERVICE_ACCOUNTS)
        .map(|i| format!("sa-{i}"))
        .chain((0..PATS).map(|i| format!("pat-{i}")))
    {
        let secret = setup.secrets().get(&name).await.unwrap();
        let token = secret_text(&secret, "DFNS_AUTH_TOKEN").unwrap();
        let key = secret_text(&secret, "DFNS_PRIVATE_KEY").unwrap();
        let cred_id = secret_text(&secret, "DFNS_CRED_ID").unwrap();
        let signer = KeySigner::from_pem(cred_id, &key).unwrap();
        let mut config = ClientConfig::new(
            setup.emulator.api_url(),
            AuthMode::Token(SecretString::new(token.clone())),
            signer,
        );
        config.allow_insecure_http = true;
        let client = DfnsClient::new(config).unwrap();
        client
            .identity()
            .await
            .unwrap_or_else(|e| panic!("{name}: token unusable: {e}"));
        client
            .verify_signing()
            .await
            .unwrap_or_else(|e| panic!("{name}: key cannot sign: {e}"));
        secrets.push(token);
        secrets.push(
            key.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        );
    }

    // Nothing secret in the logs or Events: not these tokens and keys, nor any JWT or PEM at all
    // (tokens of retired orphans were never stored, so look for their shape too).
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("reconcile") || logs.contains("starting dfns-operator"),
        "logs were captured"
    );
    let events = kube::Api::<Event>::namespaced(setup.kube.clone(), setup.namespace())
        .list(&ListParams::default())
        .await
        .unwrap();
    let event_text: String = events
        .items
        .iter()
        .map(|e| {
            format!(
                "{} {}\n",
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            )
        })
        .collect();
    assert!(event_text.contains("Created"), "events were recorded");
    for (what, text) in [("logs", &logs), ("events", &event_text)] {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret appeared in the operator's {what}"
            );
        }
        assert!(
            !text.contains("eyJ"),
            "something JWT-shaped appeared in the operator's {what}"
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "a PEM private key appeared in the operator's {what}"
        );
    }
}
