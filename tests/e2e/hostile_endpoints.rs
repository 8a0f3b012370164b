//! No endpoint can hurt the operator: a connection whose `apiUrl` streams a gigabyte, announces a
//! huge body, redirects elsewhere, or names a host outside `--allowed-api-hosts` is reported on
//! the connection, costs the operator no memory to speak of, sends nothing anywhere else, and
//! leaves every other connection working; an endpoint quoting the caller's token back inside its
//! error message gets it redacted before it reaches a condition, an Event or a log line.
use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_operator::controller::ControllerConfig;
use dfns_operator::controller::allowed_hosts::AllowedHosts;
use dfns_test_support::hostile_endpoint::{Behaviour, HostileEndpoint};
use dfns_test_support::operator::{Setup, condition, ready_condition, secret_text};
use dfns_test_support::operator_process::OperatorCommand;
use serde_json::json;

/// The operator's peak RSS while a connection streams a gigabyte at it.
const PEAK_RSS_LIMIT_KIB: u64 = 100 * 1024;
const WAIT: Duration = Duration::from_secs(90);

/// A `DfnsConnection` logging in as the emulator's admin, but at `api_url`.
async fn connection_at(setup: &Setup, name: &str, api_url: &str) {
    let boot = setup.emulator.bootstrap();
    let secret = format!("{name}-login");
    setup.create_admin_login_secret(&secret).await;
    setup
        .apply::<DfnsConnection>(
            name,
            json!({
                "apiUrl": api_url,
                "allowInsecureHttp": true,
                "orgId": boot.org_id,
                "auth": { "userLogin": { "username": boot.admin.username, "secretRef": { "name": secret } } },
            }),
        )
        .await;
}

fn service_account_on(connection: &str) -> serde_json::Value {
    json!({ "connectionRef": { "kind": "DfnsConnection", "name": connection } })
}

/// Waits until the connection reports the endpoint's misbehaviour; returns the message.
async fn refusal(setup: &Setup, connection: &str) -> String {
    let obj = setup
        .wait_condition::<DfnsConnection>(
            connection,
            "Reconciling",
            "True",
            Some("DfnsUnavailable"),
        )
        .await;
    connection_ready(&obj).message
}

fn connection_ready(
    obj: &DfnsConnection,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    condition(&obj.status.as_ref().expect("a status").conditions, "Ready")
}

