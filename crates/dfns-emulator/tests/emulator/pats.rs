//! Personal access tokens: created by organization users only, scoped to their user,
//! effective rights = intersection with the user's, stopped when the user is deactivated.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn create_pat_and_use_its_token_and_key() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (pat, client) = create_pat(
        &admin,
        "laptop",
        &TestKey::p256(),
        json!({ "externalId": "k8s-uid", "daysValid": 7 }),
    )
    .await;
    let id = pat["tokenId"].as_str().unwrap();
    assert_eq!(pat["kind"], "Pat");
    assert_eq!(pat["linkedUserId"], emu.bootstrap().admin.user_id.as_str());
    assert!(pat.get("externalId").is_none(), "a request field only");
    let claims = jwt_claims(pat["accessToken"].as_str().unwrap());
    assert_eq!(claims["https://custom/app_metadata"]["tokenKind"], "Pat");

    // Without permissionId the PAT carries its user's rights: it may read service accounts.
    client.get("/auth/service-accounts").await.ok();
    // It lists its user's PATs, without tokens.
    let list = client.get("/auth/pats").await.ok();
    assert_eq!(list["items"][0]["tokenId"], id);
    assert!(list["items"][0].get("accessToken").is_none());
    // Signed calls with its own key work, e.g. renaming then deactivating itself.
    client
        .put(&format!("/auth/pats/{id}"), json!({ "name": "renamed" }))
        .await
        .ok();
    client
        .put(&format!("/auth/pats/{id}/deactivate"), json!({}))
        .await
        .ok();
    client
        .get("/auth/pats")
        .await
        .error(StatusCode::UNAUTHORIZED);
    admin
        .signed(
            Method::PUT,
            &format!("/auth/pats/{id}/activate"),
            Body::None,
        )
        .await
        .ok();
    client.get("/auth/pats").await.ok();
    admin
        .signed(Method::DELETE, &format!("/auth/pats/{id}"), Body::None)
        .await
        .ok();
    client
        .get("/auth/pats")
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert!(emu.state().pats[0].archived);
    admin
        .get(&format!("/auth/pats/{id}"))
        .await
        .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pat_token_cannot_create_a_pat() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (_, client) = create_pat(&admin, "p", &TestKey::p256(), json!({})).await;
    let msg = client
        .post(
            "/auth/pats",
            json!({ "name": "child", "publicKey": TestKey::p256().public_pem() }),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(
        msg.contains("personal access token") && msg.contains("organization users"),
        "{msg}"
    );
    assert_eq!(emu.state().pats.len(), 1);
}

#[tokio::test]
async fn pat_rights_are_the_intersection_with_its_users_rights() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let user_perm = create_permission(
        &admin,
        "user",
        &[
            "Auth:Pats:Create",
            "Auth:ServiceAccounts:Read",
            "Permissions:Read",
        ],
    )
    .await;
    let pat_perm = create_permission(
        &admin,
        "pat",
        &["Auth:ServiceAccounts:Read", "Auth:ServiceAccounts:Create"],
    )
    .await;
    let user = org_user(&emu, "dev@example.com", &[&user_perm]).await;
    let (_, pat) = create_pat(
        &user,
        "scoped",
        &TestKey::p256(),
        json!({ "permissionId": pat_perm }),
    )
    .await;
    // Both grant Read.
    pat.get("/auth/service-accounts").await.ok();
    // The user has Permissions:Read but the PAT's own permission does not.
    pat.get("/permissions").await.error(StatusCode::FORBIDDEN);
    // Revoking the user's Read removes it from the PAT as well.
    let assignments = admin
        .get(&format!("/permissions/{user_perm}/assignments"))
        .await
        .ok();
    let assignment = assignments["items"][0]["id"].as_str().unwrap();
    admin
        .signed(
            Method::DELETE,
            &format!("/permissions/{user_perm}/assignments/{assignment}"),
            Body::None,
        )
        .await
        .ok();
    pat.get("/auth/service-accounts")
        .await
        .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn deactivating_a_user_stops_its_pats_and_reactivating_restores_them() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let perm = create_permission(
        &admin,
        "pats",
        &["Auth:Pats:Create", "Auth:ServiceAccounts:Read"],
    )
    .await;
    let user = org_user(&emu, "leaver@example.com", &[&perm]).await;
    let (_, pat) = create_pat(&user, "p", &TestKey::p256(), json!({})).await;
    let user_id = jwt_claims(&user.token)["https://custom/app_metadata"]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    pat.get("/auth/service-accounts").await.ok();

    admin
        .signed(
            Method::PUT,
            &format!("/auth/users/{user_id}/deactivate"),
            Body::None,
        )
        .await
        .ok();
    pat.get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);
    user.get("/auth/service-accounts")
        .await
        .error(StatusCode::UNAUTHORIZED);

    admin
        .signed(
            Method::PUT,
            &format!("/auth/users/{user_id}/activate"),
            Body::None,
        )
        .await
        .ok();
    pat.get("/auth/service-accounts").await.ok();
}

#[tokio::test]
async fn pats_of_other_users_are_invisible() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let perm = create_permission(&admin, "pats", &["Auth:Pats:Create"]).await;
    let user = org_user(&emu, "other@example.com", &[&perm]).await;
    let (pat, _) = create_pat(&admin, "admins", &TestKey::p256(), json!({})).await;
    let id = pat["tokenId"].as_str().unwrap();
    assert!(
        user.get("/auth/pats").await.ok()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    user.get(&format!("/auth/pats/{id}"))
        .await
        .error(StatusCode::NOT_FOUND);
    user.put(&format!("/auth/pats/{id}/deactivate"), json!({}))
        .await
        .error(StatusCode::NOT_FOUND);
    assert!(emu.state().pats[0].is_active);
}

#[tokio::test]
async fn pat_validity_bounds_and_seconds_valid() {
    let emu = start().await;
    let admin = admin(&emu).await;
    for body in [
        json!({ "daysValid": 0 }),
        json!({ "daysValid": 731 }),
        json!({ "secondsValid": 0 }),
    ] {
        let mut b = json!({ "name": "v", "publicKey": TestKey::p256().public_pem() });
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        admin
            .post("/auth/pats", b)
            .await
            .error(StatusCode::BAD_REQUEST);
    }
    let (pat, _) = create_pat(
        &admin,
        "short",
        &TestKey::p256(),
        json!({ "secondsValid": 600 }),
    )
    .await;
    let claims = jwt_claims(pat["accessToken"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    admin
        .post("/auth/pats", json!({ "name": "x", "publicKey": TestKey::p256().public_pem(), "expiresAt": "2030-01-01" }))
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn user_without_pats_create_is_forbidden() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let perm = create_permission(&admin, "reader", &["Auth:ServiceAccounts:Read"]).await;
    let user = org_user(&emu, "ro@example.com", &[&perm]).await;
    let msg = user
        .post(
            "/auth/pats",
            json!({ "name": "p", "publicKey": TestKey::p256().public_pem() }),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("Auth:Pats:Create"), "{msg}");
}
