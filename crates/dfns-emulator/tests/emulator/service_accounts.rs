//! Service accounts: lifecycle, the access token shown once, caller rules, validation.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn create_returns_the_token_once_and_reads_never_show_it() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let key = TestKey::p256();
    let (sa, _) = create_service_account(
        &admin,
        "ci-bot",
        &key,
        json!({ "externalId": "uid-1", "daysValid": 30 }),
    )
    .await;
    let info = &sa["userInfo"];
    let id = info["userId"].as_str().unwrap();
    assert!(id.starts_with("us-"));
    assert_eq!(info["isServiceAccount"], true);
    assert_eq!(info["isActive"], true);
    assert_eq!(info["name"], "ci-bot");
    assert!(info.get("externalId").is_none(), "a request field only");
    let token = &sa["accessTokens"][0];
    assert_eq!(token["kind"], "ServiceAccount");
    assert!(token["tokenId"].as_str().unwrap().starts_with("to-"));
    assert_eq!(token["linkedUserId"], id);
    let jwt = token["accessToken"].as_str().unwrap();
    let claims = jwt_claims(jwt);
    assert_eq!(
        claims["https://custom/app_metadata"]["tokenKind"],
        "ServiceAccount"
    );
    assert_eq!(claims["https://custom/app_metadata"]["userId"], id);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 30 * 86_400);

    let got = admin
        .get(&format!("/auth/service-accounts/{id}"))
        .await
        .ok();
    assert!(got["accessTokens"][0].get("accessToken").is_none());
    let list = admin.get("/auth/service-accounts").await.ok();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(jwt), "list leaks the token");
    assert!(
        !serde_json::to_string(&emu.state()).unwrap().contains(jwt),
        "state leaks the token"
    );
}

#[tokio::test]
async fn updates_apply_and_a_deactivated_or_deleted_service_account_token_gets_401() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, sa_client) = create_service_account(&admin, "life", &TestKey::p256(), json!({})).await;
    let id = sa["userInfo"]["userId"].as_str().unwrap();
    let path = format!("/auth/service-accounts/{id}");

    let updated = admin
        .put(&path, json!({ "name": "renamed", "externalId": "e2" }))
        .await
        .ok();
    assert_eq!(updated["userInfo"]["name"], "renamed");
    assert_eq!(
        emu.state().service_accounts[0].external_id.as_deref(),
        Some("e2")
    );

    let off = admin
        .put(&format!("{path}/deactivate"), json!({}))
        .await
        .ok();
    assert_eq!(off["userInfo"]["isActive"], false);
    // A deactivated service account's token is refused.
    sa_client
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);

    let on = admin
        .signed(Method::PUT, &format!("{path}/activate"), Body::None)
        .await
        .ok();
    assert_eq!(on["userInfo"]["isActive"], true);

    admin.signed(Method::DELETE, &path, Body::None).await.ok();
    let snapshot = emu.state();
    assert!(snapshot.service_accounts[0].archived);
    assert!(!snapshot.service_accounts[0].is_active);
    admin.get(&path).await.error(StatusCode::NOT_FOUND);
    assert!(
        admin.get("/auth/service-accounts").await.ok()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    sa_client
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn service_account_token_and_key_make_signed_calls() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, client) = service_account_with_operations(
        &admin,
        "worker",
        &[
            "Auth:ServiceAccounts:Read",
            "Auth:ServiceAccounts:Deactivate",
        ],
    )
    .await;
    let id = sa["userInfo"]["userId"].as_str().unwrap();
    assert_eq!(
        client.get("/auth/service-accounts").await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    client
        .put(
            &format!("/auth/service-accounts/{id}/deactivate"),
            json!({}),
        )
        .await
        .ok();
    assert!(!emu.state().service_accounts[0].is_active);
}

#[tokio::test]
async fn service_account_without_permission_has_no_rights() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (_, client) = create_service_account(&admin, "bare", &TestKey::p256(), json!({})).await;
    let msg = client
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("Auth:ServiceAccounts:Read"), "{msg}");
}

