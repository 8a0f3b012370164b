//! Smoke test of the real control plane: the API server serves our CRDs the way production
//! clusters do (structural schema, status subresource, CEL validation), and the controllers the
//! harness relies on (namespace deletion, garbage collection) and impersonation work.

use std::time::Duration;

use dfns_test_support::{ControlPlane, TestNamespace};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

// Objects are handled untyped so this test checks the YAML in crds/ as the API server sees it,
// independently of the Rust types it is generated from.
const GROUP: &str = "dfns.io";
const VERSION: &str = "v1alpha1";
const KIND: &str = "DfnsConnection";
const PLURAL: &str = "dfnsconnections";
const ALL_KINDS: [&str; 4] = [
    "DfnsConnection",
    "ClusterDfnsConnection",
    "DfnsServiceAccount",
    "DfnsPersonalAccessToken",
];
const WAIT: Duration = Duration::from_secs(60);

async fn install_crds(cp: &ControlPlane) {
    cp.apply_crds()
        .await
        .expect("CRDs from crds/ install and become Established");
}

fn connections(cp: &ControlPlane, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(GROUP, VERSION, KIND);
    Api::namespaced_with(
        cp.client(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, PLURAL),
    )
}

fn connection(name: &str, auth: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": { "name": name },
        "spec": { "apiUrl": "https://api.dfns.io", "orgId": "or-smoke-test", "auth": auth },
    }))
    .expect("valid object")
}

fn token_auth() -> serde_json::Value {
    json!({ "token": { "secretRef": { "name": "dfns-token" } } })
}

#[tokio::test]
async fn api_server_reports_the_pinned_kubernetes_release() {
    let version = ControlPlane::shared()
        .client()
        .apiserver_version()
        .await
        .expect("/version");
    assert_eq!(version.git_version, "v1.36.3");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "36")
    );
}

#[tokio::test]
async fn crds_become_established_and_are_served() {
    let cp = ControlPlane::shared();
    install_crds(cp).await;
    let discovery = kube::Discovery::new(cp.client())
        .filter(&[GROUP])
        .run()
        .await
        .expect("discovery");
    let kinds: Vec<String> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .map(|(r, _)| r.kind)
        .collect();
    for kind in ALL_KINDS {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from discovery: {kinds:?}"
        );
    }
}

#[tokio::test]
async fn custom_resource_round_trips() {
    let cp = ControlPlane::shared();
    install_crds(cp).await;
    let ns = TestNamespace::new(cp, "smoke-roundtrip").await;
    let api = connections(cp, ns.name());

    let sent = connection("round-trip", token_auth());
    api.create(&PostParams::default(), &sent)
        .await
        .expect("create");
    let read = api.get("round-trip").await.expect("get");

    // Every field sent comes back unchanged (the schema may add defaults next to them).
    let read_spec = read.data["spec"].as_object().expect("spec is an object");
    for (field, value) in sent.data["spec"].as_object().expect("spec is an object") {
        assert_eq!(read_spec.get(field), Some(value), "spec.{field}");
    }
    assert_eq!(read.metadata.generation, Some(1));
}

#[tokio::test]
async fn status_subresource_is_written_separately_from_spec() {
    let cp = ControlPlane::shared();
    install_crds(cp).await;
    let ns = TestNamespace::new(cp, "smoke-status").await;
    let api = connections(cp, ns.name());
    api.create(
        &PostParams::default(),
        &connection("with-status", token_auth()),
    )
    .await
    .expect("create");

    let status = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": KIND,
        "status": { "observedGeneration": 1, "conditions": [{
            "type": "Ready", "status": "True", "reason": "Verified", "message": "credentials work",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }] },
    });
    let params = PatchParams::apply("smoke-test").force();
    let patched = api
        .patch_status("with-status", &params, &Patch::Apply(&status))
        .await
        .expect("patch status");
    assert_eq!(
        patched.data["status"]["conditions"][0]["reason"],
        "Verified"
    );
    assert_eq!(
        patched.metadata.generation,
        Some(1),
        "a status write must not bump generation"
    );

    // Through the main resource, status is ignored: that is what makes the subresource the only
    // writer of status, and it is what the operator's RBAC split (spec vs status) relies on.
    let via_main = json!({ "status": { "observedGeneration": 7 } });
    let after = api
        .patch(
            "with-status",
            &PatchParams::default(),
            &Patch::Merge(&via_main),
        )
        .await
        .expect("patch");
    assert_eq!(after.data["status"]["observedGeneration"], 1);
}

