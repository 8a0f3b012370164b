//! The operator under test ([`Setup`]): a namespace on the real control plane, an in-process
//! Dfns emulator, a connection as its bootstrap admin, and the operator itself (in-process,
//! watching only the test's namespace and the test's cluster-scoped objects), plus helpers to
//! read what it wrote, wait on it without passing vacuously, and check it leaked nothing.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use dfns_client::keys::{GeneratedKeyPair, generate_p256};
use dfns_client::{ClientConfig, DfnsClient};
use dfns_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use dfns_operator::api::{ClusterDfnsConnection, CredentialStatus, DfnsConnection};
use dfns_operator::controller::allowed_hosts::{AllowedHosts, DEFAULT_ALLOWED_API_HOSTS};
use dfns_operator::controller::restart_targets::RolloutRestarts;
use dfns_operator::controller::run::RunError;
use dfns_operator::controller::{ControllerConfig, RunOptions};
use dfns_operator::telemetry::{KubeWriteCounterLayer, Metrics};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::oneshot;

use crate::{ControlPlane, TEST_OWNER_LABEL, TestNamespace};

/// How long a test waits for the operator to reach a state.
pub const WAIT: Duration = Duration::from_secs(90);

/// A namespaced Kubernetes resource a test can apply, read and wait on.
pub trait NamespacedResource:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
{
}

impl<K> NamespacedResource for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
{
}

pub struct Setup {
    pub cp: &'static ControlPlane,
    pub ns: TestNamespace,
    pub kube: Client,
    pub emulator: RunningEmulator,
    operator: Option<Operator>,
    /// The metrics of every operator this setup started, searched by the leak check.
    pub(crate) all_metrics: Vec<Arc<Metrics>>,
}

/// The operator running in this process until stopped or dropped.
pub struct Operator {
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    /// Its metrics: reconciles, Kubernetes writes (counted on its client), Dfns requests.
    pub metrics: Arc<Metrics>,
}

impl Operator {
    /// Shuts the operator down and asserts it stopped cleanly, by itself, within 30 s: a test
    /// must not pass because the operator died or hung.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            assert!(tx.send(()).is_ok(), "the operator had already stopped");
        }
        match tokio::time::timeout(Duration::from_secs(30), &mut self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => panic!("the operator failed: {error}"),
            Ok(Err(error)) => panic!("the operator's task failed: {error}"),
            Err(_) => panic!("the operator did not stop within 30 s of shutdown"),
        }
    }

    /// Its Kubernetes writes so far (see [`kubernetes_writes`]).
    pub fn kubernetes_writes(&self) -> u64 {
        kubernetes_writes(&self.metrics)
    }

    /// Panics if the operator has stopped (it only stops when told to).
    pub fn assert_running(&mut self) {
        if let Some(result) = futures::FutureExt::now_or_never(&mut self.task) {
            panic!("the operator stopped by itself: {result:?}");
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        // A test that never stopped its operator still learns if it died on the way.
        let stop_requested = self.shutdown.is_none();
        if !stop_requested && self.task.is_finished() && !std::thread::panicking() {
            self.assert_running();
        }
        self.task.abort();
    }
}

impl Setup {
    pub async fn new(prefix: &str) -> Self {
        // The strict profile: no kinder than Dfns' reference pages.
        Self::with_emulator(prefix, EmulatorConfig::default()).await
    }

