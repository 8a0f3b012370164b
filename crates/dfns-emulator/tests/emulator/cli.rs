//! The `dfns-emulator` binary: flags, bootstrap file, port 0, TLS.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_dfns-emulator");

/// Kills the child when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Running {
    Running(
        Command::new(BIN)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dfns-emulator"),
    )
}

/// Waits for the bootstrap file (the emulator writes it atomically once listening).
async fn wait_for_bootstrap(path: &Path, child: &mut Running) -> Value {
    for _ in 0..600 {
        if let Ok(bytes) = std::fs::read(path) {
            return serde_json::from_slice(&bytes).expect("bootstrap file is complete JSON");
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("dfns-emulator exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("bootstrap file never appeared");
}

async fn admin_logs_in(http: &reqwest::Client, b: &Value) {
    let key = TestKey::from_p256_pkcs8_pem(b["admin"]["privateKey"].as_str().unwrap());
    let reply = login_reply(
        http,
        b["apiUrl"].as_str().unwrap(),
        b["orgId"].as_str().unwrap(),
        b["admin"]["username"].as_str().unwrap(),
        b["admin"]["credId"].as_str().unwrap(),
        &key,
        &Default::default(),
    )
    .await;
    assert!(reply.ok()["token"].is_string());
}

#[tokio::test]
async fn port_zero_bootstrap_file_carries_the_real_url_and_a_working_admin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    let mut child = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--bootstrap-file",
        path.to_str().unwrap(),
    ]);
    let b = wait_for_bootstrap(&path, &mut child).await;
    let url = b["apiUrl"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{url}"
    );
    assert!(b["orgId"].as_str().unwrap().starts_with("or-"));
    assert!(b["admin"]["userId"].as_str().unwrap().starts_with("us-"));
    assert!(
        b["admin"]["privateKey"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(b.get("caCert").is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    admin_logs_in(&http(), &b).await;
}

#[tokio::test]
async fn tls_mode_serves_https_trusted_by_the_ca_in_the_bootstrap_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    let mut child = spawn(&["--bootstrap-file", path.to_str().unwrap(), "--tls"]);
    let b = wait_for_bootstrap(&path, &mut child).await;
    assert!(
        b["apiUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    let ca = b["caCert"].as_str().expect("caCert");
    install_crypto_provider();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    admin_logs_in(&http, &b).await;
    // Without the CA the certificate is not trusted.
    let untrusting = reqwest::Client::builder()
        .tls_certs_only(Vec::<reqwest::Certificate>::new())
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{}/auth/pats", b["apiUrl"].as_str().unwrap()))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn fault_flags_are_applied_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    let mut child = spawn(&[
        "--bootstrap-file",
        path.to_str().unwrap(),
        "--latency-ms",
        "1",
        "--jitter-ms",
        "1",
        "--rate-limit-per-minute",
        "77",
        "--error-ratio",
        "0",
        "--lost-response-ratio",
        "0",
    ]);
    let b = wait_for_bootstrap(&path, &mut child).await;
    let faults: Value = http()
        .get(format!(
            "{}/_emulator/faults",
            b["apiUrl"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["rateLimitPerMinute"], 77);
    assert_eq!(faults["latencyMs"], 1);
    assert_eq!(faults["jitterMs"], 1);
}

/// `GET /_emulator/profile` of an emulator started with `flags`.
async fn profile_with(flags: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    let mut args = vec!["--bootstrap-file", path.to_str().unwrap()];
    args.extend_from_slice(flags);
    let mut child = spawn(&args);
    let b = wait_for_bootstrap(&path, &mut child).await;
    http()
        .get(format!(
            "{}/_emulator/profile",
            b["apiUrl"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_binary_is_strict_by_default_and_profile_flags_override_single_switches() {
    let strict = profile_with(&[]).await;
    assert_eq!(
        strict,
        serde_json::to_value(dfns_emulator::Profile::strict()).unwrap()
    );
    let custom = profile_with(&[
        "--profile",
        "lenient",
        "--identity-key-rotation",
        "refused",
        "--public-key-form",
        "empty",
        "--default-days-valid",
        "30",
        "--external-id-in-responses",
        "false",
        "--require-approval",
        "assignment,pat-create",
    ])
    .await;
    assert_eq!(custom["identityKeyRotation"], "refused");
    assert_eq!(custom["publicKeyForm"], "empty");
    assert_eq!(custom["defaultDaysValid"], 30);
    assert_eq!(custom["externalIdInResponses"], false);
    assert_eq!(
        custom["requireApproval"],
        serde_json::json!(["assignment", "pat-create"])
    );
    // Not overridden: the lenient base.
    assert_eq!(custom["serviceAccountsListCredentials"], true);
    assert_eq!(custom["emptyLinkedAppId"], true);
}

#[tokio::test]
async fn seconds_per_valid_day_flag_shortens_a_day_of_days_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    let mut child = spawn(&[
        "--bootstrap-file",
        path.to_str().unwrap(),
        "--seconds-per-valid-day",
        "7",
    ]);
    let b = wait_for_bootstrap(&path, &mut child).await;
    let key = TestKey::from_p256_pkcs8_pem(b["admin"]["privateKey"].as_str().unwrap());
    let http = http();
    let (base, cred_id) = (
        b["apiUrl"].as_str().unwrap(),
        b["admin"]["credId"].as_str().unwrap(),
    );
    let reply = login_reply(
        &http,
        base,
        b["orgId"].as_str().unwrap(),
        b["admin"]["username"].as_str().unwrap(),
        cred_id,
        &key,
        &Default::default(),
    )
    .await;
    let admin = Client::anonymous(http, base, cred_id, &key).with(
        reply.ok()["token"].as_str().unwrap(),
        cred_id,
        &key,
    );
    let (sa, _) = create_service_account(
        &admin,
        "short",
        &TestKey::p256(),
        serde_json::json!({ "daysValid": 2 }),
    )
    .await;
    let claims = jwt_claims(sa["accessTokens"][0]["accessToken"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        14
    );
}

#[test]
fn unknown_approval_operation_or_zero_default_validity_fails_at_start() {
    for flags in [
        ["--require-approval", "wallet-create"],
        ["--default-days-valid", "0"],
        ["--seconds-per-valid-day", "0"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let out = Command::new(BIN)
            .args(["--bootstrap-file", path.to_str().unwrap()])
            .args(flags)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?} was accepted");
        assert!(!path.exists());
    }
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--bootstrap-file",
        "--tls",
        "--latency-ms",
        "--jitter-ms",
        "--rate-limit-per-minute",
        "--error-ratio",
        "--lost-response-ratio",
        "--admin-username",
        "--tls-host",
        "--retry-after",
        "--profile",
        "--identity-key-rotation",
        "--service-accounts-list-credentials",
        "--external-id-in-responses",
        "--empty-linked-app-id",
        "--default-days-valid",
        "--public-key-form",
        "--require-approval",
        "--seconds-per-valid-day",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn invalid_fault_ratio_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    let out = Command::new(BIN)
        .args([
            "--bootstrap-file",
            path.to_str().unwrap(),
            "--error-ratio",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!path.exists());
}

#[tokio::test]
async fn stale_bootstrap_file_is_replaced_and_removed_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, r#"{"apiUrl":"http://127.0.0.1:1"}"#).unwrap();
    let mut child = spawn(&["--bootstrap-file", path.to_str().unwrap()]);
    // Wait for this run's file (the stale one is removed before listening).
    let mut b = Value::Null;
    for _ in 0..600 {
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            && v["apiUrl"] != "http://127.0.0.1:1"
        {
            b = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        b["orgId"].is_string(),
        "this run's bootstrap file never appeared"
    );
    // SIGTERM: graceful shutdown removes the file.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!path.exists());
}
