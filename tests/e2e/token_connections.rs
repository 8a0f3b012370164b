//! Token-mode connections (`auth.token`): a Secret holding a token, its credential id and its key
//! is a working connection, also when this operator wrote that Secret for a DfnsServiceAccount or
//! a DfnsPersonalAccessToken. Dfns lets only organization users create service accounts and PATs,
//! so a resource asking a token connection for one is refused clearly, before any Dfns call.

use dfns_client::IdentityKind;
use dfns_client::types::permission::CreatePermissionRequest;
use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::dfns::{mint, requests_to};
use dfns_test_support::operator::{Setup, ready_condition};
use serde_json::json;

/// A token-mode DfnsConnection on Secret `secret`, allowing role `role`.
async fn token_connection(setup: &Setup, name: &str, secret: &str, role: &str) {
    setup
        .apply::<DfnsConnection>(
            name,
            json!({
                "apiUrl": setup.emulator.api_url(),
                "allowInsecureHttp": true,
                "auth": { "token": { "secretRef": { "name": secret } } },
                "allowedPermissionIds": [role],
            }),
        )
        .await;
}

/// Waits for connection `name` to be Ready and returns the identity it recorded (kind, user id).
async fn ready_identity(setup: &Setup, name: &str) -> (String, String) {
    let connection = setup.wait_ready::<DfnsConnection>(name).await;
    let identity = connection
        .status
        .and_then(|s| s.identity)
        .unwrap_or_else(|| panic!("connection {name} recorded no identity"));
    (identity.kind, identity.user_id)
}

#[tokio::test]
async fn token_secrets_minted_by_hand_or_by_this_operator_serve_as_connections() {
    let mut setup = Setup::new("e2e-token-conn").await;
    let admin = setup.admin_client();
    let role = admin
        .create_permission(&CreatePermissionRequest {
            name: "reader".into(),
            operations: vec!["Auth:ServiceAccounts:Read".into()],
        })
        .await
        .expect("create role")
        .id;
    setup
        .admin_connection("admin", json!({ "allowedPermissionIds": [role] }))
        .await;
    // A service account minted outside the operator, its token put in a Secret by hand.
    let by_hand = mint(&admin, IdentityKind::ServiceAccount, "by-hand").await;
    setup
        .create_secret(
            "by-hand-token",
            &[
                ("DFNS_AUTH_TOKEN", by_hand.token.expose()),
                ("DFNS_CRED_ID", &by_hand.cred_id),
                ("DFNS_PRIVATE_KEY", by_hand.private_key_pem.expose()),
            ],
        )
        .await;
    setup.start_operator();
    let admin_ref = json!({ "kind": "DfnsConnection", "name": "admin" });
    setup
        .apply::<DfnsServiceAccount>(
            "robot",
            json!({ "connectionRef": admin_ref, "permissionId": role }),
        )
        .await;
    setup
        .apply::<DfnsPersonalAccessToken>(
            "pat",
            json!({ "connectionRef": admin_ref, "permissionId": role }),
        )
        .await;
    let robot = setup.wait_ready::<DfnsServiceAccount>("robot").await;
    let robot_id = robot.status.unwrap().service_account_id.unwrap();
    setup.wait_ready::<DfnsPersonalAccessToken>("pat").await;

    // The Secrets the operator wrote, used as they are, are connections' Secrets.
    token_connection(&setup, "by-hand", "by-hand-token", &role).await;
    token_connection(&setup, "as-robot", "robot", &role).await;
    token_connection(&setup, "as-pat", "pat", &role).await;
    assert_eq!(
        ready_identity(&setup, "by-hand").await,
        ("ServiceAccount".to_owned(), by_hand.id.clone())
    );
    assert_eq!(
        ready_identity(&setup, "as-robot").await,
        ("ServiceAccount".to_owned(), robot_id)
    );
    // A PAT acts as the user who made it: the operator's connection user, the admin.
    assert_eq!(
        ready_identity(&setup, "as-pat").await,
        (
            "Pat".to_owned(),
            setup.emulator.bootstrap().admin.user_id.clone()
        )
    );

    // Dfns lets no token create service accounts or PATs: the operator says so and calls nothing.
    let accounts_before = setup.emulator.state().service_accounts.len();
    let pats_before = setup.emulator.state().pats.len();
    let creates_before = requests_to(&setup.emulator, "POST /auth/service-accounts")
        + requests_to(&setup.emulator, "POST /auth/pats");
    for (resource, connection) in [("via-robot", "as-robot"), ("via-pat", "as-pat")] {
        let via = json!({ "kind": "DfnsConnection", "name": connection });
        setup
            .apply::<DfnsServiceAccount>(resource, json!({ "connectionRef": via }))
            .await;
        let sa = setup
            .wait_condition::<DfnsServiceAccount>(resource, "Stalled", "True", Some("Forbidden"))
            .await;
        let message = ready_condition(sa.status.as_ref()).message;
        assert!(
            message.contains(connection) && message.contains("auth.userLogin"),
            "the refusal names the connection and the fix: {message}"
        );
    }
    setup
        .apply::<DfnsPersonalAccessToken>(
            "pat-via-pat",
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "as-pat" }, "permissionId": role }),
        )
        .await;
    setup
        .wait_condition::<DfnsPersonalAccessToken>(
            "pat-via-pat",
            "Stalled",
            "True",
            Some("Forbidden"),
        )
        .await;
    let state = setup.emulator.state();
    assert_eq!(
        state.service_accounts.len(),
        accounts_before,
        "no service account created"
    );
    assert_eq!(state.pats.len(), pats_before, "no PAT created");
    assert_eq!(
        requests_to(&setup.emulator, "POST /auth/service-accounts")
            + requests_to(&setup.emulator, "POST /auth/pats"),
        creates_before,
        "refused before asking Dfns"
    );
    setup.stop_operator().await;
    setup
        .leak_check()
        .with_secret("the hand-minted token", by_hand.token.expose())
        .with_secret("the hand-minted key", by_hand.private_key_pem.expose())
        .assert_clean()
        .await;
}