    /// As [`Setup::new`] with this emulator configuration (e.g. listening on the node IP, where
    /// the node's pods reach it).
    pub async fn with_emulator(prefix: &str, emulator: EmulatorConfig) -> Self {
        dfns_client::install_crypto_provider();
        crate::logs::capture();
        let cp = ControlPlane::shared();
        cp.apply_crds().await.expect("CRDs installed");
        let ns = TestNamespace::new(cp, prefix).await;
        let emulator = Emulator::start(emulator).await.expect("emulator starts");
        Self {
            cp,
            kube: cp.client(),
            ns,
            emulator,
            operator: None,
            all_metrics: Vec::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    pub fn config(&self) -> ControllerConfig {
        ControllerConfig {
            operator_namespace: self.namespace().into(),
            resync_interval: Duration::from_secs(600),
            approval_check_interval: Duration::from_secs(60),
            concurrency: 8,
            watch_namespace: Some(self.namespace().into()),
            cluster_connection_selector: Some(self.cluster_selector()),
            request_observer: None,
            seal_key_secret: "dfns-operator-seal-key".into(),
            allowed_api_hosts: AllowedHosts::parse(&self.allowed_api_hosts())
                .expect("the emulator's host is a valid pattern"),
            rollout_restarts: RolloutRestarts::default(),
            max_list_response_bytes: dfns_client::DEFAULT_MAX_LIST_RESPONSE_BYTES,
        }
    }

    /// `--allowed-api-hosts` for this test's operators: Dfns' public hosts and the emulator's
    /// host and port (no other port of that host).
    pub fn allowed_api_hosts(&self) -> String {
        let url = reqwest::Url::parse(self.emulator.api_url()).expect("the emulator's URL");
        let port = url.port_or_known_default().expect("the emulator's port");
        format!(
            "{DEFAULT_ALLOWED_API_HOSTS},{}:{port}",
            url.host_str().expect("the emulator's host")
        )
    }

    /// Labels for this test's cluster-scoped objects: its operators serve only those, and they
    /// are removed with the test's namespace, also when the test fails.
    pub fn cluster_labels(&self) -> BTreeMap<String, String> {
        [(TEST_OWNER_LABEL.to_owned(), self.namespace().to_owned())].into()
    }

    /// The label selector picking this test's cluster-scoped objects.
    pub fn cluster_selector(&self) -> String {
        format!("{TEST_OWNER_LABEL}={}", self.namespace())
    }

    /// Starts the operator in-process, scoped to the test namespace.
    pub fn start_operator(&mut self) {
        self.start_operator_with(self.config());
    }

    pub fn start_operator_with(&mut self, config: ControllerConfig) {
        assert!(self.operator.is_none(), "an operator is running already");
        let operator = self.spawn_operator(config);
        self.operator = Some(operator);
    }

    /// Another operator in this process, e.g. one watching a second tenant's namespace; the
    /// caller stops it. Its metrics are searched by the leak check like the main one's.
    pub fn spawn_operator(&mut self, config: ControllerConfig) -> Operator {
        let (tx, rx) = oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::new());
        let kube = kube::client::ClientBuilder::try_from(self.cp.config())
            .expect("kube client")
            .with_layer(&KubeWriteCounterLayer::new(metrics.clone()))
            .build();
        let options = RunOptions {
            metrics: metrics.clone(),
            ..RunOptions::default()
        };
        let task = tokio::spawn(dfns_operator::controller::run_with(
            kube,
            config,
            options,
            async move {
                let _ = rx.await;
            },
        ));
        self.all_metrics.push(metrics.clone());
        Operator {
            shutdown: Some(tx),
            task,
            metrics,
        }
    }

    /// Stops the running operator, asserting it stops cleanly (see [`Operator::stop`]).
    pub async fn stop_operator(&mut self) {
        let operator = self.operator.take().expect("an operator is running");
        operator.stop().await;
    }

    /// The running operator.
    pub fn operator(&mut self) -> &mut Operator {
        self.operator.as_mut().expect("an operator is running")
    }

    /// Waits until the running operator has finished at least `count` reconciles of `kind`
    /// (e.g. `"DfnsServiceAccount"`): proof that a "nothing changed" check follows real work.
    pub async fn wait_reconciles(&mut self, kind: &str, count: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let operator = self.operator();
            operator.assert_running();
            let done = operator.metrics.reconcile_count(kind);
            if done >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind}: {done} reconciles, expected at least {count}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A role with `operations`, the `DfnsConnection` `main` allowing only it, and this test's
    /// operator running with the connection Ready; returns the role's id.
    pub async fn running_with_role(&mut self, role_name: &str, operations: &[&str]) -> String {
        let role = self.create_role(role_name, operations).await;
        self.admin_connection("main", json!({ "allowedPermissionIds": [role] }))
            .await;
        self.start_operator();
        self.wait_ready::<DfnsConnection>("main").await;
        role
    }

    /// A Secret with the bootstrap admin's login key and a `DfnsConnection` using it.
    pub async fn admin_connection(
        &self,
        name: &str,
        spec_extra: serde_json::Value,
    ) -> DfnsConnection {
        let admin = &self.emulator.bootstrap().admin;
        let secret_name = format!("{name}-login");
        self.create_admin_login_secret(&secret_name).await;
        let mut spec = json!({
            "apiUrl": self.emulator.api_url(),
            "allowInsecureHttp": true,
            "orgId": self.emulator.bootstrap().org_id,
            "auth": { "userLogin": { "username": admin.username, "secretRef": { "name": secret_name } } },
        });
        merge(&mut spec, spec_extra);
        self.apply::<DfnsConnection>(name, spec).await
    }

    /// Applies the `ClusterDfnsConnection` `name` as the bootstrap admin, logging in with the
    /// Secret `login_secret` in this namespace (the test's operator namespace), with `spec_extra`
    /// merged into its spec. It carries [`Setup::cluster_labels`], so only this test's operators
    /// serve it and it goes with the test's namespace.
    pub async fn admin_cluster_connection(
        &self,
        name: &str,
        login_secret: &str,
        spec_extra: serde_json::Value,
    ) -> ClusterDfnsConnection {
        let boot = self.emulator.bootstrap();
        let mut spec = json!({
            "apiUrl": self.emulator.api_url(),
            "allowInsecureHttp": true,
            "orgId": boot.org_id,
            "auth": { "userLogin": { "username": boot.admin.username, "secretRef": { "name": login_secret } } },
        });
        merge(&mut spec, spec_extra);
        let body = json!({
            "apiVersion": "dfns.io/v1alpha1", "kind": "ClusterDfnsConnection",
            "metadata": { "name": name, "labels": self.cluster_labels() },
            "spec": spec,
        });
        Api::<ClusterDfnsConnection>::all(self.kube.clone())
            .patch(
                name,
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("apply ClusterDfnsConnection")
    }

    /// A Secret with the bootstrap admin's credential id and login key, as a connection's
    /// `secretRef` expects them.
    pub async fn create_admin_login_secret(&self, name: &str) -> Secret {
        let admin = &self.emulator.bootstrap().admin;
        self.create_secret(
            name,
            &[
                ("DFNS_CRED_ID", &admin.cred_id),
                ("DFNS_PRIVATE_KEY", &admin.private_key),
            ],
        )
        .await
    }

    pub async fn create_secret(&self, name: &str, data: &[(&str, &str)]) -> Secret {
        self.secrets()
            .create(&PostParams::default(), &opaque_secret(name, data))
            .await
            .expect("create secret")
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), self.namespace())
    }

