//! After creation: spec changes, changes made in Dfns, lost Secrets, rotated connection
//! credentials and deletion with a broken connection — each asserted in Dfns (emulator state) and
//! in the resource's conditions and Events.

use std::time::Duration;

use dfns_client::IdentityKind;
use dfns_client::types::permission::CreatePermissionRequest;
use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::operator::{Setup, secret_text};
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const CONN: fn() -> Value = || json!({ "kind": "DfnsConnection", "name": "main" });

/// An operator that compares with Dfns every `secs` seconds, so drift shows up quickly.
fn fast_resync(setup: &mut Setup, secs: u64) {
    let mut config = setup.config();
    config.resync_interval = Duration::from_secs(secs);
    setup.start_operator_with(config);
}

/// A setup with the admin connection `main` and an operator that resyncs every 2 seconds.
async fn resyncing_setup(prefix: &str) -> Setup {
    let mut setup = Setup::new(prefix).await;
    setup.admin_connection("main", json!({})).await;
    fast_resync(&mut setup, 2);
    setup
}

/// The service account `app` on connection `main`, once Ready.
async fn ready_app(setup: &Setup) -> DfnsServiceAccount {
    setup
        .apply::<DfnsServiceAccount>("app", json!({ "connectionRef": CONN() }))
        .await;
    setup.wait_ready::<DfnsServiceAccount>("app").await
}

async fn role(setup: &Setup, name: &str) -> String {
    let request = CreatePermissionRequest {
        name: name.into(),
        operations: vec!["Auth:ServiceAccounts:Read".into()],
    };
    setup
        .admin_client()
        .create_permission(&request)
        .await
        .unwrap()
        .id
}

async fn events_of(setup: &Setup, name: &str) -> Vec<(String, String)> {
    kube::Api::<Event>::namespaced(setup.kube.clone(), setup.namespace())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

async fn wait_event(setup: &Setup, name: &str, reason: &str) -> String {
    for _ in 0..300 {
        if let Some((_, note)) = events_of(setup, name)
            .await
            .into_iter()
            .find(|(r, _)| r == reason)
        {
            return note;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "no {reason} event for {name}: {:?}",
        events_of(setup, name).await
    );
}

fn sa_in_dfns(setup: &Setup, id: &str) -> dfns_emulator::ServiceAccountSnapshot {
    setup
        .emulator
        .state()
        .service_accounts
        .into_iter()
        .find(|s| s.service_account_id == id)
        .expect("in Dfns")
}

#[tokio::test]
async fn spec_changes_deactivate_activate_rename_and_move_the_role_in_dfns() {
    let mut setup = Setup::new("e2e-spec").await;
    let (first, second) = (role(&setup, "first").await, role(&setup, "second").await);
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [first, second] }))
        .await;
    setup.start_operator();
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "permissionId": first }),
        )
        .await;
    let sa = setup.wait_ready::<DfnsServiceAccount>("app").await;
    let id = sa.status.unwrap().service_account_id.unwrap();

    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "permissionId": first, "active": false }),
        )
        .await;
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "True", Some("Inactive"))
        .await;
    assert!(!sa_in_dfns(&setup, &id).is_active);

    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "permissionId": first, "active": true }),
        )
        .await;
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "True", Some("Ready"))
        .await;
    assert!(sa_in_dfns(&setup, &id).is_active);

    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "permissionId": second, "displayName": "renamed" }),
        )
        .await;
    for _ in 0..300 {
        let dfns = sa_in_dfns(&setup, &id);
        if dfns.name == "renamed" && dfns.permission_ids == vec![second.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dfns = sa_in_dfns(&setup, &id);
    assert_eq!(
        (dfns.name.as_str(), dfns.permission_ids.clone()),
        ("renamed", vec![second.clone()]),
        "renamed, role moved"
    );
    let sa = setup.wait_ready::<DfnsServiceAccount>("app").await;
    assert_eq!(
        sa.status.unwrap().assigned_permission_id.as_deref(),
        Some(second.as_str())
    );
    let reasons: Vec<String> = events_of(&setup, "app")
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    for reason in [
        "Created",
        "Deactivated",
        "Activated",
        "Updated",
        "PermissionAssigned",
        "PermissionRevoked",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "event {reason} in {reasons:?}"
        );
    }
    setup.stop_operator().await;
}

