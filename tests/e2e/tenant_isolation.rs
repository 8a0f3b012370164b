//! Tenants who do not trust each other share one `ClusterDfnsConnection`. Whoever may patch a
//! resource's `/status` can write another tenant's ids (and seal) into it: the operator must
//! never act on them. Tenant A copies tenant B's status, toggles `active`, deletes its Secret and
//! deletes its resource with `deletionPolicy: Archive`; B's credential stays active and
//! unarchived in Dfns throughout, and A is `Stalled` with reason `ForeignCredential`. A forged
//! `pendingCreate` carrying B's key fingerprint makes the operator retire nothing either.

use std::time::Duration;

use dfns_operator::api::{DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_operator::controller::credential::CredentialResource;
use dfns_test_support::TestNamespace;
use dfns_test_support::operator::{Setup, WAIT};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

/// B's Dfns identity as the emulator holds it: (active, archived).
fn in_dfns<K: CredentialResource>(setup: &Setup, id: &str) -> (bool, bool) {
    let state = setup.emulator.state();
    let found = match K::DFNS_KIND {
        dfns_client::IdentityKind::ServiceAccount => state
            .service_accounts
            .iter()
            .find(|s| s.service_account_id == id)
            .map(|s| (s.is_active, s.archived)),
        dfns_client::IdentityKind::PersonalAccessToken => state
            .pats
            .iter()
            .find(|p| p.token_id == id)
            .map(|p| (p.is_active, p.archived)),
    };
    found.unwrap_or_else(|| panic!("{id} is not in the emulator"))
}

async fn apply_in<K: CredentialResource>(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
    spec: Value,
) {
    let body = json!({
        "apiVersion": "dfns.io/v1alpha1", "kind": K::kind(&()), "metadata": { "name": name }, "spec": spec,
    });
    Api::<K>::namespaced(kube.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("e2e-tenant").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("apply the resource");
}

async fn wait_ready_in<K: CredentialResource>(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
) -> K {
    let api = Api::<K>::namespaced(kube.clone(), namespace);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let obj = api.get(name).await.expect("get the resource");
        let status = obj.credential_status().cloned().unwrap_or_default();
        if let Some(ready) = status.conditions.iter().find(|c| c.type_ == "Ready")
            && ready.status == "True"
            && ready.observed_generation == obj.meta().generation
        {
            return obj;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace}/{name} not Ready: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_foreign<K: CredentialResource>(setup: &Setup, name: &str, id: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let obj = setup.api::<K>().get(name).await.expect("get A");
        let status = obj.credential_status().cloned().unwrap_or_default();
        let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled");
        if let Some(c) = stalled
            && c.status == "True"
            && c.reason == "ForeignCredential"
            && c.message.contains(id)
            && c.observed_generation == obj.meta().generation
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A is not Stalled ForeignCredential naming {id}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn patch_spec<K: CredentialResource>(setup: &Setup, name: &str, spec: Value) {
    setup
        .api::<K>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch A's spec");
}

async fn patch_status<K: CredentialResource>(setup: &Setup, name: &str, status: Value) {
    setup
        .api::<K>()
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .expect("patch A's status");
}

/// Both tenants' resources Ready on one cluster connection, each namespace served by its own
/// operator (the test binary's operators watch one namespace each), B's in its own namespace.
struct Tenants {
    setup: Setup,
    b: TestNamespace,
    b_operator: dfns_test_support::operator::Operator,
    b_status: Value,
    b_id: String,
}

async fn two_tenants<K: CredentialResource>(prefix: &str) -> Tenants {
    let mut setup = Setup::new(prefix).await;
    setup.create_admin_login_secret("shared-login").await;
    let connection = format!("shared-{}", setup.namespace());
    setup
        .admin_cluster_connection(
            &connection,
            "shared-login",
            json!({ "allowUnscopedTokens": true }),
        )
        .await;
    let b = TestNamespace::new(setup.cp, &format!("{prefix}-b")).await;
    setup.start_operator();
    let b_operator = setup.spawn_operator(dfns_operator::controller::ControllerConfig {
        watch_namespace: Some(b.name().to_owned()),
        ..setup.config()
    });

    let spec = json!({
        "connectionRef": { "kind": "ClusterDfnsConnection", "name": connection },
        "deletionPolicy": "Archive",
    });
    apply_in::<K>(&setup.kube, b.name(), "b", spec.clone()).await;
    setup.apply::<K>("a", spec).await;
    let b_obj = wait_ready_in::<K>(&setup.kube, b.name(), "b").await;
    setup.wait_ready::<K>("a").await;
    let b_status = serde_json::to_value(b_obj.credential_status().unwrap()).unwrap();
    let b_id = b_obj
        .credential_status()
        .unwrap()
        .recorded_id()
        .unwrap()
        .to_owned();
    assert!(
        b_status["seal"].is_string(),
        "B's recorded id is sealed: {b_status}"
    );
    Tenants {
        setup,
        b,
        b_operator,
        b_status,
        b_id,
    }
}

async fn another_tenants_ids_are_never_acted_on<K: CredentialResource>(prefix: &str) {
    let Tenants {
        mut setup,
        b,
        b_operator,
        b_status,
        b_id,
    } = two_tenants::<K>(prefix).await;

    // A copies everything B's status shows: ids, key fingerprint and seal.
    let mut forged = b_status.clone();
    forged.as_object_mut().unwrap().remove("conditions");
    patch_status::<K>(&setup, "a", forged).await;
    patch_spec::<K>(&setup, "a", json!({ "active": false })).await;
    wait_foreign::<K>(&setup, "a", &b_id).await;
    assert_eq!(
        in_dfns::<K>(&setup, &b_id),
        (true, false),
        "B untouched after A's spec.active=false"
    );

    patch_spec::<K>(
        &setup,
        "a",
        json!({ "active": true, "displayName": "renamed-by-a" }),
    )
    .await;
    wait_foreign::<K>(&setup, "a", &b_id).await;

    setup
        .secrets()
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete A's Secret");
    patch_spec::<K>(&setup, "a", json!({ "active": false })).await;
    wait_foreign::<K>(&setup, "a", &b_id).await;
    assert_eq!(
        in_dfns::<K>(&setup, &b_id),
        (true, false),
        "B untouched after A's Secret was deleted"
    );

    // Deleting A with deletionPolicy Archive: the deletion waits, B is not archived.
    setup
        .api::<K>()
        .delete("a", &DeleteParams::default())
        .await
        .expect("delete A");
    wait_foreign::<K>(&setup, "a", &b_id).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        in_dfns::<K>(&setup, &b_id),
        (true, false),
        "B untouched by A's deletion"
    );
    let events = Api::<Event>::namespaced(setup.kube.clone(), setup.namespace())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ForeignCredential")
                && e.type_.as_deref() == Some("Warning")
                && e.message.as_deref().is_some_and(|m| m.contains(&b_id))),
        "a Warning Event names the refused id"
    );
    // The way out the message names: release A without touching Dfns.
    setup
        .api::<K>()
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": { "annotations": { "dfns.io/skip-cleanup": "true" } }
            })),
        )
        .await
        .unwrap();
    setup.wait_gone::<K>("a").await;
    assert_eq!(
        in_dfns::<K>(&setup, &b_id),
        (true, false),
        "B stays active and unarchived"
    );
    let b_now = wait_ready_in::<K>(&setup.kube, b.name(), "b").await;
    assert_eq!(
        b_now.credential_status().unwrap().recorded_id(),
        Some(b_id.as_str())
    );

    b_operator.stop().await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