    pub fn api<K: NamespacedResource>(&self) -> Api<K> {
        Api::namespaced(self.kube.clone(), self.namespace())
    }

    /// Server-side applies `{apiVersion, kind, metadata.name, spec}` as a user would.
    pub async fn apply<K: NamespacedResource>(&self, name: &str, spec: serde_json::Value) -> K {
        let body = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": { "name": name },
            "spec": spec,
        });
        self.api::<K>()
            .patch(
                name,
                &PatchParams::apply("e2e-test").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap_or_else(|e| panic!("apply {} {name}: {e}", K::kind(&())))
    }

    /// Waits until the resource's condition `type_` has `status` (and `reason`, if given) and was
    /// written for the resource's current generation, so a condition left from before a spec
    /// change never satisfies it.
    pub async fn wait_condition<K: NamespacedResource>(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> K {
        let api = self.api::<K>();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let obj = api.get(name).await.expect("get resource");
            let value = serde_json::to_value(&obj).unwrap();
            let conditions = value["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let generation = &value["metadata"]["generation"];
            let found = conditions.iter().find(|c| c["type"] == type_);
            let ok = found.is_some_and(|c| {
                c["status"] == status
                    && reason.is_none_or(|r| c["reason"] == r)
                    && !generation.is_null()
                    && c["observedGeneration"] == *generation
            });
            if ok {
                return obj;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{} {name} (generation {}): condition {type_}={status} ({reason:?}) not reached; status: {}",
                    K::kind(&()),
                    value["metadata"]["generation"],
                    value["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_ready<K: NamespacedResource>(&self, name: &str) -> K {
        self.wait_condition::<K>(name, "Ready", "True", None).await
    }

    /// Waits until the resource no longer exists.
    pub async fn wait_gone<K: NamespacedResource>(&self, name: &str) {
        let api = self.api::<K>();
        let deadline = tokio::time::Instant::now() + WAIT;
        while api.get_opt(name).await.expect("get").is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} {name} was not deleted",
                K::kind(&())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A Dfns role (permission) with these operations, created by the bootstrap admin; its id.
    pub async fn create_role(&self, name: &str, operations: &[&str]) -> String {
        self.admin_client()
            .create_permission(&dfns_client::types::permission::CreatePermissionRequest {
                name: name.into(),
                operations: operations.iter().map(|o| (*o).to_owned()).collect(),
            })
            .await
            .expect("create role")
            .id
    }

    /// A Dfns client acting as the bootstrap admin (to prepare roles, users, and check results).
    pub fn admin_client(&self) -> DfnsClient {
        let (auth, signer) = crate::dfns::admin_login(&self.emulator);
        let api_url = self.emulator.bootstrap().api_url.clone();
        let mut config = ClientConfig::new(api_url, auth, signer);
        config.allow_insecure_http = true;
        DfnsClient::new(config).expect("admin client")
    }
}

/// A new organization user in the emulator with one Key credential and these roles; returns the
/// emulator's answer (`userId`, `credId`, …) and the user's key.
pub async fn create_org_user(
    setup: &Setup,
    username: &str,
    permission_ids: &[String],
) -> (serde_json::Value, GeneratedKeyPair) {
    let key = generate_p256().expect("generate key");
    let user = create_org_user_with_key(setup, username, &key.public_key_pem, permission_ids).await;
    (user, key)
}

/// A new organization user in the emulator whose Key credential is `public_key_pem` (any key
/// type Dfns accepts); returns the emulator's answer (`userId`, `credId`, …).
pub async fn create_org_user_with_key(
    setup: &Setup,
    username: &str,
    public_key_pem: &str,
    permission_ids: &[String],
) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{}/_emulator/users", setup.emulator.api_url()))
        .json(&json!({ "username": username, "publicKey": public_key_pem, "permissionIds": permission_ids }))
        .send()
        .await
        .expect("emulator reachable")
        .error_for_status()
        .expect("user created")
        .json()
        .await
        .expect("JSON answer")
}

pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8(b.0.clone()).expect("utf-8"))
}

