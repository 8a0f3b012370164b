//! Approval policies: held writes answer 202 with a change request, change nothing until a
//! decision through `/_emulator/change-requests/{id}/approve|deny`, and are visible in
//! `/_emulator/state` and `GET /v2/policy-approvals`.

use dfns_emulator::{ApprovalOperation, Profile};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

async fn require_approval(emu: &dfns_emulator::RunningEmulator, operations: &[&str]) {
    let body = json!({ "operations": operations });
    let set = control(emu, Method::PUT, "/_emulator/approvals", Some(body))
        .await
        .ok();
    assert_eq!(
        set["operations"].as_array().unwrap().len(),
        operations.len()
    );
}

async fn decide(
    emu: &dfns_emulator::RunningEmulator,
    id: &str,
    verb: &str,
    body: Option<Value>,
) -> Reply {
    control(
        emu,
        Method::POST,
        &format!("/_emulator/change-requests/{id}/{verb}"),
        body,
    )
    .await
}

/// The policy approval deciding change request `id`, as a client finds it: by the change
/// request's `approvalId`, and the same in the list.
async fn approval_of(emu: &dfns_emulator::RunningEmulator, admin: &Client, id: &str) -> Value {
    let c = emu
        .state()
        .change_requests
        .into_iter()
        .find(|c| c.id == id)
        .unwrap();
    let by_id = admin
        .get(&format!("/v2/policy-approvals/{}", c.approval_id))
        .await
        .ok();
    assert_eq!(by_id["activity"]["changeRequest"]["id"], id);
    assert_eq!(
        by_id["activity"]["changeRequest"]["approvalId"],
        c.approval_id.as_str()
    );
    let list = admin.get("/v2/policy-approvals").await.ok();
    assert!(list["items"].as_array().unwrap().contains(&by_id), "{list}");
    by_id
}

#[tokio::test]
async fn a_held_assignment_answers_202_and_lands_only_once_approved() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "held", &TestKey::p256(), json!({})).await;
    let sa_id = sa["userInfo"]["userId"].as_str().unwrap();
    let perm = create_permission(&admin, "reader", &["Auth:ServiceAccounts:Read"]).await;
    require_approval(&emu, &["assignment"]).await;

    let path = format!("/permissions/{perm}/assignments");
    let held = admin
        .post(&path, json!({ "identityId": sa_id }))
        .await
        .expect(StatusCode::ACCEPTED);
    let id = held["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("cr-"), "{held}");
    assert_eq!(held["kind"], "Assignment");
    assert_eq!(held["operationKind"], "Create");
    assert_eq!(held["status"], "Pending");
    assert_eq!(
        held["requester"]["userId"],
        emu.bootstrap().admin.user_id.as_str()
    );
    assert_eq!(held["body"], json!({ "identityId": sa_id }));
    let state = emu.state();
    assert_eq!(state.change_requests.len(), 1);
    assert_eq!(state.change_requests[0].status, "Pending");
    assert_eq!(
        state.change_requests[0].operation,
        ApprovalOperation::Assignment
    );
    assert!(
        state.service_accounts[0].permission_ids.is_empty(),
        "nothing assigned yet"
    );
    let pending = admin.get("/v2/policy-approvals?status=Pending").await.ok();
    assert_eq!(
        pending["items"][0]["activity"]["changeRequest"]["id"],
        id.as_str()
    );
    assert_eq!(pending["items"][0]["id"], held["approvalId"]);
    assert_eq!(approval_of(&emu, &admin, &id).await["status"], "Pending");

    let applied = decide(&emu, &id, "approve", None).await.ok();
    assert_eq!(applied["status"], "Applied");
    let assignment_id = applied["entityId"].as_str().unwrap();
    assert!(assignment_id.starts_with("as-"));
    assert_eq!(
        emu.state().service_accounts[0].permission_ids,
        vec![perm.clone()]
    );
    let approval = approval_of(&emu, &admin, &id).await;
    assert_eq!(approval["status"], "Approved");
    assert_eq!(approval["decisions"][0]["value"], "Approved");
    assert_eq!(approval["activity"]["kind"], "Permissions:Assign");
    decide(&emu, &id, "approve", None)
        .await
        .error(StatusCode::CONFLICT);
    decide(&emu, &id, "deny", None)
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(
        emu.state().service_accounts[0].permission_ids.len(),
        1,
        "applied once"
    );
}

