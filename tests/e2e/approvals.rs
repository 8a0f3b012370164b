//! The operator in an organization whose Dfns policy holds writes for approval (issue #12): a
//! held write is reported `PendingApproval` and never resent while pending (proven by counting
//! the writes while the operator keeps looking at the approval), continues once approved, and
//! stalls with the approver's reason when denied; likewise for a create.

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_test_support::dfns::{decide_change_request, requests_to, require_approval};
use dfns_test_support::operator::{Setup, condition};
use serde_json::{Value, json};

const APPROVAL_READS: &str = "GET /v2/policy-approvals/{id}";
const ASSIGNMENTS: &str = "POST /permissions/{id}/assignments";
const SA_CREATES: &str = "POST /auth/service-accounts";
/// How many looks at the approval prove that the held write is not resent meanwhile.
const LOOKS: u64 = 5;

/// A connection allowing `roles`, and an operator looking at approvals every 2 s.
async fn start(setup: &mut Setup, roles: &[&str]) {
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": roles }))
        .await;
    let mut config = setup.config();
    config.approval_check_interval = Duration::from_secs(2);
    setup.start_operator_with(config);
    setup.wait_ready::<DfnsConnection>("main").await;
}

fn spec(permission: Option<&str>) -> Value {
    let mut spec = json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" } });
    if let Some(p) = permission {
        spec["permissionId"] = json!(p);
    }
    spec
}

/// Waits until the operator has looked at the approval `LOOKS` more times since `from`.
async fn wait_for_looks(setup: &Setup, from: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while requests_to(&setup.emulator, APPROVAL_READS) < from + LOOKS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operator looked at the approval {} times",
            requests_to(&setup.emulator, APPROVAL_READS) - from
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The resource reports `PendingApproval` naming `operation`, its status holds the change
/// request's ids, and the operator keeps looking without resending `write`; returns the change
/// request id.
async fn held_without_resend(setup: &Setup, operation: &str, write: &str, before: u64) -> String {
    let sa = setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "False", Some("PendingApproval"))
        .await;
    let status = sa.status.unwrap();
    let ready = condition(&status.conditions, "Ready");
    assert!(
        ready.message.contains(operation) && ready.message.contains("not sent again"),
        "{}",
        ready.message
    );
    let pending = status.pending_approval.expect("status.pendingApproval");
    let change_request = pending.change_request_id.expect("change request id");
    assert!(pending.approval_id.is_some(), "approval id recorded");
    assert!(
        !ready.message.contains(&change_request),
        "no per-attempt id in the condition message: {}",
        ready.message
    );
    let looks = requests_to(&setup.emulator, APPROVAL_READS);
    wait_for_looks(setup, looks).await;
    assert_eq!(
        requests_to(&setup.emulator, write) - before,
        1,
        "{write} sent once while its approval was pending"
    );
    change_request
}

/// A Ready service account with role `a`, whose spec then asks for `b` while assignments need
/// approval; returns the setup, role `b`, and the held change request.
async fn assignment_held(prefix: &str) -> (Setup, String, String) {
    let mut setup = Setup::new(prefix).await;
    let a = setup.create_role("role-a", &["Auth:Pats:Create"]).await;
    let b = setup.create_role("role-b", &["Auth:Pats:Create"]).await;
    start(&mut setup, &[&a, &b]).await;
    setup
        .apply::<DfnsServiceAccount>("app", spec(Some(&a)))
        .await;
    setup.wait_ready::<DfnsServiceAccount>("app").await;
    require_approval(&setup.emulator, &["assignment"]).await;
    let before = requests_to(&setup.emulator, ASSIGNMENTS);
    setup
        .apply::<DfnsServiceAccount>("app", spec(Some(&b)))
        .await;
    let change_request = held_without_resend(
        &setup,
        &format!("assign permission {b}"),
        ASSIGNMENTS,
        before,
    )
    .await;
    (setup, b, change_request)
}

