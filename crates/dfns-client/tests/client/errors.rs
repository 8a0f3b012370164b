//! Each error category, provoked for real: against the emulator where it can, else the stub.

use std::time::Duration;

use crate::stub::{Scripted, Stub, jwt, stub_client, stub_login};
use dfns_client::types::permission::CreatePermissionRequest;
use dfns_client::{
    AuthMode, ClientConfig, DfnsClient, DfnsError, ErrorCategory, IdentityKind, KeySigner,
    NewIdentity, SecretString, generate_p256,
};
use dfns_emulator::Faults;
use dfns_test_support::dfns::*;
use serde_json::json;

#[tokio::test]
async fn unknown_token_is_unauthorized() {
    let emulator = start_emulator().await;
    let pair = generate_p256().unwrap();
    let forged = jwt(json!({"exp": jiff::Timestamp::now().as_second() + 600}));
    let signer = KeySigner::from_pem("Y2k", pair.private_key_pem.expose()).unwrap();
    let client = DfnsClient::new(config_for(
        &emulator,
        AuthMode::Token(SecretString::new(forged)),
        signer,
    ))
    .unwrap();
    let error = client.list_service_accounts().await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Unauthorized, "{error}");
    assert!(
        matches!(error, DfnsError::Api { status: 401, .. }),
        "{error}"
    );
    assert!(
        error.dfns_message().is_some_and(|m| !m.is_empty()),
        "Dfns message kept: {error}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn service_account_creating_a_service_account_is_forbidden() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let minted = mint(&admin, IdentityKind::ServiceAccount, "not-allowed-to-mint").await;
    let service_account = token_client(&emulator, &minted);
    let pair = generate_p256().unwrap();
    let error = service_account
        .create(
            IdentityKind::ServiceAccount,
            &NewIdentity {
                name: "child".into(),
                public_key_pem: pair.public_key_pem,
                ..NewIdentity::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Forbidden, "{error}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn missing_object_is_not_found() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    for kind in [
        IdentityKind::ServiceAccount,
        IdentityKind::PersonalAccessToken,
    ] {
        let id = if kind == IdentityKind::ServiceAccount {
            "us-aaaaa-bbbbb-cccccccccccccccc"
        } else {
            "to-aaaaa-bbbbb-cccccccccccccccc"
        };
        let error = admin.get(kind, id).await.unwrap_err();
        assert_eq!(error.category(), ErrorCategory::NotFound, "{kind}: {error}");
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn assigning_a_permission_twice_is_a_conflict() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let permission = admin
        .create_permission(&CreatePermissionRequest {
            name: "twice".into(),
            operations: vec!["Auth:Pats:Create".into()],
        })
        .await
        .unwrap();
    let minted = mint(&admin, IdentityKind::ServiceAccount, "twice-assigned").await;
    admin
        .assign_permission(&permission.id, &minted.id)
        .await
        .unwrap();
    let error = admin
        .assign_permission(&permission.id, &minted.id)
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Conflict, "{error}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn malformed_public_key_is_an_invalid_request() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator);
    let error = admin
        .create(
            IdentityKind::PersonalAccessToken,
            &NewIdentity {
                name: "bad-key".into(),
                public_key_pem: "not a pem".into(),
                ..NewIdentity::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::InvalidRequest, "{error}");
    assert_eq!(
        requests_to(&emulator, "POST /auth/pats"),
        1,
        "a 400 is not retried"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn exceeding_the_dfns_rate_limit_is_rate_limited_with_retry_after() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.retry = fast_retries(1);
    let admin = DfnsClient::new(config).unwrap();
    admin.identity().await.unwrap(); // log in before the limit applies
    emulator.set_faults(Faults {
        rate_limit_per_minute: Some(1),
        // Not documented by Dfns; these tests are about a server that sends it.
        retry_after: true,
        ..Faults::default()
    });
    let mut outcome = Ok(());
    for _ in 0..3 {
        outcome = admin.list_pats().await.map(drop);
        if outcome.is_err() {
            break;
        }
    }
    let error = outcome.unwrap_err();
    match error.category() {
        ErrorCategory::RateLimited { retry_after } => assert!(
            retry_after.is_some_and(|d| d >= Duration::from_secs(1)),
            "{retry_after:?}"
        ),
        other => panic!("expected RateLimited, got {other:?}: {error}"),
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn injected_server_errors_are_server_errors_after_bounded_read_retries() {
    let emulator = start_emulator().await;
    let admin = admin_client(&emulator); // 3 attempts
    admin.identity().await.unwrap();
    emulator.set_faults(Faults {
        error_ratio: 1.0,
        ..Faults::default()
    });
    emulator.reset_request_counts();
    let error = admin.list_service_accounts().await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::ServerError, "{error}");
    assert_eq!(
        requests_to(&emulator, "GET /auth/service-accounts"),
        3,
        "reads retried up to max_attempts"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn closed_port_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let pair = generate_p256().unwrap();
    let signer = KeySigner::from_pem("Y2k", pair.private_key_pem.expose()).unwrap();
    let mut config = ClientConfig::new(
        url,
        AuthMode::Token(SecretString::new(jwt(json!({})))),
        signer,
    );
    config.allow_insecure_http = true;
    config.retry = fast_retries(2);
    let error = DfnsClient::new(config)
        .unwrap()
        .list_pats()
        .await
        .unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Transport, "{error}");
}

#[tokio::test]
async fn slow_answers_are_timeouts() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    config.request_timeout = Duration::from_millis(300);
    config.retry = fast_retries(1);
    let admin = DfnsClient::new(config).unwrap();
    admin.identity().await.unwrap();
    emulator.set_faults(Faults {
        latency: Duration::from_secs(3),
        ..Faults::default()
    });
    let error = admin.list_pats().await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::Timeout, "{error}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn wrong_credential_id_is_refused_before_signing() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    let key = emulator.bootstrap().admin.private_key.clone();
    config.signer = KeySigner::from_pem("Y2ktbm90LW1pbmU", &key).unwrap();
    let error = DfnsClient::new(config)
        .unwrap()
        .identity()
        .await
        .unwrap_err();
    assert!(
        matches!(error, DfnsError::CredentialNotAllowed { .. }),
        "{error}"
    );
    assert_eq!(error.category(), ErrorCategory::Misconfigured);
    assert_eq!(
        requests_to(&emulator, "POST /auth/login"),
        0,
        "never sent a signature"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn wrong_key_is_rejected_by_dfns() {
    let emulator = start_emulator().await;
    let mut config = admin_config(&emulator);
    let other = generate_p256().unwrap();
    config.signer = KeySigner::from_pem(
        emulator.bootstrap().admin.cred_id.clone(),
        other.private_key_pem.expose(),
    )
    .unwrap();
    let error = DfnsClient::new(config)
        .unwrap()
        .identity()
        .await
        .unwrap_err();
    assert!(
        matches!(
            error.category(),
            ErrorCategory::Unauthorized | ErrorCategory::Forbidden
        ),
        "{error}"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn policy_approval_is_pending_approval() {
    let stub = Stub::start(vec![Scripted::new(
        202,
        json!({"id": "cr-approval-1", "kind": "Assignment", "status": "Pending"}),
    )])
    .await;
    let client = stub_client(&stub, stub_login(), fast_retries(3));
    let error = client.assign_permission("pm-1", "us-1").await.unwrap_err();
    assert_eq!(error.category(), ErrorCategory::PendingApproval);
    assert!(error.to_string().contains("cr-approval-1"), "{error}");
    assert_eq!(stub.requests().len(), 1, "a pending write is not re-sent");
}

#[tokio::test]
async fn a_write_is_not_resent_when_its_outcome_is_unknown() {
    for status in [500, 502, 503] {
        let stub = Stub::start(vec![Scripted::new(
            status,
            json!({"error": {"message": "boom"}}),
        )])
        .await;
        let client = stub_client(&stub, stub_login(), fast_retries(5));
        let pair = generate_p256().unwrap();
        let error = client
            .create(
                IdentityKind::ServiceAccount,
                &NewIdentity {
                    name: "once".into(),
                    public_key_pem: pair.public_key_pem,
                    ..NewIdentity::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(error.category(), ErrorCategory::ServerError);
        assert_eq!(
            stub.requests().len(),
            1,
            "HTTP {status}: create sent exactly once"
        );
    }
}

#[tokio::test]
async fn a_rate_limited_write_is_resent_after_retry_after_with_a_fresh_signature() {
    let mut limited = Scripted::new(429, json!({"error": {"message": "Too Many Requests"}}));
    limited.retry_after = Some(1);
    let stub = Stub::start(vec![
        limited,
        Scripted::new(
            200,
            json!({"id": "as-1", "permissionId": "pm-1", "identityId": "us-1"}),
        ),
    ])
    .await;
    let client = stub_client(&stub, stub_login(), fast_retries(3));
    let started = std::time::Instant::now();
    let assignment = client.assign_permission("pm-1", "us-1").await.unwrap();
    assert_eq!(assignment.id, "as-1");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(stub.requests().len(), 2);
    assert_eq!(
        stub.user_actions(),
        2,
        "a user action is single-use; the resend was re-signed"
    );
}

#[tokio::test]
async fn reads_retry_through_transient_errors_and_then_succeed() {
    let stub = Stub::start(vec![
        Scripted::new(503, json!({})),
        Scripted::new(500, json!({})),
        Scripted::new(200, json!({"items": []})),
    ])
    .await;
    let client = stub_client(&stub, stub_login(), fast_retries(3));
    assert!(client.list_pats().await.unwrap().is_empty());
    assert_eq!(stub.requests().len(), 3);
}
