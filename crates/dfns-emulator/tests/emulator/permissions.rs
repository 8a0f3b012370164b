//! Permissions and assignments.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn an_assigned_permission_grants_its_operations_until_revoked() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let created = admin
        .post(
            "/permissions",
            json!({ "name": "ops", "operations": ["Auth:ServiceAccounts:Read"] }),
        )
        .await
        .ok();
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("pm-"));
    assert_eq!(created["isArchived"], false);
    assert_eq!(
        admin.get(&format!("/permissions/{id}")).await.ok()["name"],
        "ops"
    );
    let names: Vec<String> = admin.get("/permissions").await.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["DfnsFullAdminAccess", "ops"]);

    let (sa, sa_client) = create_service_account(&admin, "sa", &TestKey::p256(), json!({})).await;
    let sa_id = sa["userInfo"]["userId"].as_str().unwrap();
    sa_client
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::FORBIDDEN);
    let assignment = admin
        .post(
            &format!("/permissions/{id}/assignments"),
            json!({ "identityId": sa_id }),
        )
        .await
        .ok();
    let assignment_id = assignment["id"].as_str().unwrap();
    assert!(assignment_id.starts_with("as-"));
    assert_eq!(assignment["identityId"], sa_id);
    sa_client.get("/auth/service-accounts").await.ok();
    let got = admin
        .get(&format!("/auth/service-accounts/{sa_id}"))
        .await
        .ok();
    assert_eq!(
        got["userInfo"]["permissionAssignments"][0]["assignmentId"],
        assignment_id
    );

    let listed = admin
        .get(&format!("/permissions/{id}/assignments"))
        .await
        .ok();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // Assigning twice conflicts.
    admin
        .post(
            &format!("/permissions/{id}/assignments"),
            json!({ "identityId": sa_id }),
        )
        .await
        .error(StatusCode::CONFLICT);

    admin
        .signed(
            Method::DELETE,
            &format!("/permissions/{id}/assignments/{assignment_id}"),
            Body::None,
        )
        .await
        .ok();
    sa_client
        .get("/auth/service-accounts")
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(
        admin
            .get(&format!("/permissions/{id}/assignments"))
            .await
            .ok()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn pat_can_be_assigned_by_token_id() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let id = create_permission(&admin, "p", &["Auth:ServiceAccounts:Read"]).await;
    let (pat, _) = create_pat(&admin, "pat", &TestKey::p256(), json!({})).await;
    let token_id = pat["tokenId"].as_str().unwrap();
    admin
        .post(
            &format!("/permissions/{id}/assignments"),
            json!({ "identityId": token_id }),
        )
        .await
        .ok();
    assert_eq!(emu.state().pats[0].permission_ids, vec![id]);
}

#[tokio::test]
async fn unknown_operations_identities_and_fields_are_refused() {
    let emu = start().await;
    let admin = admin(&emu).await;
    admin
        .post(
            "/permissions",
            json!({ "name": "bad", "operations": ["Auth:Everything"] }),
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    admin
        .post("/permissions", json!({ "name": "empty", "operations": [] }))
        .await
        .error(StatusCode::BAD_REQUEST);
    admin
        .post(
            "/permissions",
            json!({ "name": "x", "operations": ["Permissions:Read"], "extra": 1 }),
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    let id = create_permission(&admin, "ok", &["Permissions:Read"]).await;
    admin
        .post(
            &format!("/permissions/{id}/assignments"),
            json!({ "identityId": "us-aaaaa-aaaaa-aaaaaaaaaaaaaaaa" }),
        )
        .await
        .error(StatusCode::NOT_FOUND);
    admin
        .post(
            "/permissions/pm-aaaaa-aaaaa-aaaaaaaaaaaaaaaa/assignments",
            json!({ "identityId": emu.bootstrap().admin.user_id }),
        )
        .await
        .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn permission_routes_check_their_operations() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let read_only = create_permission(&admin, "read", &["Permissions:Read"]).await;
    let user = org_user(&emu, "viewer@example.com", &[&read_only]).await;
    user.get("/permissions").await.ok();
    let msg = user
        .post(
            "/permissions",
            json!({ "name": "n", "operations": ["Permissions:Read"] }),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("Permissions:Create"), "{msg}");
    let msg = user
        .post(
            &format!("/permissions/{read_only}/assignments"),
            json!({ "identityId": emu.bootstrap().admin.user_id }),
        )
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("Permissions:Assign"), "{msg}");
    user.get(&format!("/permissions/{read_only}/assignments"))
        .await
        .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admin_full_access_assignment_is_immutable() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let full = &emu.state().permissions[0];
    assert_eq!(full.name, "DfnsFullAdminAccess");
    let assignments = admin
        .get(&format!("/permissions/{}/assignments", full.id))
        .await
        .ok();
    let assignment = assignments["items"][0]["id"].as_str().unwrap();
    admin
        .signed(
            Method::DELETE,
            &format!("/permissions/{}/assignments/{assignment}", full.id),
            Body::None,
        )
        .await
        .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn permissions_list_paginates() {
    let emu = start().await;
    let admin = admin(&emu).await;
    for i in 0..3 {
        create_permission(&admin, &format!("p{i}"), &["Permissions:Read"]).await;
    }
    let first = admin.get("/permissions?limit=2").await.ok();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let token = first["nextPageToken"].as_str().unwrap();
    let second = admin
        .get(&format!("/permissions?limit=2&paginationToken={token}"))
        .await
        .ok();
    assert_eq!(second["items"].as_array().unwrap().len(), 2);
    assert!(second.get("nextPageToken").is_none());
}
