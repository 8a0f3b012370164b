//! A namespace per test, removed again with the test's cluster-scoped objects when the test ends
//! (pass or fail).

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

use super::control_plane::ControlPlane;

/// Group whose custom resources carry operator finalizers that must not block namespace deletion.
const OPERATOR_GROUP: &str = "dfns.io";
/// Label on every namespace the harness creates, to find leftovers of killed test runs.
pub const TEST_NAMESPACE_LABEL: &str = "dfns.io/test-namespace";
/// Label on a test's cluster-scoped objects, naming the test's namespace: the test's operators
/// serve only the `ClusterDfnsConnection`s carrying it, and the namespace's clean-up removes them
/// and the ClusterRoles and ClusterRoleBindings carrying it.
pub const TEST_OWNER_LABEL: &str = "dfns.io/e2e-test";

/// A uniquely named namespace (`<prefix>-<random>`). Dropping it deletes the namespace and strips
/// the finalizers of `dfns.io` resources in it, so deletion completes even when no operator is
/// left running to remove them; kube-controller-manager's namespace controller does the rest.
pub struct TestNamespace {
    name: String,
    config: kube::Config,
}

impl TestNamespace {
    /// Creates the namespace. `prefix` must be a valid DNS label prefix (lowercase, digits, '-').
    pub async fn new(cp: &ControlPlane, prefix: &str) -> Self {
        let api: Api<Namespace> = Api::all(cp.client());
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = api
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating test namespace {prefix}-*: {e}"));
        let name = created
            .metadata
            .name
            .expect("the API server names generateName objects");
        Self {
            name,
            config: cp.config(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot be async and may run inside (or after) the test's runtime, so the clean-up
        // gets its own thread and runtime. Failures are reported, not raised: panicking in drop
        // during a test failure's unwinding would abort the whole test binary.
        let (name, config) = (self.name.clone(), self.config.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(delete_namespace(&name, config))
                .map_err(std::io::Error::other)
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test namespace {}: clean-up failed: {e}", self.name),
            Err(_) => eprintln!("test namespace {}: clean-up panicked", self.name),
        }
    }
}

async fn delete_namespace(name: &str, config: kube::Config) -> Result<(), kube::Error> {
    let client = kube::Client::try_from(config)?;
    let owned = ListParams::default().labels(&format!("{TEST_OWNER_LABEL}={name}"));
    Api::<dfns_operator::api::ClusterDfnsConnection>::all(client.clone())
        .delete_collection(&DeleteParams::background(), &owned)
        .await?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .delete_collection(&DeleteParams::background(), &owned)
        .await?;
    Api::<ClusterRole>::all(client.clone())
        .delete_collection(&DeleteParams::background(), &owned)
        .await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    // After the delete so that a still-running operator cannot add the finalizers back to
    // objects that are already being deleted.
    strip_operator_finalizers(&client, name).await
}

async fn strip_operator_finalizers(
    client: &kube::Client,
    namespace: &str,
) -> Result<(), kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let clear_finalizers = Patch::Merge(serde_json::json!({ "metadata": { "finalizers": null } }));
    for crd in crds.list(&ListParams::default()).await? {
        let spec = &crd.spec;
        if spec.group != OPERATOR_GROUP || spec.scope != "Namespaced" {
            continue;
        }
        let Some(version) = spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let gvk = GroupVersionKind::gvk(&spec.group, &version.name, &spec.names.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &spec.names.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in api.list(&ListParams::default()).await? {
            if object
                .metadata
                .finalizers
                .as_ref()
                .is_none_or(Vec::is_empty)
            {
                continue;
            }
            let object_name = object.metadata.name.unwrap_or_default();
            match api
                .patch(&object_name, &PatchParams::default(), &clear_finalizers)
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
