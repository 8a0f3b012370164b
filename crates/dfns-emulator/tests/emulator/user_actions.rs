//! User action signing: signature checks per key type, single use, binding to method, path and
//! body, and the credential belonging to the caller.

use std::time::Duration;

use crate::support::*;
use dfns_emulator::EmulatorConfig;
use reqwest::{Method, StatusCode};
use serde_json::json;

fn sa_body(name: &str) -> serde_json::Value {
    json!({ "name": name, "publicKey": TestKey::p256().public_pem() })
}

#[tokio::test]
async fn signed_write_succeeds_and_the_user_action_is_single_use() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let body = Body::Json(sa_body("replay"));
    let ua = admin
        .user_action(&Method::POST, "/auth/service-accounts", &body)
        .await;
    admin
        .send(Method::POST, "/auth/service-accounts", &body, Some(&ua))
        .await
        .ok();
    let msg = admin
        .send(Method::POST, "/auth/service-accounts", &body, Some(&ua))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(msg.contains("already been used"), "{msg}");
    assert_eq!(
        emu.state().service_accounts.len(),
        1,
        "the replay created nothing"
    );
}

#[tokio::test]
async fn user_action_for_another_path_or_method_or_body_is_refused() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "target", &TestKey::p256(), json!({})).await;
    let id = sa["userInfo"]["userId"].as_str().unwrap();
    let ua = admin
        .user_action(
            &Method::PUT,
            &format!("/auth/service-accounts/{id}/deactivate"),
            &Body::None,
        )
        .await;

    // Another path.
    admin
        .send(
            Method::PUT,
            &format!("/auth/service-accounts/{id}/activate"),
            &Body::None,
            Some(&ua),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    // Another method.
    admin
        .send(
            Method::DELETE,
            &format!("/auth/service-accounts/{id}/deactivate"),
            &Body::None,
            Some(&ua),
        )
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    // Another body.
    admin
        .send(
            Method::PUT,
            &format!("/auth/service-accounts/{id}/deactivate"),
            &Body::Json(json!({"force": true})),
            Some(&ua),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    // A refused attempt does not use it up: the right request still goes through once.
    admin
        .send(
            Method::PUT,
            &format!("/auth/service-accounts/{id}/deactivate"),
            &Body::None,
            Some(&ua),
        )
        .await
        .ok();
    assert!(!emu.state().service_accounts[0].is_active);
}

#[tokio::test]
async fn method_mismatch_on_a_real_route_is_refused() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "m", &TestKey::p256(), json!({})).await;
    let id = sa["userInfo"]["userId"].as_str().unwrap();
    let path = format!("/auth/service-accounts/{id}");
    let ua = admin.user_action(&Method::DELETE, &path, &Body::None).await;
    admin
        .send(
            Method::PUT,
            &path,
            &Body::Json(json!({"name": "x"})),
            Some(&ua),
        )
        .await
        .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn empty_string_empty_object_and_no_body_are_the_same_payload() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "bodies", &TestKey::p256(), json!({})).await;
    let id = sa["userInfo"]["userId"].as_str().unwrap();
    let path = format!("/auth/service-accounts/{id}/deactivate");
    // (signed payload, sent body)
    for (payload, sent) in [
        ("", Body::Json(json!({}))),
        ("{}", Body::None),
        ("", Body::None),
        ("{}", Body::Raw("{}".into())),
    ] {
        let reply = admin
            .sign_action(&Method::PUT, &path, payload, &Default::default())
            .await
            .ok();
        let ua = reply["userAction"].as_str().unwrap();
        admin.send(Method::PUT, &path, &sent, Some(ua)).await.ok();
    }
}

#[tokio::test]
async fn payload_is_compared_as_parsed_json_not_bytes() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let pem = TestKey::p256().public_pem();
    let signed_payload = json!({ "name": "é-ascii", "publicKey": pem }).to_string();
    // Python-style: ASCII-escaped, compact, other key order.
    let sent = format!(
        r#"{{"publicKey":{},"name":"\u00e9-ascii"}}"#,
        serde_json::to_string(&pem).unwrap()
    );
    let ua = admin
        .sign_action(
            &Method::POST,
            "/auth/service-accounts",
            &signed_payload,
            &Default::default(),
        )
        .await
        .ok();
    admin
        .send(
            Method::POST,
            "/auth/service-accounts",
            &Body::Raw(sent),
            Some(ua["userAction"].as_str().unwrap()),
        )
        .await
        .ok();
}

