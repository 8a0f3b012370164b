//! Test controls: faults (rate limit, injected errors, lost responses, latency), state, reset,
//! request counts, and the error format.

use std::time::Duration;

use crate::support::*;
use dfns_emulator::{EmulatorConfig, Faults};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn rate_limit_answers_429_without_retry_after_unless_asked_and_counts_it() {
    let emu = start().await;
    let admin = admin(&emu).await;
    emu.set_faults(Faults {
        rate_limit_per_minute: Some(3),
        ..Faults::default()
    });
    for _ in 0..3 {
        admin.get("/auth/service-accounts").await.ok();
    }
    let reply = admin.get("/auth/service-accounts").await;
    assert!(
        reply.headers.get("retry-after").is_none(),
        "Dfns documents no Retry-After: none by default"
    );
    reply.error(StatusCode::TOO_MANY_REQUESTS);
    // The fault switch adds it.
    emu.set_faults(Faults {
        rate_limit_per_minute: Some(3),
        retry_after: true,
        ..Faults::default()
    });
    for _ in 0..3 {
        admin.get("/auth/service-accounts").await.ok();
    }
    let reply = admin.get("/auth/service-accounts").await;
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    reply.error(StatusCode::TOO_MANY_REQUESTS);
    let counts = emu.request_counts();
    assert_eq!(counts.rate_limited, 2);
    assert_eq!(
        counts.by_endpoint["GET /auth/service-accounts"].rate_limited,
        2
    );
    // Test controls are never rate limited.
    control(&emu, Method::GET, "/_emulator/state", None)
        .await
        .ok();
}

#[tokio::test]
async fn injected_errors_change_nothing() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let body = Body::Json(json!({ "name": "e", "publicKey": TestKey::p256().public_pem() }));
    let ua = admin
        .user_action(&Method::POST, "/auth/service-accounts", &body)
        .await;
    control(
        &emu,
        Method::PUT,
        "/_emulator/faults",
        Some(json!({ "errorRatio": 1.0 })),
    )
    .await
    .ok();
    admin
        .send(Method::POST, "/auth/service-accounts", &body, Some(&ua))
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(emu.state().service_accounts.is_empty());
    assert_eq!(emu.request_counts().injected_errors, 1);
    // The user action was not consumed either.
    emu.set_faults(Faults::default());
    admin
        .send(Method::POST, "/auth/service-accounts", &body, Some(&ua))
        .await
        .ok();
}

#[tokio::test]
async fn lost_response_applies_the_change_then_fails_the_reply() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let body = Body::Json(
        json!({ "name": "lost", "publicKey": TestKey::p256().public_pem(), "externalId": "uid-9" }),
    );
    emu.set_faults(Faults {
        lost_response_ratio: 1.0,
        ..Faults::default()
    });
    // Reads and the signing steps still answer; only the write's reply is lost.
    admin.get("/auth/service-accounts").await.ok();
    let reply = admin
        .signed(Method::POST, "/auth/service-accounts", body)
        .await;
    assert!(
        !reply.body.to_string().contains("accessToken"),
        "the token must not reach the client"
    );
    reply.error(StatusCode::BAD_GATEWAY);
    let state = emu.state();
    assert_eq!(state.service_accounts.len(), 1, "the change was applied");
    assert_eq!(
        state.service_accounts[0].external_id.as_deref(),
        Some("uid-9")
    );
    assert!(state.service_accounts[0].is_active);
    assert_eq!(emu.request_counts().lost_responses, 1);
}

