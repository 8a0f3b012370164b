//! After creation: spec changes, changes made in Dfns, lost Secrets, rotated connection
//! credentials and deletion with a broken connection — each asserted in Dfns (emulator state) and
//! in the resource's conditions and Events.

use std::time::Duration;

use dfns_client::IdentityKind;
use dfns_client::types::permission::CreatePermissionRequest;
use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::dfns::{UserSession, requests_to};
use dfns_test_support::events::{events_of, wait_event};
use dfns_test_support::operator::{NamespacedResource, Setup, WAIT, secret_text};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
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
    resyncing_setup_with(prefix, json!({})).await
}

async fn resyncing_setup_with(prefix: &str, connection: Value) -> Setup {
    let mut setup = Setup::new(prefix).await;
    setup.admin_connection("main", connection).await;
    fast_resync(&mut setup, 2);
    setup
}

/// Waits for `more` reconciles of `kind` beyond those done so far: with a fast resync, proof that
/// the operator looked again.
async fn wait_more_reconciles(setup: &mut Setup, kind: &str, more: u64) {
    let done = setup.operator().metrics.reconcile_count(kind);
    setup.wait_reconciles(kind, done + more).await;
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
    // Ready for the new generation: the operator has applied this spec.
    let sa = setup.wait_ready::<DfnsServiceAccount>("app").await;
    let dfns = sa_in_dfns(&setup, &id);
    assert_eq!(
        (dfns.name.as_str(), dfns.permission_ids.clone()),
        ("renamed", vec![second.clone()]),
        "renamed, role moved"
    );
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
    setup.assert_no_leaks().await;
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
    // After an unrelated spec change, and several resyncs later, it is still deactivated.
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": CONN(), "displayName": "still-off" }),
        )
        .await;
    setup
        .wait_condition::<DfnsServiceAccount>("app", "Ready", "False", Some("DeactivatedInDfns"))
        .await;
    // Several listings of Dfns (one per interval) find nothing new; a reconcile for another
    // reason (an annotation) does not undo it either.
    tokio::time::sleep(Duration::from_secs(3 * 2)).await;
    let done = setup
        .operator()
        .metrics
        .reconcile_count("DfnsServiceAccount");
    setup
        .api::<DfnsServiceAccount>()
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { "e2e.dfns.io/poke": "1" } } })),
        )
        .await
        .unwrap();
    setup.wait_reconciles("DfnsServiceAccount", done + 1).await;
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
    setup.assert_no_leaks().await;
}

/// Whether Dfns holds the service account or token `id` as (active, archived).
fn dfns_flags(setup: &Setup, id: &str) -> (bool, bool) {
    let state = setup.emulator.state();
    let account = state
        .service_accounts
        .iter()
        .find(|s| s.service_account_id == id);
    let token = state.pats.iter().find(|p| p.token_id == id);
    match (account, token) {
        (Some(s), _) => (s.is_active, s.archived),
        (_, Some(p)) => (p.is_active, p.archived),
        _ => panic!("{id} is not in Dfns"),
    }
}

/// The Dfns id in a credential resource's status (either kind).
fn recorded_id(status: &Value) -> Option<String> {
    status["serviceAccountId"]
        .as_str()
        .or(status["tokenId"].as_str())
        .map(str::to_owned)
}

/// Waits until `name` is Ready for its generation with a Dfns id other than `old` and nothing
/// left to retire; returns the new id.
async fn wait_replaced<K: NamespacedResource>(setup: &Setup, name: &str, old: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = serde_json::to_value(setup.api::<K>().get(name).await.unwrap()).unwrap();
        let status = &value["status"];
        let ready = status["conditions"].as_array().is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "True"
                    && c["observedGeneration"] == value["metadata"]["generation"]
            })
        });
        let id = recorded_id(status).filter(|id| id != old);
        if ready
            && status["retiring"].is_null()
            && let Some(id) = id
        {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} {name}: no replacement credential; status: {status}",
            K::kind(&())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The three ways to lose a credential, for service accounts and tokens: each is replaced, the