#[tokio::test]
async fn a_held_assignment_is_not_resent_while_pending_and_lands_once_approved() {
    let (mut setup, role, change_request) = assignment_held("e2e-appr-assign-ok").await;
    decide_change_request(&setup.emulator, &change_request, "approve", None).await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("app").await;
    let status = sa.status.unwrap();
    assert_eq!(
        status.assigned_permission_id.as_deref(),
        Some(role.as_str())
    );
    assert!(status.pending_approval.is_none());
    let id = status.service_account_id.unwrap();
    let state = setup.emulator.state();
    let in_dfns = state
        .service_accounts
        .iter()
        .find(|s| s.service_account_id == id)
        .unwrap();
    assert_eq!(in_dfns.permission_ids, vec![role], "approved role only");
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_denied_assignment_stalls_with_the_approvers_reason() {
    let (mut setup, _role, change_request) = assignment_held("e2e-appr-assign-no").await;
    let before = requests_to(&setup.emulator, ASSIGNMENTS);
    decide_change_request(
        &setup.emulator,
        &change_request,
        "deny",
        Some("not this role"),
    )
    .await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>("app", "Stalled", "True", Some("ApprovalDenied"))
        .await;
    let status = sa.status.unwrap();
    let stalled = condition(&status.conditions, "Stalled");
    assert!(
        stalled.message.contains("not this role"),
        "{}",
        stalled.message
    );
    let pending = status.pending_approval.expect("the decision is kept");
    assert_eq!(pending.outcome.as_deref(), Some("Denied"));
    assert_eq!(
        requests_to(&setup.emulator, ASSIGNMENTS),
        before,
        "not resent"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

/// A service account applied while creates need approval; returns the held change request.
async fn create_held(prefix: &str) -> (Setup, String) {
    let mut setup = Setup::new(prefix).await;
    start(&mut setup, &[]).await;
    require_approval(&setup.emulator, &["service-account-create"]).await;
    let before = requests_to(&setup.emulator, SA_CREATES);
    setup.apply::<DfnsServiceAccount>("app", spec(None)).await;
    let change_request =
        held_without_resend(&setup, "create service account", SA_CREATES, before).await;
    (setup, change_request)
}

#[tokio::test]
async fn an_approved_create_stalls_without_token_and_its_unusable_identity_is_retired() {
    let (mut setup, change_request) = create_held("e2e-appr-create-ok").await;
    decide_change_request(&setup.emulator, &change_request, "approve", None).await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(
            "app",
            "Stalled",
            "True",
            Some("ApprovedWithoutToken"),
        )
        .await;
    let stalled = condition(&sa.status.as_ref().unwrap().conditions, "Stalled");
    assert!(stalled.message.contains("Exempt"), "{}", stalled.message);
    assert_eq!(
        requests_to(&setup.emulator, SA_CREATES),
        1,
        "not created again"
    );
    // The identity the approver let through carries the resource's key and nobody's token.
    let state = setup.emulator.state();
    let created = state
        .change_requests
        .iter()
        .find(|c| c.id == change_request)
        .and_then(|c| c.entity_id.clone())
        .expect("the approved create made an identity");
    let in_dfns = state
        .service_accounts
        .iter()
        .find(|s| s.service_account_id == created)
        .unwrap();
    assert!(
        !in_dfns.is_active && in_dfns.archived,
        "retired: {in_dfns:?}"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_denied_create_stalls_with_the_reason_and_is_not_resent() {
    let (mut setup, change_request) = create_held("e2e-appr-create-no").await;
    decide_change_request(
        &setup.emulator,
        &change_request,
        "deny",
        Some("no new identities"),
    )
    .await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>("app", "Stalled", "True", Some("ApprovalDenied"))
        .await;
    let stalled = condition(&sa.status.as_ref().unwrap().conditions, "Stalled");
    assert!(
        stalled.message.contains("no new identities"),
        "{}",
        stalled.message
    );
    assert_eq!(requests_to(&setup.emulator, SA_CREATES), 1, "not resent");
    assert!(
        setup
            .emulator
            .state()
            .service_accounts
            .iter()
            .all(|s| s.name != format!("{}-app", setup.namespace()))
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

const SA_DEACTIVATIONS: &str = "PUT /auth/service-accounts/{id}/deactivate";

/// Deleting a resource whose `deletionPolicy: Deactivate` needs approval: the deletion waits
/// (`PendingApproval`, the finalizer kept, the deactivation sent once while the operator keeps
/// looking), a denial blocks it with the reason until `dfns.io/skip-cleanup` releases it, and an
/// approval lets it finish.
#[tokio::test]
async fn a_deletion_whose_deactivation_needs_approval_waits_and_is_never_resent() {
    let mut setup = Setup::new("e2e-approve-delete").await;
    start(&mut setup, &[]).await;
    for name in ["app", "other"] {
        setup.apply::<DfnsServiceAccount>(name, spec(None)).await;
        setup.wait_ready::<DfnsServiceAccount>(name).await;
    }
    require_approval(&setup.emulator, &["service-account-deactivate"]).await;
    let api = setup.api::<DfnsServiceAccount>();
    let mut held = Vec::new();
    for name in ["app", "other"] {
        let before = requests_to(&setup.emulator, SA_DEACTIVATIONS);
        api.delete(name, &Default::default()).await.unwrap();
        let sa = setup
            .wait_condition::<DfnsServiceAccount>(name, "Ready", "False", Some("PendingApproval"))
            .await;
        let status = sa.status.unwrap();
        let message = &condition(&status.conditions, "Ready").message;
        assert!(
            message.contains("deactivate") && message.contains("not sent again"),
            "{message}"
        );
        let pending = status.pending_approval.expect("status.pendingApproval");
        let looks = requests_to(&setup.emulator, APPROVAL_READS);
        wait_for_looks(&setup, looks).await;
        assert_eq!(
            requests_to(&setup.emulator, SA_DEACTIVATIONS) - before,
            1,
            "{name}: the deactivation was sent once while its approval was pending"
        );
        assert!(
            api.get_opt(name).await.unwrap().is_some(),
            "{name}: the deletion waits"
        );
        held.push(pending.change_request_id.expect("change request id"));
    }

    // Approved: the deactivation is done by Dfns and the deletion finishes.
    decide_change_request(&setup.emulator, &held[0], "approve", None).await;
    setup.wait_gone::<DfnsServiceAccount>("app").await;

    // Denied: blocked with the reason, never resent, until skip-cleanup releases it.
    let before = requests_to(&setup.emulator, SA_DEACTIVATIONS);
    decide_change_request(&setup.emulator, &held[1], "deny", Some("keep it running")).await;
    let blocked = setup
        .wait_condition::<DfnsServiceAccount>("other", "Ready", "False", Some("CleanupBlocked"))
        .await;
    let message = serde_json::to_string(&blocked.status).unwrap();
    assert!(
        message.contains("keep it running") && message.contains("skip-cleanup"),
        "{message}"
    );
    assert_eq!(
        requests_to(&setup.emulator, SA_DEACTIVATIONS),
        before,
        "not resent after the denial"
    );
    api.patch(
        "other",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({ "metadata": { "annotations": { "dfns.io/skip-cleanup": "true" } } }),
        ),
    )
    .await
    .unwrap();
    setup.wait_gone::<DfnsServiceAccount>("other").await;
    let state = setup.emulator.state();
    let active: Vec<bool> = state.service_accounts.iter().map(|s| s.is_active).collect();
    assert_eq!(
        active.iter().filter(|a| !**a).count(),
        1,
        "only the approved one deactivated: {active:?}"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
