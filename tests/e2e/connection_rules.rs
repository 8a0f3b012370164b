//! The connection's owner sets the rules (docs/architecture.md, "Connection rules"): a credential
//! its connection no longer allows is deactivated and never left Ready; `credentialLimits` cap
//! the validity, the deletion policies and `dfns.io/skip-cleanup`; a credential deliberately left
//! active is reported. (Unasked roles after a create: `unasked_permissions.rs`.)

use std::time::Duration;

use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::events::wait_event;
use dfns_test_support::operator::{NamespacedResource, Setup, WAIT, ready_condition};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

/// The `DfnsConnection` `main` as the bootstrap admin, with `extra` merged into its spec. Its
/// login Secret is created once, by the first call.
async fn connection(setup: &Setup, extra: Value, first: bool) {
    if first {
        setup.admin_connection("main", extra).await;
        return;
    }
    let admin = &setup.emulator.bootstrap().admin;
    let mut spec = json!({
        "apiUrl": setup.emulator.api_url(),
        "allowInsecureHttp": true,
        "orgId": setup.emulator.bootstrap().org_id,
        "auth": { "userLogin": { "username": admin.username, "secretRef": { "name": "main-login" } } },
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    setup.apply::<DfnsConnection>("main", spec).await;
}

fn main_ref() -> Value {
    json!({ "kind": "DfnsConnection", "name": "main" })
}

/// Whether the emulator shows identity `id` (a service account or PAT) active, and archived.
fn in_dfns(setup: &Setup, id: &str) -> (bool, bool) {
    let state = setup.emulator.state();
    if let Some(sa) = state
        .service_accounts
        .iter()
        .find(|s| s.service_account_id == id)
    {
        return (sa.is_active, sa.archived);
    }
    let pat = state
        .pats
        .iter()
        .find(|p| p.token_id == id)
        .unwrap_or_else(|| panic!("{id} in Dfns"));
    (pat.is_active, pat.archived)
}

async fn wait_in_dfns(setup: &Setup, id: &str, active: bool, archived: bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while in_dfns(setup, id) != (active, archived) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} in Dfns: {:?}, expected active {active}, archived {archived}",
            in_dfns(setup, id)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn recorded_id<K: NamespacedResource>(obj: &K) -> String {
    let value = serde_json::to_value(obj).unwrap();
    let status = &value["status"];
    status["serviceAccountId"]
        .as_str()
        .or(status["tokenId"].as_str())
        .expect("an id in status")
        .to_owned()
}

async fn delete<K: NamespacedResource>(setup: &Setup, name: &str) {
    setup
        .api::<K>()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn narrowing_allowed_permission_ids_deactivates_ready_credentials_until_widened_again() {
    let mut setup = Setup::new("e2e-narrowed").await;
    let role_a = setup.create_role("a", &["Auth:ServiceAccounts:Read"]).await;
    let role_b = setup.create_role("b", &["Auth:ServiceAccounts:Read"]).await;
    connection(
        &setup,
        json!({ "allowedPermissionIds": [role_a, role_b] }),
        true,
    )
    .await;
    setup.start_operator();
    let spec = json!({ "connectionRef": main_ref(), "permissionId": role_a });
    setup.apply::<DfnsServiceAccount>("sa", spec.clone()).await;
    setup.apply::<DfnsPersonalAccessToken>("pat", spec).await;
    let sa = recorded_id(&setup.wait_ready::<DfnsServiceAccount>("sa").await);
    let pat = recorded_id(&setup.wait_ready::<DfnsPersonalAccessToken>("pat").await);

    // The owner takes role a away: both credentials leave Ready and are deactivated in Dfns.
    connection(&setup, json!({ "allowedPermissionIds": [role_b] }), false).await;
    let stalled = setup
        .wait_condition::<DfnsServiceAccount>(
            "sa",
            "Stalled",
            "True",
            Some("CredentialNoLongerAllowed"),
        )
        .await;
    let message = ready_condition(stalled.status.as_ref()).message;
    assert!(
        message.contains(&role_a) && message.contains("deactivated"),
        "{message}"
    );
    setup
        .wait_condition::<DfnsPersonalAccessToken>(
            "pat",
            "Stalled",
            "True",
            Some("CredentialNoLongerAllowed"),
        )
        .await;
    wait_in_dfns(&setup, &sa, false, false).await;
    wait_in_dfns(&setup, &pat, false, false).await;
    let note = wait_event(&setup, "sa", "CredentialNoLongerAllowed").await;
    assert!(note.contains(&sa), "{note}");
    let metrics = setup.operator().metrics.encode();
    for kind in ["DfnsServiceAccount", "DfnsPersonalAccessToken"] {
        let line = format!(
            "dfns_operator_credentials_deactivated_by_rule_total{{kind=\"{kind}\",reason=\"CredentialNoLongerAllowed\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }

    // Widened again: the operator's own deactivation is undone.
    connection(
        &setup,
        json!({ "allowedPermissionIds": [role_a, role_b] }),
        false,
    )
    .await;
    setup.wait_ready::<DfnsServiceAccount>("sa").await;
    setup.wait_ready::<DfnsPersonalAccessToken>("pat").await;
    wait_in_dfns(&setup, &sa, true, false).await;
    wait_in_dfns(&setup, &pat, true, false).await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn credential_limits_cap_the_validity_and_refuse_a_deletion_policy_before_anything_is_minted()
{
    let mut setup = Setup::new("e2e-limits").await;
    let limits = json!({ "credentialLimits": { "maxDaysValid": 30, "allowedDeletionPolicies": ["Deactivate", "Archive"] } });
    connection(&setup, limits, true).await;
    setup.start_operator();
    let main = main_ref();
    setup
        .apply::<DfnsServiceAccount>(
            "too-long",
            json!({ "connectionRef": main, "daysValid": 60 }),
        )
        .await;
    setup
        .apply::<DfnsServiceAccount>(
            "retainer",
            json!({ "connectionRef": main, "deletionPolicy": "Retain" }),
        )
        .await;
    setup
        .apply::<DfnsServiceAccount>("capped", json!({ "connectionRef": main }))
        .await;
    let too_long = setup
        .wait_condition::<DfnsServiceAccount>(
            "too-long",
            "Stalled",
            "True",
            Some("LifetimeNotAllowed"),
        )
        .await;
    let message = ready_condition(too_long.status.as_ref()).message;
    assert!(
        message.contains("maxDaysValid") && message.contains("30 days"),
        "{message}"
    );
    let retainer = setup
        .wait_condition::<DfnsServiceAccount>(
            "retainer",
            "Stalled",
            "True",
            Some("DeletionPolicyNotAllowed"),
        )
        .await;
    let message = ready_condition(retainer.status.as_ref()).message;
    assert!(
        message.contains("Retain") && message.contains("Deactivate, Archive"),
        "{message}"
    );

    // Asking for no validity gets the connection's maximum, not Dfns' (undocumented) default.
    let capped = recorded_id(&setup.wait_ready::<DfnsServiceAccount>("capped").await);
    let state = setup.emulator.state();
    assert_eq!(
        state.service_accounts.len(),
        1,
        "only the allowed one is minted"
    );
    let expires: jiff::Timestamp = state.service_accounts[0]
        .expires_at
        .as_deref()
        .expect("an expiry")
        .parse()
        .unwrap();
    assert_eq!(state.service_accounts[0].service_account_id, capped);
    let days = (expires - jiff::Timestamp::now())
        .total(jiff::Unit::Hour)
        .unwrap()
        / 24.0;
    assert!((29.0..=30.0).contains(&days), "valid for {days} days");
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn deletion_follows_the_connections_limits_and_reports_what_it_leaves_active() {
    let mut setup = Setup::new("e2e-deletion-limits").await;
    connection(&setup, json!({}), true).await;
    setup.start_operator();
    let main = main_ref();
    setup
        .apply::<DfnsServiceAccount>(
            "left",
            json!({ "connectionRef": main, "deletionPolicy": "Retain" }),
        )
        .await;
    setup
        .apply::<DfnsServiceAccount>(
            "kept",
            json!({ "connectionRef": main, "deletionPolicy": "Retain" }),
        )
        .await;
    setup
        .apply::<DfnsServiceAccount>("skipper", json!({ "connectionRef": main }))
        .await;
    let left = recorded_id(&setup.wait_ready::<DfnsServiceAccount>("left").await);
    let kept = recorded_id(&setup.wait_ready::<DfnsServiceAccount>("kept").await);
    let skipper = recorded_id(&setup.wait_ready::<DfnsServiceAccount>("skipper").await);

    // Retain, allowed: the credential stays active, told loudly.
    delete::<DfnsServiceAccount>(&setup, "left").await;
    setup.wait_gone::<DfnsServiceAccount>("left").await;
    assert_eq!(in_dfns(&setup, &left), (true, false));
    let note = wait_event(&setup, "left", "CredentialLeftActive").await;
    assert!(note.contains(&left) && note.contains("Retain"), "{note}");
    let metrics = setup.operator().metrics.encode();
    let line = "dfns_operator_credentials_left_active_total{kind=\"DfnsServiceAccount\",reason=\"Retain\"} 1";
    assert!(metrics.contains(line), "{line} in\n{metrics}");

    // The owner forbids Retain and skip-cleanup: a live Retain resource stalls, its credential
    // untouched; its deletion applies the strictest allowed policy (Archive).
    let limits = json!({ "credentialLimits": { "allowedDeletionPolicies": ["Deactivate", "Archive"], "honourSkipCleanup": false } });
    connection(&setup, limits, false).await;
    setup
        .wait_condition::<DfnsServiceAccount>(
            "kept",
            "Stalled",
            "True",
            Some("DeletionPolicyNotAllowed"),
        )
        .await;
    assert_eq!(
        in_dfns(&setup, &kept),
        (true, false),
        "a live credential is left alone"
    );
    delete::<DfnsServiceAccount>(&setup, "kept").await;
    setup.wait_gone::<DfnsServiceAccount>("kept").await;
    assert!(in_dfns(&setup, &kept).1, "archived at deletion");
    let note = wait_event(&setup, "kept", "DeletionPolicyReplaced").await;
    assert!(
        note.contains("Retain") && note.contains("Archive"),
        "{note}"
    );
    assert!(
        setup.secrets().get_opt("kept").await.unwrap().is_none(),
        "Secret deleted, not released"
    );

    // skip-cleanup is ignored, with an Event: the credential is deactivated anyway.
    setup
        .api::<DfnsServiceAccount>()
        .patch(
            "skipper",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "dfns.io/skip-cleanup": "true" } } }),
            ),
        )
        .await
        .unwrap();
    delete::<DfnsServiceAccount>(&setup, "skipper").await;
    setup.wait_gone::<DfnsServiceAccount>("skipper").await;
    assert_eq!(
        in_dfns(&setup, &skipper),
        (false, false),
        "deactivated anyway"
    );
    let note = wait_event(&setup, "skipper", "SkipCleanupIgnored").await;
    assert!(note.contains("honourSkipCleanup"), "{note}");
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}
