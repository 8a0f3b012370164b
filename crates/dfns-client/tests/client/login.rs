//! User login mode: one login shared by callers, renewal before the JWT `exp`, and exactly one
//! renewal after a 401.

use std::time::Duration;

use crate::stub::{Scripted, Stub, stub_client, stub_login};
use dfns_client::types::user_action::Challenge;
use dfns_client::{AuthMode, DfnsClient, ErrorCategory, SecretString};
use dfns_emulator::EmulatorConfig;
use dfns_test_support::dfns::*;
use serde_json::json;

#[tokio::test]
async fn login_mode_logs_in_once_and_reuses_the_session() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let identity = admin.identity().await.unwrap();
    assert_eq!(
        identity.user_id.as_deref(),
        Some(emulator.bootstrap().admin.user_id.as_str())
    );
    assert_eq!(
        identity.org_id.as_deref(),
        Some(emulator.bootstrap().org_id.as_str())
    );
    for _ in 0..3 {
        admin.list_pats().await.unwrap();
    }
    assert_eq!(requests_to(&emulator, "POST /auth/login/init"), 1);
    assert_eq!(requests_to(&emulator, "POST /auth/login"), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn concurrent_callers_share_one_login() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let calls = (0..8).map(|_| {
        let admin = admin.clone();
        tokio::spawn(async move { admin.list_service_accounts().await.map(drop) })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    assert_eq!(requests_to(&emulator, "POST /auth/login"), 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn session_is_renewed_before_its_jwt_expires() {
    let emulator = start_emulator_with(EmulatorConfig {
        session_ttl: Duration::from_secs(5),
        ..EmulatorConfig::default()
    })
    .await;
    let admin = admin_client(&emulator);
    let first = admin.identity().await.unwrap();
    let (issued_at, expires_at) = (
        first.issued_at.expect("session iat"),
        first.expires_at.expect("session exp"),
    );
    // The renewal point, from the token's own claims: the last fifth of its lifetime (1 s here,
    // so a call right after the login, well before it, reuses the session).
    let renewal_point = expires_at - expires_at.duration_since(issued_at) / 5;
    admin.list_pats().await.unwrap();
    assert_eq!(
        requests_to(&emulator, "POST /auth/login"),
        1,
        "a fresh session is reused"
    );
    // Wait for the clock to pass the renewal point (bounded: it is at most 5 s away).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while jiff::Timestamp::now() < renewal_point {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clock never reached {renewal_point}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.list_pats().await.unwrap();
    assert_eq!(
        requests_to(&emulator, "POST /auth/login"),
        2,
        "renewed by exp, not after a 401"
    );
    assert_eq!(
        requests_to(&emulator, "GET /auth/pats"),
        2,
        "no rejected attempt"
    );
    let second = admin.identity().await.unwrap();
    assert!(second.expires_at.unwrap() > expires_at);
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_401_renews_the_session_once_and_retries() {
    let stub = Stub::start(vec![
        Scripted::new(401, json!({"error": {"message": "Not Authorized."}})),
        Scripted::new(200, json!({"items": []})),
    ])
    .await;
    let client = stub_client(&stub, stub_login(), fast_retries(3));
    client.list_pats().await.unwrap();
    let requests = stub.requests();
    assert_eq!(stub.logins(), 2);
    assert_eq!(requests.len(), 2);
    assert_ne!(
        requests[0], requests[1],
        "the retry carried the new session token"
    );
}

#[tokio::test]
async fn a_second_401_is_returned_not_looped() {
    let unauthorized = Scripted::new(401, json!({"error": {"message": "Not Authorized."}}));
    let stub = Stub::start(vec![
        unauthorized.clone(),
        unauthorized.clone(),
        unauthorized,
    ])
    .await;
    let client = stub_client(&stub, stub_login(), fast_retries(3));
    let error = client.list_pats().await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Unauthorized);
    assert_eq!(stub.logins(), 2);
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn a_write_rejected_with_401_is_re_signed_with_the_new_session() {
    let stub = Stub::start(vec![
        Scripted::new(401, json!({"error": {"message": "Not Authorized."}})),
        Scripted::new(
            200,
            json!({"id": "as-9", "permissionId": "pm-1", "identityId": "to-1"}),
        ),
    ])
    .await;
    let client = stub_client(&stub, stub_login(), fast_retries(3));
    assert_eq!(
        client.assign_permission("pm-1", "to-1").await.unwrap().id,
        "as-9"
    );
    assert_eq!(stub.logins(), 2);
    assert_eq!(stub.user_actions(), 2);
}

#[tokio::test]
async fn a_static_token_is_not_renewed_after_a_401() {
    let stub = Stub::start(vec![Scripted::new(
        401,
        json!({"error": {"message": "Not Authorized."}}),
    )])
    .await;
    let client = stub_client(
        &stub,
        AuthMode::Token(SecretString::new("eyJ.static.token")),
        fast_retries(3),
    );
    assert_eq!(
        client.list_pats().await.unwrap_err().category(),
        ErrorCategory::Unauthorized
    );
    assert_eq!(stub.logins(), 0);
    assert_eq!(stub.requests().len(), 1);
}

#[tokio::test]
async fn unknown_user_cannot_log_in() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.auth = AuthMode::UserLogin {
        org_id: emulator.bootstrap().org_id.clone(),
        username: "nobody@example.com".into(),
    };
    let error = DfnsClient::new(config)
        .unwrap()
        .identity()
        .await
        .unwrap_err();
    assert!(!error.category().is_transient(), "{error}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn login_challenge_lists_the_admin_credential() {
    // The signer checks allowCredentials.key; make sure the emulator's login challenge has the shape it reads.
    let emulator = start_emulator().await;
    let bootstrap = emulator.bootstrap().clone();
    dfns_client::install_crypto_provider();
    let response = reqwest::Client::new()
        .post(format!("{}/auth/login/init", emulator.api_url()))
        .json(&json!({"orgId": bootstrap.org_id, "username": bootstrap.admin.username}))
        .send()
        .await
        .unwrap();
    let challenge: Challenge = response.json().await.unwrap();
    assert!(
        challenge
            .allow_credentials
            .key
            .iter()
            .any(|c| c.id == bootstrap.admin.cred_id)
    );
    emulator.shutdown().await;
}
