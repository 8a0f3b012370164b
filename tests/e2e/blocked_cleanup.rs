//! Deleting a resource while its connection exists but Dfns refuses it: first its user loses its
//! role (403 on the deactivation), then its user is deactivated (401: the login stops working).
//! Each time the resource says why its cleanup is blocked, keeps its finalizer, retries at the
//! resync interval rather than in a loop, and finishes by itself once Dfns accepts the connection
//! again.

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_test_support::dfns::requests_to;
use dfns_test_support::operator::{Setup, create_org_user, ready_condition};
use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::json;

const DEACTIVATE: &str = "PUT /auth/service-accounts/{id}/deactivate";
const KIND: &str = "DfnsServiceAccount";
/// The operator's resync interval here: a stalled resource is retried this often.
const RESYNC: Duration = Duration::from_secs(3);

/// With `name` blocked: a few more reconciles take at least the resync interval each, and try
/// the deactivation at most once each (a hot loop would run them back to back).
async fn assert_retried_calmly(setup: &mut Setup, name: &str) {
    // One wake-up besides the retries is allowed (the connection's own status changing).
    const MORE: u64 = 4;
    let start = tokio::time::Instant::now();
    let reconciles = setup.operator().metrics.reconcile_count(KIND);
    let attempts = requests_to(&setup.emulator, DEACTIVATE);
    setup.wait_reconciles(KIND, reconciles + MORE).await;
    let elapsed = start.elapsed();
    let done = setup.operator().metrics.reconcile_count(KIND) - reconciles;
    let tried = requests_to(&setup.emulator, DEACTIVATE) - attempts;
    assert!(
        elapsed >= RESYNC * (MORE as u32 - 2),
        "{name}: {done} reconciles in {elapsed:?}, faster than the resync interval"
    );
    assert!(
        tried <= done,
        "{name}: {tried} deactivation attempts in {done} reconciles"
    );
    let obj = setup.api::<DfnsServiceAccount>().get(name).await.unwrap();
    assert!(
        obj.finalizers().iter().any(|f| f.starts_with("dfns.io/")),
        "{name} keeps its finalizer while Dfns is not cleaned up: {:?}",
        obj.finalizers()
    );
}

#[tokio::test]
async fn a_deletion_dfns_refuses_is_reported_retried_calmly_and_completes_once_allowed() {
    let mut setup = Setup::new("e2e-blocked-cleanup").await;
    let admin = setup.admin_client();
    let role = setup
        .create_role(
            "cleaner",
            &[
                "Auth:ServiceAccounts:Create",
                "Auth:ServiceAccounts:Read",
                "Auth:ServiceAccounts:Deactivate",
            ],
        )
        .await;
    let (user, key) = create_org_user(&setup, "cleaner@example.com", &[]).await;
    let user_id = user["userId"].as_str().unwrap().to_owned();
    let assignment = admin
        .assign_permission(&role, &user_id)
        .await
        .expect("assign role");
    setup
        .create_secret(
            "cleaner-login",
            &[
                ("DFNS_CRED_ID", user["credId"].as_str().unwrap()),
                ("DFNS_PRIVATE_KEY", key.private_key_pem.expose()),
            ],
        )
        .await;
    setup
        .apply::<DfnsConnection>(
            "cleaner",
            json!({
                "apiUrl": setup.emulator.api_url(),
                "allowInsecureHttp": true,
                "orgId": setup.emulator.bootstrap().org_id,
                "auth": { "userLogin": { "username": "cleaner@example.com", "secretRef": { "name": "cleaner-login" } } },
            }),
        )
        .await;
    let mut config = setup.config();
    config.resync_interval = RESYNC;
    setup.start_operator_with(config);
    let conn = json!({ "kind": "DfnsConnection", "name": "cleaner" });
    // One resource at a time, so the reconcile count is that resource's alone.
    let create = async |setup: &Setup, name: &str| {
        setup
            .apply::<DfnsServiceAccount>(name, json!({ "connectionRef": conn }))
            .await;
        let sa = setup.wait_ready::<DfnsServiceAccount>(name).await;
        sa.status.unwrap().service_account_id.unwrap()
    };
    let forbidden_id = create(&setup, "forbidden").await;
    let active_in_dfns = |setup: &Setup, id: &str| {
        setup
            .emulator
            .state()
            .service_accounts
            .iter()
            .find(|s| s.service_account_id == id)
            .expect("in Dfns")
            .is_active
    };

    // 403: the connection's user no longer holds the role that may deactivate.
    admin
        .revoke_permission(&role, &assignment.id)
        .await
        .expect("revoke role");
    setup
        .api::<DfnsServiceAccount>()
        .delete("forbidden", &DeleteParams::default())
        .await
        .unwrap();
    let sa = setup
        .wait_condition::<DfnsServiceAccount>("forbidden", "Stalled", "True", Some("Forbidden"))
        .await;
    let message = ready_condition(sa.status.as_ref()).message;
    assert!(
        message.contains("deletion waits") && message.contains("Auth:ServiceAccounts:"),
        "the condition says the deletion waits, and what Dfns refused: {message}"
    );
    assert_retried_calmly(&mut setup, "forbidden").await;
    assert!(
        active_in_dfns(&setup, &forbidden_id),
        "still active in Dfns"
    );
    admin
        .assign_permission(&role, &user_id)
        .await
        .expect("assign role again");
    setup.wait_gone::<DfnsServiceAccount>("forbidden").await;
    assert!(
        !active_in_dfns(&setup, &forbidden_id),
        "deactivated once allowed"
    );

    // 401: the connection's user is deactivated, so its login and session stop working.
    let unauthorized_id = create(&setup, "unauthorized").await;
    admin
        .deactivate_user(&user_id)
        .await
        .expect("deactivate user");
    setup
        .api::<DfnsServiceAccount>()
        .delete("unauthorized", &DeleteParams::default())
        .await
        .unwrap();
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(
            "unauthorized",
            "Ready",
            "False",
            Some("CleanupBlocked"),
        )
        .await;
    let message = ready_condition(sa.status.as_ref()).message;
    assert!(
        message.contains("cannot clean up in Dfns")
            && message.contains("cleaner")
            && message.contains("dfns.io/skip-cleanup"),
        "the condition says the cleanup is blocked, by which connection, and the way out: {message}"
    );
    setup
        .wait_condition::<DfnsConnection>("cleaner", "Ready", "False", Some("Unauthorized"))
        .await;
    assert_retried_calmly(&mut setup, "unauthorized").await;
    assert!(
        active_in_dfns(&setup, &unauthorized_id),
        "still active in Dfns"
    );
    admin.activate_user(&user_id).await.expect("activate user");
    setup.wait_gone::<DfnsServiceAccount>("unauthorized").await;
    assert!(
        !active_in_dfns(&setup, &unauthorized_id),
        "deactivated once allowed"
    );
    setup.wait_ready::<DfnsConnection>("cleaner").await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