pub fn secret_map(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).expect("utf-8")))
        .collect()
}

/// The `Ready` condition of a credential resource's status.
pub fn ready_condition(
    status: Option<&CredentialStatus>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    condition(&status.expect("a status").conditions, "Ready")
}

/// The condition of type `type_` among a status's conditions.
pub fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
        .unwrap_or_else(|| panic!("a {type_} condition"))
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
}

/// Every Kubernetes write an operator made, summed over verbs and resources: the
/// `dfns_operator_kubernetes_writes_total` samples of its metrics, counted on its client.
pub fn kubernetes_writes(metrics: &Metrics) -> u64 {
    kubernetes_writes_by_resource(metrics).values().sum()
}

/// An operator's Kubernetes writes by resource (`secrets`, `dfnsconnections/status`, …), over
/// all verbs.
pub fn kubernetes_writes_by_resource(metrics: &Metrics) -> BTreeMap<String, u64> {
    let mut writes = BTreeMap::new();
    for line in metrics.encode().lines() {
        let Some(labels) = line.strip_prefix("dfns_operator_kubernetes_writes_total{") else {
            continue;
        };
        let (labels, value) = labels
            .rsplit_once("} ")
            .unwrap_or_else(|| panic!("metrics sample {line:?}"));
        let resource = labels
            .split(',')
            .find_map(|label| label.strip_prefix("resource="))
            .unwrap_or_else(|| panic!("no resource label in {line:?}"))
            .trim_matches('"');
        let count = value
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("metrics sample {line:?}: {e}")) as u64;
        *writes.entry(resource.to_owned()).or_default() += count;
    }
    writes
}

/// A Secret named `name` holding `data` as text.
pub fn opaque_secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}