async fn a_forged_pending_create_retires_nothing<K: CredentialResource>(prefix: &str) {
    let Tenants {
        mut setup,
        b: _b,
        b_operator,
        b_status,
        b_id,
    } = two_tenants::<K>(prefix).await;
    let b_key = b_status["publicKeySha256"]
        .as_str()
        .expect("B's key fingerprint")
        .to_owned();
    // A's status made to look like an unfinished create of B's key.
    let a = setup.api::<K>().get("a").await.unwrap();
    let a_id = a
        .credential_status()
        .unwrap()
        .recorded_id()
        .unwrap()
        .to_owned();
    let mut forged = json!({
        "pendingCreate": { "startedAt": "2020-01-01T00:00:00Z", "publicKeySha256": b_key },
        "serviceAccountId": null, "tokenId": null, "credentialId": null, "seal": null,
        "publicKeySha256": null,
    });
    if let Some(seal) = b_status.pointer("/seal") {
        forged["pendingCreate"]["seal"] = seal.clone();
    }
    patch_status::<K>(&setup, "a", forged).await;
    patch_spec::<K>(&setup, "a", json!({ "displayName": "poke" })).await;
    // A creates a credential of its own with a new key; B is neither retired nor adopted.
    let a_now = setup.wait_ready::<K>("a").await;
    let new_id = a_now
        .credential_status()
        .unwrap()
        .recorded_id()
        .unwrap()
        .to_owned();
    assert_ne!(new_id, b_id, "A never adopts B's credential");
    assert_ne!(new_id, a_id);
    assert_eq!(
        in_dfns::<K>(&setup, &b_id),
        (true, false),
        "B is not retired as an orphan"
    );

    b_operator.stop().await;
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_service_account_never_acts_on_another_tenants_ids_from_its_status() {
    another_tenants_ids_are_never_acted_on::<DfnsServiceAccount>("e2e-tenant-sa").await;
}

#[tokio::test]
async fn a_pat_never_acts_on_another_tenants_ids_from_its_status() {
    another_tenants_ids_are_never_acted_on::<DfnsPersonalAccessToken>("e2e-tenant-pat").await;
}

#[tokio::test]
async fn a_forged_pending_create_with_another_tenants_key_retires_nothing() {
    a_forged_pending_create_retires_nothing::<DfnsServiceAccount>("e2e-tenant-pend").await;
}
