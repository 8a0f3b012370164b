//! `dfns-operator verify`, run as the built binary against the in-process emulator.

use std::process::Output;

use dfns_client::{IdentityKind, generate_p256};
use dfns_emulator::{EmulatorConfig, RunningEmulator};
use dfns_test_support::dfns::*;

/// Runs `dfns-operator verify` with exactly `env` (nothing inherited) and `args`.
async fn verify(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dfns-operator"));
    command.env_clear().arg("verify").args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().await.expect("run dfns-operator")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_no_secrets(output: &Output, secrets: &[&str]) {
    let (stdout, stderr) = text(output);
    for secret in secrets {
        for line in secret
            .lines()
            .filter(|line| line.len() >= 16 && !line.starts_with("-----"))
        {
            assert!(
                !stdout.contains(line) && !stderr.contains(line),
                "secret printed:\n{stdout}\n{stderr}"
            );
        }
        assert!(!stdout.contains(secret.trim()) && !stderr.contains(secret.trim()));
    }
}

fn login_env(emulator: &RunningEmulator) -> Vec<(&'static str, String)> {
    let bootstrap = emulator.bootstrap();
    vec![
        ("DFNS_API_URL", bootstrap.api_url.clone()),
        ("DFNS_ORG_ID", bootstrap.org_id.clone()),
        ("DFNS_USERNAME", bootstrap.admin.username.clone()),
        ("DFNS_CRED_ID", bootstrap.admin.cred_id.clone()),
        ("DFNS_PRIVATE_KEY", bootstrap.admin.private_key.clone()),
    ]
}

fn borrow<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

#[tokio::test]
async fn verify_succeeds_with_the_bootstrap_admin_in_login_mode() {
    let emulator = start_emulator().await;
    let env = login_env(&emulator);
    let output = verify(&borrow(&env), &["--allow-insecure-http"]).await;
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("signing ok"), "{stdout}");
    assert!(
        stdout.contains(&emulator.bootstrap().admin.user_id),
        "identity printed: {stdout}"
    );
    assert!(stdout.contains("expires at"), "expiry printed: {stdout}");
    assert_no_secrets(&output, &[&emulator.bootstrap().admin.private_key]);
    assert_eq!(
        requests_to(&emulator, "POST /auth/action"),
        1,
        "one user action completed"
    );
    assert_eq!(emulator.request_counts().writes, 0, "nothing executed");
    emulator.shutdown().await;
}

#[tokio::test]
async fn verify_succeeds_with_a_minted_token_over_tls_with_a_private_ca() {
    let emulator = start_emulator_with(EmulatorConfig {
        tls: true,
        ..EmulatorConfig::default()
    })
    .await;
    let admin = admin_client(&emulator);
    let minted = mint(&admin, IdentityKind::ServiceAccount, "verify-sa").await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        ca.path(),
        emulator
            .bootstrap()
            .ca_cert
            .as_ref()
            .expect("TLS emulator has a CA"),
    )
    .unwrap();
    let env = [
        ("DFNS_API_URL", emulator.api_url()),
        ("DFNS_AUTH_TOKEN", minted.token.expose()),
        ("DFNS_CRED_ID", minted.cred_id.as_str()),
        ("DFNS_PRIVATE_KEY", minted.private_key_pem.expose()),
    ];
    let output = verify(&env, &["--ca-cert", ca.path().to_str().unwrap()]).await;
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("signing ok") && stdout.contains(&minted.id),
        "{stdout}"
    );
    assert_no_secrets(
        &output,
        &[minted.token.expose(), minted.private_key_pem.expose()],
    );

    // Without the CA the TLS failure is named, with the fix.
    let output = verify(&env, &[]).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("unreachable") && stderr.contains("--ca-cert"),
        "{stderr}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn verify_names_a_wrong_key() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let minted = mint(
        &admin,
        IdentityKind::PersonalAccessToken,
        "verify-wrong-key",
    )
    .await;
    let other = generate_p256().unwrap();
    let env = [
        ("DFNS_API_URL", emulator.api_url()),
        ("DFNS_AUTH_TOKEN", minted.token.expose()),
        ("DFNS_CRED_ID", minted.cred_id.as_str()),
        ("DFNS_PRIVATE_KEY", other.private_key_pem.expose()),
    ];
    let output = verify(&env, &["--allow-insecure-http"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stderr.contains("wrong key"), "{stderr}");
    assert!(!stdout.contains("signing ok"));
    assert_no_secrets(
        &output,
        &[minted.token.expose(), other.private_key_pem.expose()],
    );

    // In login mode the wrong key fails at login, and the message says where to look.
    let mut env = login_env(&emulator);
    env.retain(|(name, _)| *name != "DFNS_PRIVATE_KEY");
    env.push((
        "DFNS_PRIVATE_KEY",
        other.private_key_pem.expose().to_owned(),
    ));
    let output = verify(&borrow(&env), &["--allow-insecure-http"]).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("login rejected") && stderr.contains("DFNS_PRIVATE_KEY"),
        "{stderr}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn verify_names_a_bad_token_and_hints_at_the_region() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let minted = mint(&admin, IdentityKind::ServiceAccount, "verify-bad-token").await;
    // A well-formed JWT with a broken signature.
    let mut forged = minted.token.expose().to_owned();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let env = [
        ("DFNS_API_URL", emulator.api_url()),
        ("DFNS_AUTH_TOKEN", forged.as_str()),
        ("DFNS_CRED_ID", minted.cred_id.as_str()),
        ("DFNS_PRIVATE_KEY", minted.private_key_pem.expose()),
    ];
    let output = verify(&env, &["--allow-insecure-http"]).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("bad token") && stderr.contains("api.uae.dfns.io"),
        "{stderr}"
    );
    assert_no_secrets(&output, &[&forged, minted.private_key_pem.expose()]);

    let env = [env[0], ("DFNS_AUTH_TOKEN", "not-a-jwt"), env[2], env[3]];
    let output = verify(&env, &["--allow-insecure-http"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).1.contains("bad token"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn verify_names_a_wrong_credential_id() {
    let emulator = start_emulator().await;
    let mut env = login_env(&emulator);
    env.retain(|(name, _)| *name != "DFNS_CRED_ID");
    env.push(("DFNS_CRED_ID", "Y2ktbm90LXRoaXMtb25l".to_owned()));
    let output = verify(&borrow(&env), &["--allow-insecure-http"]).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("wrong credential id") && stderr.contains("Y2ktbm90LXRoaXMtb25l"),
        "{stderr}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn verify_names_an_unreachable_api_and_missing_inputs() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let key = generate_p256().unwrap();
    let env = [
        ("DFNS_API_URL", url.as_str()),
        (
            "DFNS_AUTH_TOKEN",
            "eyJhbGciOiJFZERTQSJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln",
        ),
        ("DFNS_CRED_ID", "Y2k"),
        ("DFNS_PRIVATE_KEY", key.private_key_pem.expose()),
    ];
    let output = verify(&env, &["--allow-insecure-http"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).1.contains("unreachable"),
        "{}",
        text(&output).1
    );

    let output = verify(&env[..3], &["--allow-insecure-http"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("DFNS_PRIVATE_KEY is not set"));

    let output = verify(&env, &[]).await;
    assert_eq!(
        output.status.code(),
        Some(2),
        "plain http refused without the flag"
    );
    assert!(
        text(&output).1.contains("--allow-insecure-http"),
        "{}",
        text(&output).1
    );
}