#[tokio::test]
async fn faults_can_be_read_and_set_over_http_and_are_validated() {
    let emu = start().await;
    let set = json!({ "latencyMs": 5, "jitterMs": 2, "rateLimitPerMinute": 1000, "retryAfter": true, "errorRatio": 0.0, "lostResponseRatio": 0.0 });
    assert_eq!(
        control(&emu, Method::PUT, "/_emulator/faults", Some(set.clone()))
            .await
            .ok(),
        set
    );
    assert_eq!(
        control(&emu, Method::GET, "/_emulator/faults", None)
            .await
            .ok(),
        set
    );
    assert_eq!(emu.faults().latency, Duration::from_millis(5));
    control(
        &emu,
        Method::PUT,
        "/_emulator/faults",
        Some(json!({ "errorRatio": 2.0 })),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    control(
        &emu,
        Method::PUT,
        "/_emulator/faults",
        Some(json!({ "bogus": 1 })),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    // Latency still lets requests through.
    let admin = admin(&emu).await;
    admin.get("/auth/service-accounts").await.ok();
}

#[tokio::test]
async fn start_up_faults_are_restored_by_reset() {
    let emu = start_with(EmulatorConfig {
        faults: Faults {
            rate_limit_per_minute: Some(500),
            ..Faults::default()
        },
        ..Default::default()
    })
    .await;
    emu.set_faults(Faults::default());
    control(&emu, Method::POST, "/_emulator/reset", None)
        .await
        .ok();
    assert_eq!(emu.faults().rate_limit_per_minute, Some(500));
}

#[tokio::test]
async fn reset_keeps_only_the_bootstrap_admin() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (_, sa) = create_service_account(&admin, "gone", &TestKey::p256(), json!({})).await;
    create_pat(&admin, "gone", &TestKey::p256(), json!({})).await;
    control(&emu, Method::POST, "/_emulator/reset", None)
        .await
        .ok();
    let state = emu.state();
    assert!(state.service_accounts.is_empty() && state.pats.is_empty());
    assert_eq!(state.users.len(), 1);
    assert_eq!(state.credentials.len(), 1);
    assert_eq!(emu.request_counts().total, 0);
    // The admin's session still works; the deleted service account's token does not.
    admin.get("/auth/service-accounts").await.ok();
    sa.get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn state_shows_flags_and_never_secrets() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(
        &admin,
        "visible",
        &TestKey::p256(),
        json!({ "externalId": "ext" }),
    )
    .await;
    let http_state = control(&emu, Method::GET, "/_emulator/state", None)
        .await
        .ok();
    assert_eq!(http_state, serde_json::to_value(emu.state()).unwrap());
    let entry = &http_state["serviceAccounts"][0];
    assert_eq!(entry["name"], "visible");
    assert_eq!(entry["externalId"], "ext");
    assert_eq!(entry["isActive"], true);
    assert_eq!(entry["archived"], false);
    assert!(entry["dateCreated"].is_string());
    let text = http_state.to_string();
    assert!(!text.contains(sa["accessTokens"][0]["accessToken"].as_str().unwrap()));
    assert!(!text.contains(&admin.token));
    assert!(!text.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn request_counts_separate_reads_writes_and_auth() {
    let emu = start().await;
    let admin = admin(&emu).await;
    control(&emu, Method::DELETE, "/_emulator/requests", None)
        .await
        .ok();
    admin.get("/auth/service-accounts").await.ok();
    create_service_account(&admin, "c", &TestKey::p256(), json!({})).await;
    let counts = control(&emu, Method::GET, "/_emulator/requests", None)
        .await
        .ok();
    assert_eq!(counts["reads"], 1);
    assert_eq!(counts["writes"], 1);
    assert_eq!(counts["auth"], 2);
    assert_eq!(
        counts["byEndpoint"]["POST /auth/service-accounts"]["requests"],
        1
    );
    assert_eq!(
        counts["byEndpoint"]["POST /auth/action/init"]["requests"],
        1
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_get_dfns_shaped_errors() {
    let emu = start().await;
    let admin = admin(&emu).await;
    admin.get("/nope").await.error(StatusCode::NOT_FOUND);
    admin
        .send(Method::PATCH, "/auth/pats", &Body::None, None)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    admin
        .get("/permissions?limit=abc")
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_signed_writes_are_all_applied() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            admin
                .post(
                    "/auth/service-accounts",
                    json!({ "name": format!("c{i}"), "publicKey": TestKey::p256().public_pem() }),
                )
                .await
                .ok();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(emu.state().service_accounts.len(), 16);
}