#[tokio::test]
async fn a_deactivation_made_in_dfns_is_reported_and_only_undone_when_the_user_toggles_active() {
    let mut setup = resyncing_setup("e2e-oob").await;
    let id = ready_app(&setup)
        .await
        .status
        .unwrap()
        .service_account_id
        .unwrap();

    // Security staff deactivate it in the dashboard.
    setup
        .admin_client()
        .deactivate(IdentityKind::ServiceAccount, &id)
        .await
        .unwrap();
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "False", Some("DeactivatedInDfns"))
        .await;
    wait_event(&setup, "app", "DeactivatedInDfns").await;
    // Several resyncs later, and after an unrelated spec change, it is still deactivated.
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "displayName": "still-off" }),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        !sa_in_dfns(&setup, &id).is_active,
        "never silently re-activated"
    );
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "False", Some("DeactivatedInDfns"))
        .await;

    // The user acknowledges (active: false), then asks for it back (active: true).
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "displayName": "still-off", "active": false }),
        )
        .await;
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "True", Some("Inactive"))
        .await;
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "displayName": "still-off", "active": true }),
        )
        .await;
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "True", Some("Ready"))
        .await;
    assert!(sa_in_dfns(&setup, &id).is_active);
    setup.stop_operator().await;
}

#[tokio::test]
async fn a_lost_credential_is_replaced_and_the_old_one_deactivated() {
    let mut setup = resyncing_setup("e2e-lost").await;
    for name in ["deleted-secret", "stripped-secret", "archived"] {
        setup
            .apply::<DfnsServiceAccount>(name, json!({ "connectionRef": CONN() }))
            .await;
    }
    let mut old = std::collections::HashMap::new();
    for name in ["deleted-secret", "stripped-secret", "archived"] {
        old.insert(
            name,
            setup
                .wait_ready::<DfnsServiceAccount>(name)
                .await
                .status
                .unwrap()
                .service_account_id
                .unwrap(),
        );
    }

    // The Secret is deleted; its key material is stripped; the account is archived in Dfns.
    setup
        .secrets()
        .delete("deleted-secret", &DeleteParams::default())
        .await
        .unwrap();
    let strip = json!([{ "op": "remove", "path": "/data/DFNS_PRIVATE_KEY" }]);
    setup
        .secrets()
        .patch(
            "stripped-secret",
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(strip).unwrap()),
        )
        .await
        .unwrap();
    setup
        .admin_client()
        .delete(IdentityKind::ServiceAccount, &old["archived"])
        .await
        .unwrap();

    for name in ["deleted-secret", "stripped-secret", "archived"] {
        wait_event(&setup, name, "CredentialLost").await;
        let mut replaced = None;
        for _ in 0..300 {
            let sa = setup.api::<DfnsServiceAccount>().get(name).await.unwrap();
            let status = sa.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready
                && status
                    .service_account_id
                    .as_deref()
                    .is_some_and(|id| id != old[name])
                && status.retiring.is_none()
            {
                replaced = status.service_account_id;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let new_id = replaced.unwrap_or_else(|| panic!("{name}: no replacement credential"));
        assert!(
            sa_in_dfns(&setup, &new_id).is_active,
            "{name}: the replacement is active"
        );
        let previous = setup
            .emulator
            .state()
            .service_accounts
            .into_iter()
            .find(|s| s.service_account_id == old[name])
            .unwrap();
        assert!(
            !previous.is_active,
            "{name}: the lost credential is deactivated"
        );
        let secret = setup.secrets().get(name).await.unwrap();
        assert!(
            secret_text(&secret, "DFNS_PRIVATE_KEY").is_some()
                && secret_text(&secret, "DFNS_AUTH_TOKEN").is_some()
        );
        assert_eq!(secret.annotations().get("dfns.io/id"), Some(&new_id));
    }
    setup.stop_operator().await;
}

#[tokio::test]
async fn rotated_connection_credentials_are_used_without_a_restart() {
    let mut setup = Setup::new("e2e-rotate").await;
    let role = role(&setup, "pat-role").await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    setup.start_operator();
    setup
        .apply::<DfnsPersonalAccessToken>(
            "before",
            json!({ "connectionRef": CONN(), "permissionId": role }),
        )
        .await;
    let before = setup
        .wait_ready::<DfnsPersonalAccessToken>("before")
        .await
        .status
        .unwrap();

    // A second organization user with every permission takes over: the Secret is rotated in place.
    let admin_role = setup
        .emulator
        .state()
        .permissions
        .into_iter()
        .find(|p| p.name == "DfnsFullAdminAccess")
        .unwrap()
        .id;
    let (user, key) = dfns_test_support::operator::create_org_user(
        &setup,
        "rotated@example.com",
        std::slice::from_ref(&admin_role),
    )
    .await;
    let secret = json!({ "stringData": { "DFNS_CRED_ID": user["credId"], "DFNS_PRIVATE_KEY": key.private_key_pem.expose() } });
    setup
        .secrets()
        .patch(
            "main-login",
            &PatchParams::default(),
            &Patch::Merge(&secret),
        )
        .await
        .unwrap();
    setup
        .api::<DfnsConnection>()
        .patch(
            "main",
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&json!({
                "apiVersion": "dfns.io/v1alpha1", "kind": "DfnsConnection", "metadata": { "name": "main" },
                "spec": {
                    "apiUrl": setup.emulator.api_url(), "allowInsecureHttp": true, "orgId": setup.emulator.bootstrap().org_id,
                    "allowedPermissionIds": [role],
                    "auth": { "userLogin": { "username": "rotated@example.com", "secretRef": { "name": "main-login" } } },
                },
            })),
        )
        .await
        .unwrap();

    setup
        .apply::<DfnsPersonalAccessToken>(
            "after",
            json!({ "connectionRef": CONN(), "permissionId": role }),
        )
        .await;
    let after = setup
        .wait_ready::<DfnsPersonalAccessToken>("after")
        .await
        .status
        .unwrap();
    assert_eq!(
        after.linked_user_id.as_deref(),
        user["userId"].as_str(),
        "the new PAT belongs to the rotated-in user"
    );
    assert_ne!(after.linked_user_id, before.linked_user_id);
    setup.stop_operator().await;
}

