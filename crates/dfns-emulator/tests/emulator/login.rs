//! Login and bearer tokens: Key-credential login, JWT claims, 401 for unknown/expired tokens.

use std::time::Duration;

use crate::support::*;
use dfns_emulator::EmulatorConfig;
use reqwest::StatusCode;

#[tokio::test]
async fn bootstrap_admin_logs_in_and_gets_a_dfns_shaped_jwt() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let claims = jwt_claims(&admin.token);
    let header: serde_json::Value = {
        use base64::Engine as _;
        let h = admin.token.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["alg"], "EdDSA");
    let meta = &claims["https://custom/app_metadata"];
    assert_eq!(meta["userId"], emu.bootstrap().admin.user_id.as_str());
    assert_eq!(meta["orgId"], emu.bootstrap().org_id.as_str());
    assert_eq!(meta["tokenKind"], "Temp");
    assert_eq!(
        claims["https://custom/username"],
        emu.bootstrap().admin.username.as_str()
    );
    for claim in ["iss", "aud", "sub", "iat", "exp"] {
        assert!(!claims[claim].is_null(), "claim {claim} missing");
    }
    // The token works for a read.
    admin.get("/auth/service-accounts").await.ok();
    emu.shutdown().await;
}

#[tokio::test]
async fn login_with_tampered_signature_is_refused() {
    let emu = start().await;
    let key = admin_key(&emu);
    let opts = AssertionOptions {
        tamper_signature: true,
        ..Default::default()
    };
    let reply = admin_login(&http(), &emu, &key, &opts).await;
    reply.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_with_another_key_is_refused() {
    let emu = start().await;
    let reply = admin_login(&http(), &emu, &TestKey::p256(), &Default::default()).await;
    reply.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_requires_key_get_type_and_the_issued_challenge() {
    let emu = start().await;
    let key = admin_key(&emu);
    let wrong_type = AssertionOptions {
        client_data_type: "webauthn.get",
        ..Default::default()
    };
    admin_login(&http(), &emu, &key, &wrong_type)
        .await
        .error(StatusCode::UNAUTHORIZED);
    let wrong_challenge = AssertionOptions {
        challenge_override: Some("b3RoZXI".into()),
        ..Default::default()
    };
    admin_login(&http(), &emu, &key, &wrong_challenge)
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_accepts_padded_base64_and_go_style_client_data() {
    let emu = start().await;
    let key = admin_key(&emu);
    let opts = AssertionOptions {
        padded: true,
        go_style_client_data: true,
        ..Default::default()
    };
    admin_login(&http(), &emu, &key, &opts).await.ok();
}

#[tokio::test]
async fn login_challenge_is_single_use() {
    let emu = start().await;
    let b = emu.bootstrap();
    let key = admin_key(&emu);
    let anon = Client::anonymous(http(), emu.api_url(), &b.admin.cred_id, &key);
    let init = anon.login_init(&b.org_id, &b.admin.username).await.ok();
    let body = serde_json::json!({
        "challengeIdentifier": init["challengeIdentifier"],
        "firstFactor": assertion(&key, &b.admin.cred_id, init["challenge"].as_str().unwrap(), &Default::default()),
    });
    anon.send_anonymously(
        reqwest::Method::POST,
        "/auth/login",
        &Body::Json(body.clone()),
    )
    .await
    .ok();
    anon.send_anonymously(reqwest::Method::POST, "/auth/login", &Body::Json(body))
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_login_challenge_is_refused() {
    let emu = start_with(EmulatorConfig {
        login_challenge_ttl: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let key = admin_key(&emu);
    admin_login(&http(), &emu, &key, &Default::default())
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_user_or_org_cannot_start_a_login() {
    let emu = start().await;
    let anon = Client::anonymous(http(), emu.api_url(), "", &TestKey::p256());
    let b = emu.bootstrap();
    for (org_id, username) in [
        (b.org_id.as_str(), "nobody"),
        ("or-aaaaa-aaaaa-aaaaaaaaaaaaaaaa", b.admin.username.as_str()),
    ] {
        anon.login_init(org_id, username)
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn expired_session_token_gets_401() {
    let emu = start_with(EmulatorConfig {
        session_ttl: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let admin = admin(&emu).await;
    let msg = admin
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert!(msg.contains("expired"), "{msg}");
}

#[tokio::test]
async fn missing_garbage_or_foreign_tokens_get_401() {
    let emu = start().await;
    let other = start().await;
    let foreign = admin(&other).await;
    let mut client = admin(&emu).await;
    client.token = foreign.token.clone();
    client
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);
    client.token = "not.a.jwt".into();
    client
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);
    client
        .send_anonymously(reqwest::Method::GET, "/auth/service-accounts", &Body::None)
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn legacy_and_sdk_headers_are_tolerated() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let reply = admin
        .http
        .get(format!("{}/auth/service-accounts", emu.api_url()))
        .bearer_auth(&admin.token)
        .header("X-DFNS-APPID", "ap-xxxxx-xxxxx-xxxxxxxxxxxxxxxx")
        .header("X-DFNS-NONCE", "eyJ1dWlkIjoiMSJ9")
        .header("x-dfns-sdk-version", "0.8.21")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
}

#[tokio::test]
async fn in_process_tls_emulator_is_trusted_through_its_ca() {
    let emu = start_with(EmulatorConfig {
        tls: true,
        tls_hosts: vec!["emulator.test".into()],
        ..Default::default()
    })
    .await;
    assert!(emu.api_url().starts_with("https://"));
    let ca = emu.ca_cert_pem().expect("CA in TLS mode");
    assert_eq!(emu.bootstrap().ca_cert.as_deref(), Some(ca));
    install_crypto_provider();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let key = admin_key(&emu);
    admin_login(&http, &emu, &key, &Default::default())
        .await
        .ok();
    emu.shutdown().await;
}

#[tokio::test]
async fn plain_emulator_has_no_ca() {
    let emu = start().await;
    assert!(emu.ca_cert_pem().is_none());
    assert!(emu.bootstrap().ca_cert.is_none());
}
