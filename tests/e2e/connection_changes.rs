//! A connection's identity changes (docs/architecture.md, "Connection rules"): a credential
//! remembers the endpoint and organization it was minted at; when its connection moves, it stalls
//! with `ConnectionChanged` instead of re-minting or rewriting its Secret, and nothing is sent to
//! the new place with its ids. A connection deleted and re-created under the same name is served
//! by a new client.

use dfns_client::keys::PrivateKey;
use dfns_emulator::RunningEmulator;
use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use dfns_operator::controller::ControllerConfig;
use dfns_operator::controller::allowed_hosts::AllowedHosts;
use dfns_test_support::dfns::{UserSession, requests_to, start_emulator};
use dfns_test_support::operator::{Setup, ready_condition, secret_text};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

/// Lets the first emulator's admin login Secret log in at `other` too, as `other`'s admin: the
/// same credential id and key registered for that admin. One Secret then serves connections to
/// either place, so only the connection's spec tells them apart.
async fn share_admin_login(setup: &Setup, other: &RunningEmulator) {
    let theirs = &other.bootstrap().admin;
    let session = UserSession::login(
        other,
        &theirs.username,
        &theirs.cred_id,
        &theirs.private_key,
    )
    .await;
    let ours = &setup.emulator.bootstrap().admin;
    let public = PrivateKey::from_pem(&ours.private_key)
        .unwrap()
        .public_key_pem()
        .unwrap();
    session
        .register_key_credential(&ours.cred_id, &public, &ours.private_key)
        .await;
}

/// The `DfnsConnection` `name` at `emulator`, logging in with the Secret `main-login`.
async fn connection_at(setup: &Setup, name: &str, emulator: &RunningEmulator) {
    let boot = emulator.bootstrap();
    setup
        .apply::<DfnsConnection>(
            name,
            json!({
                "apiUrl": emulator.api_url(),
                "allowInsecureHttp": true,
                "orgId": boot.org_id,
                "auth": { "userLogin": { "username": boot.admin.username, "secretRef": { "name": "main-login" } } },
            }),
        )
        .await;
}

/// The operator's configuration with `other`'s host allowed too: these tests are about a
/// connection moving between allowed places (moving to a host that is not allowed is
/// `hostile_endpoints`' subject).
fn allowing(setup: &Setup, other: &RunningEmulator) -> ControllerConfig {
    let host = other
        .api_url()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    ControllerConfig {
        allowed_api_hosts: AllowedHosts::parse(&format!("{},{host}", setup.allowed_api_hosts()))
            .expect("host patterns"),
        ..setup.config()
    }
}

fn identity_requests(emulator: &RunningEmulator) -> u64 {
    emulator
        .request_counts()
        .by_endpoint
        .iter()
        .filter(|(endpoint, _)| endpoint.contains("/auth/service-accounts"))
        .map(|(_, counts)| counts.requests)
        .sum()
}

#[tokio::test]
async fn a_connection_moved_to_another_endpoint_stalls_its_credentials_and_sends_nothing_there() {
    let mut setup = Setup::new("e2e-moved").await;
    let elsewhere = start_emulator().await;
    share_admin_login(&setup, &elsewhere).await;
    setup.admin_connection("main", json!({})).await;
    setup.start_operator_with(allowing(&setup, &elsewhere));
    let main = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>("app", json!({ "connectionRef": main }))
        .await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("app").await;
    let id = sa
        .status
        .as_ref()
        .unwrap()
        .service_account_id
        .clone()
        .unwrap();
    assert_eq!(
        sa.status.as_ref().unwrap().api_url.as_deref(),
        Some(setup.emulator.api_url()),
        "the endpoint it was minted at is recorded"
    );
    let secret_before = setup.secrets().get("app").await.unwrap().data;

    // The connection now names another endpoint and organization (reachable, and accepting the
    // same login): the credential stalls, nothing is minted there, the Secret stays as it was.
    connection_at(&setup, "main", &elsewhere).await;
    let stalled = setup
        .wait_condition::<DfnsServiceAccount>("app", "Stalled", "True", Some("ConnectionChanged"))
        .await;
    let message = ready_condition(stalled.status.as_ref()).message;
    assert!(
        message.contains(&id)
            && message.contains(elsewhere.api_url())
            && message.contains("skip-cleanup"),
        "{message}"
    );
    assert_eq!(
        identity_requests(&elsewhere),
        0,
        "nothing sent to the new place"
    );
    assert!(elsewhere.state().service_accounts.is_empty());
    let secret = setup.secrets().get("app").await.unwrap();
    assert_eq!(secret.data, secret_before, "Secret unchanged");
    assert_eq!(
        secret_text(&secret, "DFNS_API_URL").as_deref(),
        Some(setup.emulator.api_url())
    );

    // Deleting it waits: the old ids mean nothing at the new place.
    setup
        .api::<DfnsServiceAccount>()
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "False", Some("CleanupBlocked"))
        .await;
    assert_eq!(identity_requests(&elsewhere), 0, "still nothing sent there");
    // The way forward: retire it in the old organization by hand, then skip-cleanup.
    setup
        .api::<DfnsServiceAccount>()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "dfns.io/skip-cleanup": "true" } } }),
            ),
        )
        .await
        .unwrap();
    setup.wait_gone::<DfnsServiceAccount>("app").await;
    assert_eq!(identity_requests(&elsewhere), 0);
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
    elsewhere.shutdown().await;
}

#[tokio::test]
async fn a_connection_recreated_under_the_same_name_is_served_by_a_new_client() {
    let mut setup = Setup::new("e2e-recreated").await;
    let elsewhere = start_emulator().await;
    share_admin_login(&setup, &elsewhere).await;
    setup.create_admin_login_secret("main-login").await;
    connection_at(&setup, "main", &setup.emulator).await;
    setup.start_operator_with(allowing(&setup, &elsewhere));
    let main = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>("first", json!({ "connectionRef": main }))
        .await;
    setup.wait_ready::<DfnsServiceAccount>("first").await;

    // Deleted and re-created at the other place: same name, same Secret, generation 1 again.
    let connections = setup.api::<DfnsConnection>();
    connections
        .delete("main", &DeleteParams::default())
        .await
        .unwrap();
    setup.wait_gone::<DfnsConnection>("main").await;
    connection_at(&setup, "main", &elsewhere).await;
    let recreated = connections.get("main").await.unwrap();
    assert_eq!(recreated.metadata.generation, Some(1));
    setup
        .apply::<DfnsServiceAccount>("second", json!({ "connectionRef": main }))
        .await;
    let second = setup.wait_ready::<DfnsServiceAccount>("second").await;
    let id = second.status.unwrap().service_account_id.unwrap();
    assert!(
        elsewhere
            .state()
            .service_accounts
            .iter()
            .any(|s| s.service_account_id == id),
        "created at the new place"
    );
    assert!(
        !setup
            .emulator
            .state()
            .service_accounts
            .iter()
            .any(|s| s.service_account_id == id),
        "not at the old one"
    );
    assert!(requests_to(&elsewhere, "POST /auth/service-accounts") >= 1);
    // The credential minted at the old place is not carried over.
    setup
        .wait_condition::<DfnsServiceAccount>("first", "Stalled", "True", Some("ConnectionChanged"))
        .await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
    elsewhere.shutdown().await;
}