#[tokio::test]
async fn deletion_with_a_broken_connection_waits_and_skip_cleanup_releases_it() {
    let mut setup = Setup::new("e2e-blocked").await;
    setup.admin_connection("main", json!({})).await;
    setup.start_operator();
    let id = ready_app(&setup)
        .await
        .status
        .unwrap()
        .service_account_id
        .unwrap();

    setup
        .api::<DfnsConnection>()
        .delete("main", &DeleteParams::default())
        .await
        .unwrap();
    setup
        .api::<DfnsServiceAccount>()
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    let sa = setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "False", Some("CleanupBlocked"))
        .await;
    let message = dfns_test_support::operator::ready_condition(sa.status.as_ref()).message;
    assert!(
        message.contains("dfns.io/skip-cleanup"),
        "says how to proceed: {message}"
    );
    assert!(
        sa_in_dfns(&setup, &id).is_active,
        "nothing happened in Dfns"
    );

    let annotate = json!({ "metadata": { "annotations": { "dfns.io/skip-cleanup": "true" } } });
    setup
        .api::<DfnsServiceAccount>()
        .patch("app", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    setup.wait_gone::<DfnsServiceAccount>("app").await;
    assert!(
        sa_in_dfns(&setup, &id).is_active,
        "released without touching Dfns"
    );
    setup.stop_operator().await;
}

#[tokio::test]
async fn a_ready_credential_stays_ready_while_its_connection_is_unavailable() {
    let mut setup = resyncing_setup("e2e-outage").await;
    let before = ready_app(&setup).await;

    // The connection breaks (its Secret is gone); the credential in the app's Secret still works.
    setup
        .secrets()
        .delete("main-login", &DeleteParams::default())
        .await
        .unwrap();
    setup
        .wait_condition::<DfnsConnection>("main", "Ready", "False", None)
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = setup.api::<DfnsServiceAccount>().get("app").await.unwrap();
    let ready =
        |sa: &DfnsServiceAccount| dfns_test_support::operator::ready_condition(sa.status.as_ref());
    assert_eq!(
        ready(&after),
        ready(&before),
        "Ready is kept, not flapped, through a connection outage"
    );
    setup.stop_operator().await;
}