/// `Setup`'s allowed hosts plus any port of 127.0.0.1, where the hostile endpoints listen.
fn allowing_local_endpoints(setup: &Setup) -> String {
    format!("{},127.0.0.1", setup.allowed_api_hosts())
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_gigabyte_body_is_cut_at_the_cap_and_the_operator_stays_small_while_other_connections_work()
 {
    let setup = Setup::new("e2e-hostile-body").await;
    let endless = HostileEndpoint::start(Behaviour::EndlessBody {
        bytes: 1024 * 1024 * 1024,
    })
    .await;
    let announced = HostileEndpoint::start(Behaviour::AnnouncedLength {
        length: 8 * 1024 * 1024 * 1024,
    })
    .await;
    setup.admin_connection("main", json!({})).await;
    connection_at(&setup, "endless", &endless.url()).await;
    connection_at(&setup, "announced", &announced.url()).await;
    setup
        .apply::<DfnsServiceAccount>("on-main", service_account_on("main"))
        .await;
    setup
        .apply::<DfnsServiceAccount>("on-endless", service_account_on("endless"))
        .await;

    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let allowed = allowing_local_endpoints(&setup);
    let mut operator = OperatorCommand::new(env!("CARGO_BIN_EXE_dfns-operator"), log.to_path_buf())
        .with_args(&["--allowed-api-hosts", &allowed])
        .spawn(&setup, None);

    let message = refusal(&setup, "endless").await;
    assert!(
        message.contains("answered with a body over 4 MiB; refused"),
        "{message}"
    );
    let message = refusal(&setup, "announced").await;
    assert!(
        message.contains("body over 4 MiB (Content-Length 8589934592); refused"),
        "{message}"
    );
    setup.wait_ready::<DfnsServiceAccount>("on-main").await;
    // A second attempt after the backoff: refusals do not add up in memory.
    wait_until("a second request to the endless endpoint", || {
        endless.accepted() >= 2
    })
    .await;
    let victim = setup
        .api::<DfnsServiceAccount>()
        .get("on-endless")
        .await
        .unwrap();
    assert_eq!(ready_condition(victim.status.as_ref()).status, "False");
    assert!(
        announced.bytes_sent() < 1024,
        "the announced body was never read"
    );

    operator.assert_running();
    let peak = operator.peak_rss_kib();
    eprintln!(
        "operator peak RSS {peak} KiB; the endless endpoint was asked {} times and wrote {} bytes",
        endless.accepted(),
        endless.bytes_sent()
    );
    assert!(peak < PEAK_RSS_LIMIT_KIB, "peak RSS {peak} KiB");
    operator.kill().await;
    setup
        .leak_check()
        .with_log_file(log.to_path_buf())
        .assert_clean()
        .await;
}

#[tokio::test]
async fn a_redirect_is_refused_and_its_target_receives_nothing() {
    let mut setup = Setup::new("e2e-hostile-redirect").await;
    let target = HostileEndpoint::start(Behaviour::CountOnly).await;
    let redirector = HostileEndpoint::start(Behaviour::Redirect {
        location: format!("{}/auth/login/init?leak=query-value", target.url()),
    })
    .await;
    connection_at(&setup, "redirecting", &redirector.url()).await;
    setup.start_operator_with(ControllerConfig {
        allowed_api_hosts: AllowedHosts::parse(&allowing_local_endpoints(&setup)).unwrap(),
        ..setup.config()
    });

    let message = refusal(&setup, "redirecting").await;
    assert!(
        message.contains("redirect (HTTP 307), which is never followed"),
        "{message}"
    );
    assert!(!message.contains("query-value"), "{message}");
    assert!(redirector.accepted() >= 1);
    assert_eq!(target.accepted(), 0, "the redirect target was contacted");
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_host_outside_allowed_api_hosts_stalls_its_connection_and_receives_nothing() {
    let mut setup = Setup::new("e2e-hostile-host").await;
    // The emulator's host on another port: only the emulator's own port is allowed.
    let elsewhere = HostileEndpoint::start(Behaviour::CountOnly).await;
    setup.admin_connection("main", json!({})).await;
    connection_at(&setup, "elsewhere", &elsewhere.url()).await;
    setup
        .apply::<DfnsServiceAccount>("on-elsewhere", service_account_on("elsewhere"))
        .await;
    setup
        .apply::<DfnsServiceAccount>("on-main", service_account_on("main"))
        .await;
    setup.start_operator();

    let stalled = setup
        .wait_condition::<DfnsConnection>("elsewhere", "Stalled", "True", Some("ApiHostNotAllowed"))
        .await;
    let message = connection_ready(&stalled).message;
    let host = elsewhere.address.to_string();
    assert!(
        message.contains(&format!("apiUrl host {host} is not allowed"))
            && message.contains("--allowed-api-hosts"),
        "{message}"
    );
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(
            "on-elsewhere",
            "Stalled",
            "True",
            Some("ApiHostNotAllowed"),
        )
        .await;
    assert!(
        ready_condition(sa.status.as_ref())
            .message
            .contains("is not allowed"),
        "{:?}",
        sa.status
    );

    // Moving a working connection to a host that is not allowed: its credential stops being
    // Ready and its Secret keeps the URL it was minted with.
    setup.wait_ready::<DfnsServiceAccount>("on-main").await;
    let api_url_before = secret_text(
        &setup.secrets().get("on-main").await.unwrap(),
        "DFNS_API_URL",
    );
    assert_eq!(api_url_before.as_deref(), Some(setup.emulator.api_url()));
    connection_at_url_only(&setup, "main", &elsewhere.url()).await;
    setup
        .wait_condition::<DfnsConnection>("main", "Stalled", "True", Some("ApiHostNotAllowed"))
        .await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(
            "on-main",
            "Stalled",
            "True",
            Some("ApiHostNotAllowed"),
        )
        .await;
    assert_eq!(ready_condition(sa.status.as_ref()).status, "False");
    let api_url_after = secret_text(
        &setup.secrets().get("on-main").await.unwrap(),
        "DFNS_API_URL",
    );
    assert_eq!(api_url_after, api_url_before);

    assert_eq!(
        elsewhere.accepted(),
        0,
        "the host that is not allowed was contacted"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_token_echoed_back_glued_to_other_text_never_reaches_status_events_or_logs() {
    let mut setup = Setup::new("e2e-hostile-echo").await;
    let echo = HostileEndpoint::start(Behaviour::EchoBearer).await;
    // Opaque, not JWT-shaped: only the registry of secrets can recognise it.
    let token = format!("opaque{}", uuid::Uuid::new_v4().simple());
    let admin = &setup.emulator.bootstrap().admin;
    setup
        .create_secret(
            "echo-token",
            &[
                ("DFNS_AUTH_TOKEN", &token),
                ("DFNS_CRED_ID", &admin.cred_id),
                ("DFNS_PRIVATE_KEY", &admin.private_key),
            ],
        )
        .await;
    setup
        .apply::<DfnsConnection>(
            "echoing",
            json!({
                "apiUrl": echo.url(),
                "allowInsecureHttp": true,
                "auth": { "token": { "secretRef": { "name": "echo-token" } } },
            }),
        )
        .await;
    setup.start_operator_with(ControllerConfig {
        allowed_api_hosts: AllowedHosts::parse(&allowing_local_endpoints(&setup)).unwrap(),
        ..setup.config()
    });

    let stalled = setup
        .wait_condition::<DfnsConnection>("echoing", "Stalled", "True", Some("Unauthorized"))
        .await;
    let message = connection_ready(&stalled).message;
    assert!(
        message.contains("rejected credential token=[redacted];retry"),
        "{message}"
    );
    setup.stop_operator().await;
    setup
        .leak_check()
        .with_secret("the connection's static token", &token)
        .assert_clean()
        .await;
}

/// Points an existing connection at `api_url`, keeping the rest of its spec.
async fn connection_at_url_only(setup: &Setup, name: &str, api_url: &str) {
    setup
        .api::<DfnsConnection>()
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": { "apiUrl": api_url } })),
        )
        .await
        .expect("patch the connection's apiUrl");
}
