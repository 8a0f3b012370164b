//! Bad input loses nothing: invalid specs are refused by the API server with a clear message, and
//! requests the connection does not allow go `Stalled` without anything created in Dfns.

use dfns_client::types::permission::CreatePermissionRequest;
use dfns_operator::api::{DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount};
use dfns_test_support::operator::{NamespacedResource, Setup, ready_condition};
use serde_json::{Value, json};

/// Applies `spec` and returns the API server's refusal message.
async fn refused<K: NamespacedResource>(setup: &Setup, name: &str, spec: Value) -> String {
    let body = json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "metadata": { "name": name }, "spec": spec });
    let result = setup
        .api::<K>()
        .patch(
            name,
            &kube::api::PatchParams::apply("e2e-test"),
            &kube::api::Patch::Apply(&body),
        )
        .await;
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "refused as invalid: {status:?}");
            status.message
        }
        other => panic!("{} {name} was accepted: {other:?}", K::kind(&())),
    }
}

/// Waits until service account `name` stalls as Forbidden; returns its Ready condition's message.
async fn forbidden_message(setup: &Setup, name: &str) -> String {
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(name, "Stalled", "True", Some("Forbidden"))
        .await;
    ready_condition(sa.status.as_ref()).message
}

#[tokio::test]
async fn invalid_specs_are_refused_by_the_api_server_with_a_clear_message() {
    let setup = Setup::new("e2e-admission").await;
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });

    let msg = refused::<DfnsServiceAccount>(
        &setup,
        "bad-role",
        json!({ "connectionRef": conn, "permissionId": "admin" }),
    )
    .await;
    assert!(msg.contains("permissionId"), "{msg}");
    for days in [0, 731] {
        let msg = refused::<DfnsServiceAccount>(
            &setup,
            "bad-days",
            json!({ "connectionRef": conn, "daysValid": days }),
        )
        .await;
        assert!(msg.contains("daysValid"), "{msg}");
    }
    let msg = refused::<DfnsPersonalAccessToken>(
        &setup,
        "bad-kind",
        json!({ "connectionRef": { "kind": "Connection", "name": "x" } }),
    )
    .await;
    assert!(msg.contains("connectionRef.kind"), "{msg}");
    let msg = refused::<DfnsPersonalAccessToken>(
        &setup,
        "both-validities",
        json!({ "daysValid": 1, "secondsValid": 60 }),
    )
    .await;
    assert!(
        msg.contains("at most one of daysValid and secondsValid"),
        "{msg}"
    );

    let both_modes = json!({
        "apiUrl": "https://api.dfns.io",
        "orgId": "or-abc",
        "auth": { "token": { "secretRef": { "name": "a" } }, "userLogin": { "username": "u", "secretRef": { "name": "b" } } },
    });
    let msg = refused::<DfnsConnection>(&setup, "both", both_modes).await;
    assert!(
        msg.contains("exactly one of auth.token or auth.userLogin"),
        "{msg}"
    );
    let plain_http = json!({ "apiUrl": "http://api.dfns.io", "auth": { "token": { "secretRef": { "name": "a" } } } });
    let msg = refused::<DfnsConnection>(&setup, "insecure", plain_http).await;
    assert!(msg.contains("allowInsecureHttp"), "{msg}");

    // Immutable once set.
    setup
        .apply::<DfnsServiceAccount>("fixed", json!({ "connectionRef": conn, "daysValid": 30 }))
        .await;
    let msg = refused::<DfnsServiceAccount>(
        &setup,
        "fixed",
        json!({ "connectionRef": conn, "daysValid": 60 }),
    )
    .await;
    assert!(msg.contains("daysValid is immutable"), "{msg}");
}