#[tokio::test]
async fn cel_rule_rejects_both_auth_modes_with_its_message() {
    let cp = ControlPlane::shared();
    install_crds(cp).await;
    let ns = TestNamespace::new(cp, "smoke-cel").await;
    let api = connections(cp, ns.name());

    let both = json!({
        "token": { "secretRef": { "name": "dfns-token" } },
        "userLogin": { "username": "ops@example.com", "secretRef": { "name": "dfns-login" } },
    });
    let err = api
        .create(&PostParams::default(), &connection("both-modes", both))
        .await
        .expect_err("CEL must reject");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status
            .message
            .contains("exactly one of auth.token or auth.userLogin"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn garbage_collector_deletes_dependents_of_a_deleted_owner() {
    let cp = ControlPlane::shared();
    let ns = TestNamespace::new(cp, "smoke-gc").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(cp.client(), ns.name());
    let owner = config_maps
        .create(&PostParams::default(), &named_config_map("owner", None))
        .await
        .expect("owner");
    let reference = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().expect("created objects have a uid"),
        ..OwnerReference::default()
    };
    let dependent = config_maps
        .create(
            &PostParams::default(),
            &named_config_map("dependent", Some(reference)),
        )
        .await
        .expect("dependent");
    let dependent_uid = dependent.uid().expect("created objects have a uid");

    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    let gone = await_condition(
        config_maps.clone(),
        "dependent",
        conditions::is_deleted(&dependent_uid),
    );
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("garbage collector removes the dependent")
        .expect("watch");
}

/// Also proves the harness's clean-up: a finalizer that no operator will ever remove would keep
/// the namespace Terminating forever unless dropping the TestNamespace strips it.
#[tokio::test]
async fn dropping_a_test_namespace_deletes_it_despite_operator_finalizers() {
    let cp = ControlPlane::shared();
    install_crds(cp).await;
    let namespaces: Api<Namespace> = Api::all(cp.client());
    let (name, uid) = {
        let ns = TestNamespace::new(cp, "smoke-ns-delete").await;
        let config_maps: Api<ConfigMap> = Api::namespaced(cp.client(), ns.name());
        config_maps
            .create(&PostParams::default(), &named_config_map("content", None))
            .await
            .expect("content");
        let mut finalized = connection("finalized", token_auth());
        finalized.metadata.finalizers = Some(vec!["dfns.io/smoke-test-never-removed".into()]);
        connections(cp, ns.name())
            .create(&PostParams::default(), &finalized)
            .await
            .expect("connection with finalizer");
        let uid = namespaces
            .get(ns.name())
            .await
            .expect("namespace")
            .uid()
            .expect("uid");
        (ns.name().to_owned(), uid)
    }; // dropping the TestNamespace deletes it
    let gone = await_condition(namespaces, &name, conditions::is_deleted(&uid));
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("namespace controller finalizes the namespace")
        .expect("watch");
}

#[tokio::test]
async fn impersonated_service_account_gets_only_its_rbac() {
    let cp = ControlPlane::shared();
    let ns = TestNamespace::new(cp, "smoke-impersonate").await;
    let user = format!("system:serviceaccount:{}:nobody", ns.name());
    let as_nobody: Api<ConfigMap> = Api::namespaced(cp.impersonating(&user, &[]), ns.name());

    let err = as_nobody
        .list(&Default::default())
        .await
        .expect_err("no RBAC grants this");
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err}")
    };
    assert_eq!(status.code, 403);
    assert!(
        status.message.contains(&user),
        "the request ran as the impersonated user: {}",
        status.message
    );
}

fn named_config_map(name: &str, owner: Option<OwnerReference>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    }
}