#[tokio::test]
async fn a_denied_revoke_changes_nothing_and_carries_the_reason() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let perm = create_permission(&admin, "reader", &["Auth:ServiceAccounts:Read"]).await;
    let (sa, _) = create_service_account(
        &admin,
        "kept",
        &TestKey::p256(),
        json!({ "permissionId": perm }),
    )
    .await;
    let assignment = sa["userInfo"]["permissionAssignments"][0]["assignmentId"]
        .as_str()
        .unwrap();
    require_approval(&emu, &["revoke"]).await;
    let held = admin
        .signed(
            Method::DELETE,
            &format!("/permissions/{perm}/assignments/{assignment}?force=true"),
            Body::None,
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        (&held["kind"], &held["operationKind"]),
        (&json!("Assignment"), &json!("Delete"))
    );
    assert_eq!(
        held["entityId"], assignment,
        "force does not skip the approval"
    );
    let id = held["id"].as_str().unwrap();
    let denied = decide(
        &emu,
        id,
        "deny",
        Some(json!({ "reason": "not during the freeze" })),
    )
    .await
    .ok();
    assert_eq!(denied["status"], "Rejected");
    assert_eq!(
        emu.state().service_accounts[0].permission_ids,
        vec![perm.clone()]
    );
    assert_eq!(
        emu.state().change_requests[0].reason.as_deref(),
        Some("not during the freeze")
    );
    let approval = approval_of(&emu, &admin, id).await;
    assert_eq!(approval["status"], "Denied");
    assert_eq!(approval["decisions"][0]["reason"], "not during the freeze");
    assert_eq!(
        admin.get("/v2/policy-approvals?status=Pending").await.ok()["items"],
        json!([])
    );
}

#[tokio::test]
async fn approved_creates_exist_but_their_tokens_are_shown_to_no_one() {
    let emu = start().await;
    let admin = admin(&emu).await;
    require_approval(&emu, &["service-account-create", "pat-create"]).await;
    let key = TestKey::p256();
    let body = json!({ "name": "approved", "publicKey": key.public_pem() });
    let sa_held = admin
        .post("/auth/service-accounts", body.clone())
        .await
        .expect(StatusCode::ACCEPTED);
    let pat_held = admin
        .post("/auth/pats", body)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(sa_held["kind"], "ServiceAccount");
    assert!(
        sa_held.get("entityId").is_none(),
        "nothing created yet: {sa_held}"
    );
    assert!(emu.state().service_accounts.is_empty() && emu.state().pats.is_empty());
    let issued_before = emu.issued_tokens().len();

    let sa = decide(&emu, sa_held["id"].as_str().unwrap(), "approve", None)
        .await
        .ok();
    let pat = decide(&emu, pat_held["id"].as_str().unwrap(), "approve", None)
        .await
        .ok();
    let sa_id = sa["entityId"].as_str().unwrap();
    let pat_id = pat["entityId"].as_str().unwrap();
    assert_eq!(emu.state().service_accounts[0].service_account_id, sa_id);
    assert_eq!(emu.state().pats[0].token_id, pat_id);
    assert_eq!(
        emu.issued_tokens().len(),
        issued_before + 2,
        "both tokens were signed"
    );
    let read_sa = admin
        .get(&format!("/auth/service-accounts/{sa_id}"))
        .await
        .ok();
    let read_pat = admin.get(&format!("/auth/pats/{pat_id}")).await.ok();
    for text in [
        sa.to_string(),
        pat.to_string(),
        read_sa.to_string(),
        read_pat.to_string(),
    ] {
        assert!(!text.contains("accessToken\""), "{text}");
        assert!(
            emu.issued_tokens()
                .iter()
                .all(|t| !text.contains(t.as_str()))
        );
    }
}