#[tokio::test]
async fn query_string_is_ignored_when_binding_the_path() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "q", &TestKey::p256(), json!({})).await;
    let id = sa["userInfo"]["userId"].as_str().unwrap();
    // Go SDK signs the path with its query.
    let reply = admin
        .sign_action(
            &Method::DELETE,
            &format!("/auth/service-accounts/{id}?force=true"),
            "",
            &Default::default(),
        )
        .await
        .ok();
    admin
        .send(
            Method::DELETE,
            &format!("/auth/service-accounts/{id}?force=true"),
            &Body::None,
            Some(reply["userAction"].as_str().unwrap()),
        )
        .await
        .ok();
    assert!(emu.state().service_accounts[0].archived);
}

#[tokio::test]
async fn writes_without_a_user_action_are_refused() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let msg = admin
        .send(
            Method::POST,
            "/auth/service-accounts",
            &Body::Json(sa_body("x")),
            None,
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("user action"), "{msg}");
    admin
        .send(
            Method::POST,
            "/auth/service-accounts",
            &Body::Json(sa_body("x")),
            Some("garbage"),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(emu.state().service_accounts.is_empty());
}

#[tokio::test]
async fn tampered_signature_wrong_challenge_and_wrong_type_are_refused() {
    let emu = start().await;
    let admin = admin(&emu).await;
    for opts in [
        AssertionOptions {
            tamper_signature: true,
            ..Default::default()
        },
        AssertionOptions {
            challenge_override: Some("Zm9v".into()),
            ..Default::default()
        },
        AssertionOptions {
            client_data_type: "key.create",
            ..Default::default()
        },
    ] {
        admin
            .sign_action(&Method::POST, "/auth/service-accounts", "{}", &opts)
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn action_challenge_is_single_use() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let init = admin
        .action_init(&Method::POST, "/auth/pats", "")
        .await
        .ok();
    let body = Body::Json(json!({
        "challengeIdentifier": init["challengeIdentifier"],
        "firstFactor": assertion(&admin.key, &admin.cred_id, init["challenge"].as_str().unwrap(), &Default::default()),
    }));
    admin
        .send(Method::POST, "/auth/action", &body, None)
        .await
        .ok();
    admin
        .send(Method::POST, "/auth/action", &body, None)
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_challenge_is_refused() {
    let emu = start_with(EmulatorConfig {
        challenge_ttl: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let admin = admin(&emu).await;
    let msg = admin
        .sign_action(&Method::POST, "/auth/pats", "", &Default::default())
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert!(msg.contains("expired"), "{msg}");
}

#[tokio::test]
async fn expired_user_action_is_refused() {
    let emu = start_with(EmulatorConfig {
        user_action_ttl: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let admin = admin(&emu).await;
    let body = Body::Json(sa_body("late"));
    let ua = admin
        .user_action(&Method::POST, "/auth/service-accounts", &body)
        .await;
    let msg = admin
        .send(Method::POST, "/auth/service-accounts", &body, Some(&ua))
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("expired"), "{msg}");
}

#[tokio::test]
async fn user_action_signed_with_a_credential_of_someone_else_is_refused() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let sa_key = TestKey::p256();
    let (_, sa) = create_service_account(&admin, "other", &sa_key, json!({})).await;
    // The admin signs with the service account's credential.
    let opts = AssertionOptions {
        cred_id_override: Some(sa.cred_id.clone()),
        ..Default::default()
    };
    let mut forged = admin.clone();
    forged.key = sa_key;
    forged
        .sign_action(&Method::POST, "/auth/pats", "", &opts)
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn user_action_of_one_caller_cannot_be_used_by_another() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, sa_client) = service_account_with_operations(
        &admin,
        "sa",
        &[
            "Auth:ServiceAccounts:Read",
            "Auth:ServiceAccounts:Deactivate",
            "Permissions:Assign",
        ],
    )
    .await;
    let id = sa["userInfo"]["userId"].as_str().unwrap();
    let path = format!("/auth/service-accounts/{id}/deactivate");
    let ua = admin.user_action(&Method::PUT, &path, &Body::None).await;
    sa_client
        .send(Method::PUT, &path, &Body::None, Some(&ua))
        .await
        .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ed25519_and_rsa_credentials_sign_user_actions() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let perm = create_permission(
        &admin,
        "reader",
        &[
            "Auth:ServiceAccounts:Read",
            "Auth:ServiceAccounts:Deactivate",
        ],
    )
    .await;
    for (name, key, pem) in [
        ("ed", TestKey::ed25519(), None),
        ("rsa-spki", TestKey::rsa(), None),
        (
            "rsa-pkcs1",
            TestKey::rsa(),
            Some(TestKey::rsa().rsa_pkcs1_public_pem()),
        ),
    ] {
        let pem = pem.unwrap_or_else(|| key.public_pem());
        let sa = admin
            .post(
                "/auth/service-accounts",
                json!({ "name": name, "publicKey": pem, "permissionId": perm }),
            )
            .await
            .ok();
        let client = admin.with(
            sa["accessTokens"][0]["accessToken"].as_str().unwrap(),
            sa["accessTokens"][0]["credId"].as_str().unwrap(),
            &key,
        );
        let id = sa["userInfo"]["userId"].as_str().unwrap();
        // A tampered signature from the same key type is refused.
        let opts = AssertionOptions {
            tamper_signature: true,
            ..Default::default()
        };
        client
            .sign_action(&Method::PUT, "/auth/pats/x", "", &opts)
            .await
            .error(StatusCode::UNAUTHORIZED);
        client
            .put(
                &format!("/auth/service-accounts/{id}/deactivate"),
                json!({}),
            )
            .await
            .ok();
    }
}

#[tokio::test]
async fn allow_credentials_lists_the_callers_credential_ids() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let init = admin
        .action_init(&Method::POST, "/auth/pats", "")
        .await
        .ok();
    let ids: Vec<&str> = init["allowCredentials"]["key"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![emu.bootstrap().admin.cred_id.as_str()]);
    assert_eq!(init["supportedCredentialKinds"][0]["kind"], "Key");
}

#[tokio::test]
async fn every_state_changing_endpoint_requires_a_user_action() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "s", &TestKey::p256(), json!({})).await;
    let (pat, _) = create_pat(&admin, "p", &TestKey::p256(), json!({})).await;
    let sa_id = sa["userInfo"]["userId"].as_str().unwrap();
    let pat_id = pat["tokenId"].as_str().unwrap();
    let perm = create_permission(&admin, "perm", &["Permissions:Read"]).await;
    let user = &emu.bootstrap().admin.user_id;
    let before = serde_json::to_value(emu.state()).unwrap();
    let writes: Vec<(Method, String)> = vec![
        (Method::POST, "/auth/service-accounts".into()),
        (Method::PUT, format!("/auth/service-accounts/{sa_id}")),
        (
            Method::PUT,
            format!("/auth/service-accounts/{sa_id}/activate"),
        ),
        (
            Method::PUT,
            format!("/auth/service-accounts/{sa_id}/deactivate"),
        ),
        (Method::DELETE, format!("/auth/service-accounts/{sa_id}")),
        (Method::POST, "/auth/pats".into()),
        (Method::PUT, format!("/auth/pats/{pat_id}")),
        (Method::PUT, format!("/auth/pats/{pat_id}/activate")),
        (Method::PUT, format!("/auth/pats/{pat_id}/deactivate")),
        (Method::DELETE, format!("/auth/pats/{pat_id}")),
        (Method::POST, "/permissions".into()),
        (Method::POST, format!("/permissions/{perm}/assignments")),
        (
            Method::DELETE,
            format!("/permissions/{perm}/assignments/as-aaaaa-aaaaa-aaaaaaaaaaaaaaaa"),
        ),
        (Method::POST, "/auth/credentials".into()),
        (Method::PUT, "/auth/credentials/activate".into()),
        (Method::PUT, "/auth/credentials/deactivate".into()),
        (Method::PUT, format!("/auth/users/{user}/activate")),
        (Method::PUT, format!("/auth/users/{user}/deactivate")),
    ];
    for (method, path) in writes {
        let reply = admin
            .send(method.clone(), &path, &Body::Json(json!({})), None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            reply.body
        );
        assert!(
            reply.error_message().contains("user action"),
            "{method} {path}: {}",
            reply.body
        );
    }
    assert_eq!(
        serde_json::to_value(emu.state()).unwrap(),
        before,
        "nothing changed"
    );
}