#[tokio::test]
async fn service_account_token_cannot_create_service_accounts_or_pats() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (_, client) = service_account_with_operations(
        &admin,
        "creator",
        &["Auth:ServiceAccounts:Create", "Auth:Pats:Create"],
    )
    .await;
    let body = json!({ "name": "child", "publicKey": TestKey::p256().public_pem() });
    let msg = client
        .post("/auth/service-accounts", body.clone())
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(
        msg.contains("organization users") && msg.contains("service account token"),
        "{msg}"
    );
    let msg = client
        .post("/auth/pats", body)
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("organization users"), "{msg}");
    assert_eq!(emu.state().service_accounts.len(), 1);
    assert!(emu.state().pats.is_empty());
}

#[tokio::test]
async fn days_valid_must_be_between_1_and_730() {
    let emu = start().await;
    let admin = admin(&emu).await;
    for days in [0, 731, -1] {
        let msg = admin
            .post("/auth/service-accounts", json!({ "name": "d", "publicKey": TestKey::p256().public_pem(), "daysValid": days }))
            .await
            .error(StatusCode::BAD_REQUEST);
        assert!(msg.contains("daysValid"), "{msg}");
    }
    for days in [1, 730] {
        admin
            .post("/auth/service-accounts", json!({ "name": "d", "publicKey": TestKey::p256().public_pem(), "daysValid": days }))
            .await
            .ok();
    }
}

#[tokio::test]
async fn unknown_fields_and_bad_public_keys_are_bad_requests() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let msg = admin
        .post(
            "/auth/service-accounts",
            json!({ "name": "u", "publicKey": TestKey::p256().public_pem(), "role": "admin" }),
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(msg.contains("role"), "{msg}");
    admin
        .post("/auth/service-accounts", json!({ "name": "u", "publicKey": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----" }))
        .await
        .error(StatusCode::BAD_REQUEST);
    admin
        .post(
            "/auth/service-accounts",
            json!({ "publicKey": TestKey::p256().public_pem() }),
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    admin
        .post(
            "/auth/service-accounts",
            json!({ "name": "", "publicKey": TestKey::p256().public_pem() }),
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(emu.state().service_accounts.is_empty());
}

#[tokio::test]
async fn permission_at_creation_is_assigned_and_needs_permissions_assign() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let reader = create_permission(&admin, "reader", &["Auth:ServiceAccounts:Read"]).await;
    let (sa, client) = create_service_account(
        &admin,
        "scoped",
        &TestKey::p256(),
        json!({ "permissionId": reader }),
    )
    .await;
    assert_eq!(
        sa["userInfo"]["permissionAssignments"][0]["permissionId"],
        reader.as_str()
    );
    client.get("/auth/service-accounts").await.ok();

    // A user allowed to create service accounts but not to assign permissions.
    let creator = create_permission(&admin, "creator", &["Auth:ServiceAccounts:Create"]).await;
    let user = org_user(&emu, "creator@example.com", &[&creator]).await;
    let body =
        json!({ "name": "x", "publicKey": TestKey::p256().public_pem(), "permissionId": reader });
    let msg = user
        .post("/auth/service-accounts", body)
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("Permissions:Assign"), "{msg}");
    user.post(
        "/auth/service-accounts",
        json!({ "name": "y", "publicKey": TestKey::p256().public_pem() }),
    )
    .await
    .ok();
}

#[tokio::test]
async fn user_without_create_permission_is_forbidden() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let reader = create_permission(&admin, "reader", &["Auth:ServiceAccounts:Read"]).await;
    let user = org_user(&emu, "reader@example.com", &[&reader]).await;
    let msg = user
        .post(
            "/auth/service-accounts",
            json!({ "name": "n", "publicKey": TestKey::p256().public_pem() }),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("Auth:ServiceAccounts:Create"), "{msg}");
}

#[tokio::test]
async fn unknown_service_account_is_404() {
    let emu = start().await;
    let admin = admin(&emu).await;
    admin
        .get("/auth/service-accounts/us-aaaaa-aaaaa-aaaaaaaaaaaaaaaa")
        .await
        .error(StatusCode::NOT_FOUND);
    admin
        .put(
            "/auth/service-accounts/us-aaaaa-aaaaa-aaaaaaaaaaaaaaaa/deactivate",
            json!({}),
        )
        .await
        .error(StatusCode::NOT_FOUND);
}
