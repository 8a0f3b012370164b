//! The operator end to end, as a platform engineer uses it: apply a connection and credentials,
//! get working Secrets, delete them under each policy; against a real API server and the emulator.

use tokio::process::Command;

use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::operator::{
    NamespacedResource, Setup, kubernetes_writes_by_resource, secret_map, secret_text,
};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::json;

/// Runs `dfns-operator verify` with a Secret's keys in the environment, as a workload would get
/// them through `envFrom`; returns (success, combined output). Async, so the in-process emulator
/// keeps serving meanwhile.
pub(crate) async fn verify_with(secret: &Secret) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dfns-operator"))
        .args(["verify", "--allow-insecure-http"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(secret_map(secret))
        .output()
        .await
        .expect("run dfns-operator verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn applied_credentials_become_ready_with_working_secrets_and_deletion_applies_each_policy() {
    let mut setup = Setup::new("e2e-lifecycle").await;
    let role = setup
        .create_role(
            "app-role",
            &["Auth:ServiceAccounts:Read", "Auth:Pats:Create"],
        )
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("main").await;

    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>(
            "payments",
            json!({ "connectionRef": conn, "permissionId": role }),
        )
        .await;
    setup
        .apply::<DfnsPersonalAccessToken>(
            "ci-token",
            json!({ "connectionRef": conn, "permissionId": role, "daysValid": 30, "deletionPolicy": "Archive" }),
        )
        .await;
    setup
        .apply::<DfnsServiceAccount>("keeper", json!({ "connectionRef": conn, "deletionPolicy": "Retain", "secret": { "name": "keeper-creds", "labels": { "team": "pay" } } }))
        .await;

    let sa = setup.wait_ready::<DfnsServiceAccount>("payments").await;
    let pat = setup
        .wait_ready::<DfnsPersonalAccessToken>("ci-token")
        .await;
    let keeper = setup.wait_ready::<DfnsServiceAccount>("keeper").await;

    // Status records the Dfns ids; Dfns holds exactly what the spec asked for.
    let sa_status = sa.status.clone().unwrap();
    let sa_id = sa_status
        .service_account_id
        .clone()
        .expect("service account id");
    assert!(sa_status.pending_create.is_none());
    assert_eq!(
        sa_status.assigned_permission_id.as_deref(),
        Some(role.as_str())
    );
    let pat_id = pat.status.clone().unwrap().token_id.expect("token id");
    let state = setup.emulator.state();
    let dfns_sa = state
        .service_accounts
        .iter()
        .find(|s| s.service_account_id == sa_id)
        .expect("SA in Dfns");
    assert!(dfns_sa.is_active && !dfns_sa.archived);
    assert_eq!(
        dfns_sa.external_id.as_deref(),
        sa.uid().as_deref(),
        "externalId is the resource's UID"
    );
    assert_eq!(dfns_sa.name, format!("{}-payments", setup.namespace()));
    assert_eq!(dfns_sa.permission_ids, vec![role.clone()]);
    let dfns_pat = state
        .pats
        .iter()
        .find(|p| p.token_id == pat_id)
        .expect("PAT in Dfns");
    assert!(dfns_pat.is_active);

    // Each Secret feeds a working client: token, credential id and key belong together.
    for (name, owner) in [
        ("payments", sa.uid()),
        ("ci-token", pat.uid()),
        ("keeper-creds", keeper.uid()),
    ] {
        let secret = setup.secrets().get(name).await.expect("Secret exists");
        assert!(
            secret
                .owner_references()
                .iter()
                .any(|r| Some(&r.uid) == owner.as_ref() && r.controller == Some(true))
        );
        assert_eq!(
            secret
                .labels()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("dfns-operator")
        );
        for key in [
            "DFNS_API_URL",
            "DFNS_AUTH_TOKEN",
            "DFNS_CRED_ID",
            "DFNS_PRIVATE_KEY",
            "DFNS_PUBLIC_KEY",
            "DFNS_ORG_ID",
        ] {
            assert!(
                secret_text(&secret, key).is_some_and(|v| !v.is_empty()),
                "{name} has {key}"
            );
        }
        let (ok, output) = verify_with(&secret).await;
        assert!(ok, "verify with Secret {name} failed: {output}");
        assert!(output.contains("signing ok"), "{output}");
        let token = secret_text(&secret, "DFNS_AUTH_TOKEN").unwrap();
        let key = secret_text(&secret, "DFNS_PRIVATE_KEY").unwrap();
        assert!(
            !output.contains(&token) && !output.contains(key.trim()),
            "verify printed a secret"
        );
    }
    assert_eq!(
        setup
            .secrets()
            .get("keeper-creds")
            .await
            .unwrap()
            .labels()
            .get("team")
            .map(String::as_str),
        Some("pay")
    );
    // `verify --from-secret` reads the same Secrets through the Kubernetes API: a service
    // account's and a PAT's, against an emulator that answers as strictly as Dfns' pages.
    for secret in ["payments", "ci-token"] {
        let from_secret = Command::new(env!("CARGO_BIN_EXE_dfns-operator"))
            .args(["verify", "--allow-insecure-http", "--from-secret"])
            .arg(format!("{}/{secret}", setup.namespace()))
            .arg("--kubeconfig")
            .arg(setup.cp.kubeconfig_path())
            .output()
            .await
            .expect("run dfns-operator verify --from-secret");
        let text = String::from_utf8_lossy(&from_secret.stdout).to_string()
            + &String::from_utf8_lossy(&from_secret.stderr);
        assert!(
            from_secret.status.success()
                && text.contains("read ok:     GET /auth/pats")
                && text.contains("signing ok"),
            "verify --from-secret {secret}: {text}"
        );
    }

    // Deactivate (default): deactivated in Dfns, Secret removed.
    setup
        .api::<DfnsServiceAccount>()
        .delete("payments", &DeleteParams::default())
        .await
        .unwrap();
    setup.wait_gone::<DfnsServiceAccount>("payments").await;
    let state = setup.emulator.state();
    let dfns_sa = state
        .service_accounts
        .iter()
        .find(|s| s.service_account_id == sa_id)
        .unwrap();
    assert!(
        !dfns_sa.is_active && !dfns_sa.archived,
        "Deactivate keeps the account, inactive"
    );
    assert!(
        setup.secrets().get_opt("payments").await.unwrap().is_none(),
        "Secret removed"
    );

    // Archive: archived in Dfns.
    setup
        .api::<DfnsPersonalAccessToken>()
        .delete("ci-token", &DeleteParams::default())
        .await
        .unwrap();
    setup.wait_gone::<DfnsPersonalAccessToken>("ci-token").await;
    let state = setup.emulator.state();
    assert!(
        state
            .pats
            .iter()
            .find(|p| p.token_id == pat_id)
            .unwrap()
            .archived,
        "Archive archives the PAT"
    );
    assert!(setup.secrets().get_opt("ci-token").await.unwrap().is_none());

    // Retain: still active in Dfns, Secret kept and released.
    let keeper_id = keeper.status.clone().unwrap().service_account_id.unwrap();
    setup
        .api::<DfnsServiceAccount>()
        .delete("keeper", &DeleteParams::default())
        .await
        .unwrap();
    setup.wait_gone::<DfnsServiceAccount>("keeper").await;
    let state = setup.emulator.state();
    assert!(
        state
            .service_accounts
            .iter()
            .find(|s| s.service_account_id == keeper_id)
            .unwrap()
            .is_active
    );
    let kept = setup
        .secrets()
        .get("keeper-creds")
        .await
        .expect("Retain keeps the Secret");
    assert!(
        kept.owner_references().is_empty(),
        "a retained Secret is not garbage-collected with its owner"
    );
    assert!(
        verify_with(&kept).await.0,
        "the retained credential still works"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_foreign_secret_with_the_target_name_stalls_with_secret_conflict_and_stays_untouched() {
    let mut setup = Setup::new("e2e-conflict").await;
    setup.admin_connection("main", json!({})).await;
    let foreign = setup
        .create_secret("taken", &[("password", "hunter2")])
        .await;
    setup.start_operator();
    setup
        .apply::<DfnsServiceAccount>("app", json!({ "connectionRef": { "kind": "DfnsConnection", "name": "main" }, "secret": { "name": "taken" } }))
        .await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>("app", "Stalled", "True", Some("SecretConflict"))
        .await;
    let ready = dfns_test_support::operator::ready_condition(sa.status.as_ref());
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("taken"), "{}", ready.message);
    let after = setup.secrets().get("taken").await.unwrap();
    assert_eq!(after.data, foreign.data, "foreign data unchanged");
    assert_eq!(
        after.metadata.resource_version, foreign.metadata.resource_version,
        "foreign Secret not written"
    );
    assert!(
        setup.emulator.state().service_accounts.is_empty(),
        "nothing created in Dfns"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

/// resourceVersion of each named object of kind `K`, to prove nothing was written to them.
async fn versions<K: NamespacedResource>(setup: &Setup, names: &[&str]) -> Vec<Option<String>> {
    let api = setup.api::<K>();
    let mut versions = Vec::new();
    for name in names {
        versions.push(
            api.get(name)
                .await
                .expect("object exists")
                .resource_version(),
        );
    }
    versions
}

/// The connection's status without its session's expiry, which a new login moves.
#[tokio::test]
async fn a_ready_service_account_and_token_reconciled_again_write_nothing_to_kubernetes_or_dfns() {
    let mut setup = Setup::new("e2e-quiet").await;
    let role = setup
        .create_role(
            "quiet-role",
            &["Auth:ServiceAccounts:Read", "Auth:Pats:Create"],
        )
        .await;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [role] }))
        .await;
    setup.start_operator();
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });
    setup
        .apply::<DfnsServiceAccount>("app", json!({ "connectionRef": conn }))
        .await;
    setup
        .apply::<DfnsPersonalAccessToken>(
            "token",
            json!({ "connectionRef": conn, "permissionId": role }),
        )
        .await;
    setup.wait_ready::<DfnsConnection>("main").await;
    setup.wait_ready::<DfnsServiceAccount>("app").await;
    setup.wait_ready::<DfnsPersonalAccessToken>("token").await;
    // Stop, then restart: a new operator reconciles everything once, from scratch.
    setup.stop_operator().await;
    let names = ["app", "token"];
    let before = (
        versions::<DfnsServiceAccount>(&setup, &["app"]).await,
        versions::<DfnsPersonalAccessToken>(&setup, &["token"]).await,
        versions::<Secret>(&setup, &names).await,
    );
    let connection_before = versions::<DfnsConnection>(&setup, &["main"]).await;
    let dfns_writes_before = setup.emulator.request_counts().writes;
    setup.start_operator();
    // Proof that the new operator did reconcile each of them before "nothing changed" is checked.
    for kind in [
        "DfnsConnection",
        "DfnsServiceAccount",
        "DfnsPersonalAccessToken",
    ] {
        setup.wait_reconciles(kind, 1).await;
    }
    let metrics = setup.operator().metrics.clone();
    setup.stop_operator().await;

    let text = metrics.encode();
    assert!(
        !text.contains("dfns_operator_reconcile_errors_total{"),
        "the reconciles succeeded:\n{text}"
    );
    // The new operator logs in afresh; a login session's expiry is not recorded, so not even
    // the connection's status changes.
    assert_eq!(
        kubernetes_writes_by_resource(&metrics),
        Default::default(),
        "the restarted operator wrote to Kubernetes:\n{text}"
    );
    assert_eq!(
        versions::<DfnsConnection>(&setup, &["main"]).await,
        connection_before,
        "the connection's resourceVersion"
    );
    let after = (
        versions::<DfnsServiceAccount>(&setup, &["app"]).await,
        versions::<DfnsPersonalAccessToken>(&setup, &["token"]).await,
        versions::<Secret>(&setup, &names).await,
    );
    assert_eq!(
        after, before,
        "resourceVersions of the service account, the token and their Secrets"
    );
    assert_eq!(
        setup.emulator.request_counts().writes,
        dfns_writes_before,
        "no Dfns writes"
    );
    setup.assert_no_leaks().await;
}