/// lost one deactivated (or left archived), and the Secret holds the replacement.
#[tokio::test]
async fn a_lost_credential_of_either_kind_is_replaced_and_the_old_one_retired() {
    const CASES: [&str; 3] = ["deleted-secret", "stripped-secret", "archived"];
    let mut setup = resyncing_setup_with("e2e-lost", json!({ "allowUnscopedTokens": true })).await;
    let kinds = [
        ("sa", IdentityKind::ServiceAccount),
        ("pat", IdentityKind::PersonalAccessToken),
    ];
    let name = |prefix: &str, case: &str| format!("{prefix}-{case}");
    for case in CASES {
        setup
            .apply::<DfnsServiceAccount>(&name("sa", case), json!({ "connectionRef": CONN() }))
            .await;
        setup
            .apply::<DfnsPersonalAccessToken>(
                &name("pat", case),
                json!({ "connectionRef": CONN(), "daysValid": 7 }),
            )
            .await;
    }
    let mut old = std::collections::HashMap::new();
    for case in CASES {
        let sa = setup
            .wait_ready::<DfnsServiceAccount>(&name("sa", case))
            .await;
        old.insert(
            name("sa", case),
            sa.status.unwrap().service_account_id.unwrap(),
        );
        let pat = setup
            .wait_ready::<DfnsPersonalAccessToken>(&name("pat", case))
            .await;
        old.insert(name("pat", case), pat.status.unwrap().token_id.unwrap());
    }

    // The Secret is deleted; its key material is stripped; the credential is archived in Dfns.
    let strip = json!([{ "op": "remove", "path": "/data/DFNS_PRIVATE_KEY" }]);
    for (prefix, kind) in kinds {
        setup
            .secrets()
            .delete(&name(prefix, "deleted-secret"), &DeleteParams::default())
            .await
            .unwrap();
        setup
            .secrets()
            .patch(
                &name(prefix, "stripped-secret"),
                &PatchParams::default(),
                &Patch::<Value>::Json(serde_json::from_value(strip.clone()).unwrap()),
            )
            .await
            .unwrap();
        let archived = &old[&name(prefix, "archived")];
        setup.admin_client().delete(kind, archived).await.unwrap();
        assert!(dfns_flags(&setup, archived).1, "archived in Dfns");
    }

    for (prefix, _) in kinds {
        for case in CASES {
            let name = name(prefix, case);
            wait_event(&setup, &name, "CredentialLost").await;
            let new_id = if prefix == "sa" {
                wait_replaced::<DfnsServiceAccount>(&setup, &name, &old[&name]).await
            } else {
                wait_replaced::<DfnsPersonalAccessToken>(&setup, &name, &old[&name]).await
            };
            assert_eq!(
                dfns_flags(&setup, &new_id),
                (true, false),
                "{name}: the replacement is active"
            );
            let (old_active, old_archived) = dfns_flags(&setup, &old[&name]);
            if case == "archived" {
                assert!(
                    old_archived,
                    "{name}: the archived credential stays archived"
                );
            } else {
                assert!(
                    !old_active && !old_archived,
                    "{name}: the lost credential is deactivated (not archived)"
                );
            }
            let secret = setup.secrets().get(&name).await.unwrap();
            assert!(
                secret_text(&secret, "DFNS_PRIVATE_KEY").is_some()
                    && secret_text(&secret, "DFNS_AUTH_TOKEN").is_some(),
                "{name}: the Secret holds the replacement"
            );
            assert_eq!(secret.annotations().get("dfns.io/id"), Some(&new_id));
        }
    }
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_rotated_connection_secret_is_used_without_a_restart_or_a_spec_change() {
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
    let connection = setup.wait_ready::<DfnsConnection>("main").await;

    // The admin gets a new key; only the Secret is rotated (same user, same spec), and the old key
    // is retired in Dfns, so nothing signed with it can succeed any more.
    let admin = setup.emulator.bootstrap().admin.clone();
    let old_key = UserSession::login(
        &setup.emulator,
        &admin.username,
        &admin.cred_id,
        &admin.private_key,
    )
    .await;
    let (new_cred_id, new_key) = old_key.add_key_credential().await;
    let logins_before = requests_to(&setup.emulator, "POST /auth/login");
    let rotated = json!({ "stringData": { "DFNS_CRED_ID": new_cred_id, "DFNS_PRIVATE_KEY": new_key.private_key_pem.expose() } });
    setup
        .secrets()
        .patch(
            "main-login",
            &PatchParams::default(),
            &Patch::Merge(&rotated),
        )
        .await
        .unwrap();
    let old_credential = setup
        .emulator
        .state()
        .credentials
        .into_iter()
        .find(|c| c.credential_id == admin.cred_id)
        .expect("the admin's first credential")
        .credential_uuid;
    old_key.deactivate_credential(&old_credential).await;

    // A write after the rotation needs a user action signed with the new key.
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
    assert!(
        requests_to(&setup.emulator, "POST /auth/login") > logins_before,
        "the operator logged in again after the rotation"
    );
    assert_eq!(
        after.linked_user_id, before.linked_user_id,
        "the new PAT belongs to the same user"
    );
    let pat_active = |id: &Option<String>| {
        setup
            .emulator
            .state()
            .pats
            .iter()
            .any(|p| Some(&p.token_id) == id.as_ref() && p.is_active)
    };
    assert!(pat_active(&after.token_id) && pat_active(&before.token_id));
    // The connection stays Ready for the same generation (its spec never changed), and the
    // credential made before the rotation is still Ready.
    let still = setup.wait_ready::<DfnsConnection>("main").await;
    assert_eq!(still.metadata.generation, connection.metadata.generation);
    setup.wait_ready::<DfnsPersonalAccessToken>("before").await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
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
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_ready_credential_stays_ready_while_its_connection_is_unavailable() {
    let mut setup = resyncing_setup("e2e-outage").await;
    let before = ready_app(&setup).await;
    assert_eq!(
        dfns_test_support::operator::ready_condition(before.status.as_ref()).reason,
        "Ready"
    );

    // The connection breaks (its Secret is gone); the credential in the app's Secret still works.
    setup
        .secrets()
        .delete("main-login", &DeleteParams::default())
        .await
        .unwrap();
    setup
        .wait_condition::<DfnsConnection>("main", "Ready", "False", None)
        .await;
    // One more reconcile of the credential during the outage (it looks again 30 s after it found
    // the connection not ready), which must keep Ready as it was.
    wait_more_reconciles(&mut setup, "DfnsServiceAccount", 1).await;
    let after = setup.api::<DfnsServiceAccount>().get("app").await.unwrap();
    let ready =
        |sa: &DfnsServiceAccount| dfns_test_support::operator::ready_condition(sa.status.as_ref());
    assert_eq!(
        ready(&after),
        ready(&before),
        "Ready is kept, not flapped, through a connection outage"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