#[tokio::test]
async fn a_write_is_checked_before_it_is_held() {
    let emu = start().await;
    let admin = admin(&emu).await;
    require_approval(&emu, &["assignment", "pat-create"]).await;
    let (sa, sa_client) = create_service_account(&admin, "weak", &TestKey::p256(), json!({})).await;
    let perm = create_permission(&admin, "p", &["Auth:ServiceAccounts:Read"]).await;
    let body = json!({ "identityId": sa["userInfo"]["userId"] });
    sa_client
        .post(&format!("/permissions/{perm}/assignments"), body)
        .await
        .error(StatusCode::FORBIDDEN);
    admin
        .post(
            "/auth/pats",
            json!({ "name": "p", "publicKey": "not a key" }),
        )
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(emu.state().change_requests.is_empty());
    sa_client
        .get("/v2/policy-approvals")
        .await
        .error(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_approved_write_refused_by_then_is_marked_failed_with_the_reason() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "gone", &TestKey::p256(), json!({})).await;
    let sa_id = sa["userInfo"]["userId"].as_str().unwrap();
    let perm = create_permission(&admin, "p", &["Auth:ServiceAccounts:Read"]).await;
    require_approval(&emu, &["assignment"]).await;
    let held = admin
        .post(
            &format!("/permissions/{perm}/assignments"),
            json!({ "identityId": sa_id }),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    admin
        .signed(
            Method::DELETE,
            &format!("/auth/service-accounts/{sa_id}"),
            Body::None,
        )
        .await
        .ok();
    let failed = decide(&emu, held["id"].as_str().unwrap(), "approve", None)
        .await
        .ok();
    assert_eq!(failed["status"], "Failed");
    let reason = emu.state().change_requests[0].reason.clone().unwrap();
    assert!(reason.contains(sa_id), "{reason}");
    assert_eq!(
        approval_of(&emu, &admin, held["id"].as_str().unwrap()).await["status"],
        "Approved"
    );
}

#[tokio::test]
async fn approvals_control_replaces_only_the_held_operations_and_rejects_unknown_ones() {
    let emu = start_profile(Profile::lenient()).await;
    require_approval(&emu, &["revoke", "assignment"]).await;
    let profile = emu.profile();
    assert_eq!(
        profile.require_approval.into_iter().collect::<Vec<_>>(),
        vec![ApprovalOperation::Assignment, ApprovalOperation::Revoke]
    );
    assert_eq!(
        profile.public_key_form,
        Profile::lenient().public_key_form,
        "the rest stays"
    );
    control(
        &emu,
        Method::PUT,
        "/_emulator/approvals",
        Some(json!({ "operations": ["wallet-create"] })),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    let got = control(&emu, Method::GET, "/_emulator/approvals", None)
        .await
        .ok();
    assert_eq!(got, json!({ "operations": ["assignment", "revoke"] }));
    decide(&emu, "cr-nope", "approve", None)
        .await
        .error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_held_service_account_deactivation_happens_only_once_approved() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "held", &TestKey::p256(), json!({})).await;
    let id = sa["userInfo"]["userId"].as_str().unwrap().to_owned();
    require_approval(&emu, &["service-account-deactivate"]).await;
    let held = admin
        .signed(
            Method::PUT,
            &format!("/auth/service-accounts/{id}/deactivate"),
            Body::Json(json!({})),
        )
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(
        (&held["kind"], &held["operationKind"], &held["entityId"]),
        (&json!("ServiceAccount"), &json!("Update"), &json!(id))
    );
    assert!(
        emu.state().service_accounts[0].is_active,
        "nothing changes while held"
    );
    let change = held["id"].as_str().unwrap();
    assert_eq!(
        approval_of(&emu, &admin, change).await["activity"]["kind"],
        "Auth:ServiceAccounts:Deactivate"
    );
    decide(&emu, change, "approve", None).await.ok();
    assert!(
        !emu.state().service_accounts[0].is_active,
        "deactivated on approval"
    );
    assert_eq!(
        approval_of(&emu, &admin, change).await["status"],
        "Approved"
    );
}