#[tokio::test]
async fn requests_the_connection_does_not_allow_stall_and_create_nothing_in_dfns() {
    let mut setup = Setup::new("e2e-guards").await;
    let admin = setup.admin_client();
    let allowed = admin
        .create_permission(&CreatePermissionRequest {
            name: "allowed".into(),
            operations: vec!["Auth:ServiceAccounts:Read".into()],
        })
        .await
        .unwrap()
        .id;
    let other = admin
        .create_permission(&CreatePermissionRequest {
            name: "other".into(),
            operations: vec!["Auth:ServiceAccounts:Read".into()],
        })
        .await
        .unwrap()
        .id;
    setup
        .admin_connection("main", json!({ "allowedPermissionIds": [allowed] }))
        .await;
    setup.start_operator();
    let conn = json!({ "kind": "DfnsConnection", "name": "main" });

    setup
        .apply::<DfnsServiceAccount>(
            "wants-other",
            json!({ "connectionRef": conn, "permissionId": other }),
        )
        .await;
    let sa = setup
        .wait_condition::<DfnsServiceAccount>(
            "wants-other",
            "Stalled",
            "True",
            Some("PermissionNotAllowed"),
        )
        .await;
    let message = dfns_test_support::operator::ready_condition(sa.status.as_ref()).message;
    assert!(
        message.contains(&other) && message.contains("allowedPermissionIds"),
        "{message}"
    );

    setup
        .apply::<DfnsPersonalAccessToken>("unscoped", json!({ "connectionRef": conn }))
        .await;
    setup
        .wait_condition::<DfnsPersonalAccessToken>(
            "unscoped",
            "Stalled",
            "True",
            Some("UnscopedTokenNotAllowed"),
        )
        .await;

    let state = setup.emulator.state();
    assert!(
        state.service_accounts.is_empty() && state.pats.is_empty(),
        "nothing created in Dfns"
    );
    assert!(
        setup
            .secrets()
            .get_opt("wants-other")
            .await
            .unwrap()
            .is_none(),
        "no Secret either"
    );
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_connection_whose_user_lacks_a_dfns_permission_stalls_naming_the_permission() {
    let mut setup = Setup::new("e2e-forbidden").await;
    // An organization user whose only role cannot create service accounts.
    let role = setup
        .admin_client()
        .create_permission(&CreatePermissionRequest {
            name: "reader".into(),
            operations: vec!["Auth:ServiceAccounts:Read".into()],
        })
        .await
        .unwrap()
        .id;
    let (user, key) = dfns_test_support::operator::create_org_user(
        &setup,
        "reader@example.com",
        std::slice::from_ref(&role),
    )
    .await;
    setup
        .create_secret(
            "reader-login",
            &[
                ("DFNS_CRED_ID", user["credId"].as_str().unwrap()),
                ("DFNS_PRIVATE_KEY", key.private_key_pem.expose()),
            ],
        )
        .await;
    setup
        .apply::<DfnsConnection>(
            "reader",
            json!({
                "apiUrl": setup.emulator.api_url(),
                "allowInsecureHttp": true,
                "orgId": setup.emulator.bootstrap().org_id,
                "auth": { "userLogin": { "username": "reader@example.com", "secretRef": { "name": "reader-login" } } },
            }),
        )
        .await;
    setup.start_operator();
    setup.wait_ready::<DfnsConnection>("reader").await;
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": { "kind": "DfnsConnection", "name": "reader" } }),
        )
        .await;
    let message = forbidden_message(&setup, "app").await;
    assert!(
        message.contains("Auth:ServiceAccounts:Create"),
        "the message names the missing permission: {message}"
    );
    assert!(setup.emulator.state().service_accounts.is_empty());
    setup.stop_operator().await;
    setup.assert_no_leaks().await;
}

#[tokio::test]
async fn a_reconcile_that_kubernetes_refuses_still_shows_why_in_the_resource_status() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use kube::api::{Api, PostParams};

    let setup = Setup::new("e2e-rbac-gap").await;
    let ns = setup.namespace().to_owned();
    // Everything the operator needs, except reading Namespaces (needed for namespaceSelector).
    // Cluster-scoped, so labelled for the test: the namespace's clean-up removes them, pass or fail.
    let name = format!("limited-{ns}");
    let labels = setup.cluster_labels();
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "rules": [
            { "apiGroups": ["dfns.io"], "resources": ["*"], "verbs": ["*"] },
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["*"] },
            { "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"] },
        ],
    }))
    .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name }],
    }))
    .unwrap();
    Api::<ClusterRole>::all(setup.kube.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(setup.kube.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    let b = setup.emulator.bootstrap();
    setup.create_admin_login_secret("cluster-login").await;
    let connection = json!({
        "apiVersion": "dfns.io/v1alpha1", "kind": "ClusterDfnsConnection",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "apiUrl": setup.emulator.api_url(), "allowInsecureHttp": true, "orgId": b.org_id,
            "auth": { "userLogin": { "username": b.admin.username, "secretRef": { "name": "cluster-login" } } },
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } },
        },
    });
    Api::<dfns_operator::api::ClusterDfnsConnection>::all(setup.kube.clone())
        .patch(
            &name,
            &kube::api::PatchParams::apply("e2e-test").force(),
            &kube::api::Patch::Apply(&connection),
        )
        .await
        .unwrap();

    // The operator as that user, serving only this test's cluster connection (setup.config()).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(dfns_operator::controller::run(
        setup.cp.impersonating(&name, &[]),
        setup.config(),
        async move {
            let _ = stopped.await;
        },
    ));
    setup
        .apply::<DfnsServiceAccount>(
            "app",
            json!({ "connectionRef": { "kind": "ClusterDfnsConnection", "name": name } }),
        )
        .await;
    let message = forbidden_message(&setup, "app").await;
    assert!(
        message.contains("namespaces"),
        "the message names what was refused: {message}"
    );
    assert!(setup.emulator.state().service_accounts.is_empty());

    assert!(stop.send(()).is_ok(), "the operator had already stopped");
    let result = tokio::time::timeout(std::time::Duration::from_secs(30), operator)
        .await
        .expect("the operator stops within 30 s")
        .expect("the operator's task");
    assert!(result.is_ok(), "the operator failed: {result:?}");
    setup.assert_no_leaks().await;
}
