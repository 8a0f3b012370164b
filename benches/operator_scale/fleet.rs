//! A bench namespace with an emulator, a connection to it, the operator watching it, and the
//! bench's own view (write counters, readiness); plus creating resources in bulk.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dfns_emulator::{Emulator, EmulatorConfig, Faults, RunningEmulator};
use dfns_operator::api::{DfnsConnection, DfnsServiceAccount};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::kube_writes::KubeWrites;
use crate::operator_process::{OperatorOptions, OperatorProcess};
use crate::ready::ReadyTracker;
use dfns_test_support::apiserver_requests::{
    Background, BenchRequestCounter, OperatorRequests, Snapshot, counted_client,
};
use dfns_test_support::operator::opaque_secret;
use dfns_test_support::{ControlPlane, TestNamespace};

pub const CONNECTION: &str = "bench";
/// How long other clients' requests are watched before the operator starts.
const BACKGROUND_WINDOW: Duration = Duration::from_secs(10);
const FIELD_MANAGER: &str = "dfns-bench";

pub struct FleetOptions {
    pub prefix: &'static str,
    pub faults: Faults,
    pub requests_per_minute: u32,
    pub operator_concurrency: u16,
    pub resync_interval: Duration,
    /// Scope the operator to the bench namespace (exact write counts) or watch all namespaces.
    pub operator_watches_only_bench_namespace: bool,
    /// How long one day of `daysValid` lasts in the emulator (86,400 s in Dfns).
    pub seconds_per_valid_day: u32,
    /// Merged into every applied `DfnsServiceAccount`'s spec.
    pub spec_extra: serde_json::Value,
}

impl FleetOptions {
    /// Scenario 1's fleet: Dfns with latency and a rate limit whose bucket starts at the
    /// client's burst, the connection limited to match, the operator watching the bench
    /// namespace only, Dfns' real day and the plain spec.
    pub fn rate_limited(prefix: &'static str, f: &crate::params::FleetParams) -> Self {
        Self {
            prefix,
            faults: Faults {
                latency: f.dfns_latency,
                rate_limit_per_minute: Some(f.requests_per_minute),
                rate_limit_initial_tokens: Some(f.initial_tokens),
                ..Faults::default()
            },
            requests_per_minute: f.requests_per_minute,
            operator_concurrency: f.operator_concurrency,
            resync_interval: f.resync_interval,
            operator_watches_only_bench_namespace: true,
            seconds_per_valid_day: 86_400,
            spec_extra: serde_json::Value::Null,
        }
    }
}

pub struct Fleet {
    // Field order is drop order: the operator stops before the namespace goes.
    pub operator: OperatorProcess,
    pub writes: KubeWrites,
    pub ready: ReadyTracker,
    pub emulator: RunningEmulator,
    /// The bench's client; every request it sends is counted in `bench_requests`.
    pub kube: kube::Client,
    pub bench_requests: BenchRequestCounter,
    /// Other clients' requests on the operator's resources, before the operator started.
    pub background: Background,
    /// Writes the bench itself made in the namespace (subtracted from the watch counts).
    pub own_writes: OwnWrites,
    /// When each resource's apply returned.
    pub applied_at: HashMap<String, Instant>,
    spec_extra: serde_json::Value,
    pub ns: TestNamespace,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OwnWrites {
    pub service_accounts: u64,
    pub connections: u64,
    pub secrets: u64,
}

impl Fleet {
    pub async fn start(cp: &'static ControlPlane, options: FleetOptions) -> Result<Self, String> {
        let (kube, bench_requests) = counted_client(cp.config())?;
        // The local control plane's audit log of kube-controller-manager's requests
        // (tests/controlplane/cluster-up.sh), beside its kubeconfig.
        let audit_log = cp
            .kubeconfig_path()
            .parent()
            .map(|dir| dir.join("state/audit.log"));
        let bench_requests = match audit_log {
            Some(path) => bench_requests.without_controller_manager_in(path),
            None => bench_requests,
        };
        let ns = TestNamespace::new(cp, options.prefix).await;
        let namespace = ns.name().to_owned();
        let emulator = Emulator::start(EmulatorConfig {
            faults: options.faults,
            seconds_per_valid_day: options.seconds_per_valid_day,
            ..EmulatorConfig::default()
        })
        .await
        .map_err(|e| format!("emulator: {e}"))?;
        let writes = KubeWrites::start(&kube, &namespace)
            .await
            .map_err(|e| format!("watching writes: {e}"))?;
        let ready = ReadyTracker::start(&kube, &namespace);
        let mut own_writes = OwnWrites::default();

        create_login_secret(&kube, &namespace, &emulator).await?;
        own_writes.secrets += 1;
        apply_connection(&kube, &namespace, &emulator, options.requests_per_minute).await?;
        own_writes.connections += 1;

        let background = Background::measure(&kube, &bench_requests, BACKGROUND_WINDOW).await?;

        let emulator_host = emulator
            .api_url()
            .split_once("://")
            .map_or(emulator.api_url(), |(_, host)| host)
            .trim_end_matches('/')
            .to_owned();
        let operator = OperatorProcess::spawn(OperatorOptions {
            kubeconfig: cp.kubeconfig_path(),
            namespace: &namespace,
            watch_namespace: options
                .operator_watches_only_bench_namespace
                .then_some(namespace.as_str()),
            resync_interval: options.resync_interval,
            concurrency: options.operator_concurrency,
            allowed_api_hosts: &emulator_host,
            log: bench_dir().join(format!("operator-{}.log", options.prefix)),
        })?;
        let fleet = Self {
            operator,
            writes,
            ready,
            emulator,
            kube,
            bench_requests,
            background,
            own_writes,
            applied_at: HashMap::new(),
            spec_extra: options.spec_extra,
            ns,
        };
        fleet
            .wait_connection_ready(Duration::from_secs(120))
            .await?;
        Ok(fleet)
    }

    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    async fn wait_connection_ready(&self, timeout: Duration) -> Result<(), String> {
        let api: Api<DfnsConnection> = Api::namespaced(self.kube.clone(), self.namespace());
        let deadline = Instant::now() + timeout;
        loop {
            let conn = api
                .get(CONNECTION)
                .await
                .map_err(|e| format!("get connection: {e}"))?;
            let ready = conn.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "connection not Ready after {timeout:?}; status: {:?}",
                    conn.status
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The API server's request counts now, to count the operator's requests from here on.
    pub async fn request_snapshot(&self) -> Result<Snapshot, String> {
        Snapshot::take(&self.kube, &self.bench_requests).await
    }

    /// The operator's requests since `start`.
    pub async fn operator_requests_since(
        &self,
        start: &Snapshot,
    ) -> Result<OperatorRequests, String> {
        let end = self.request_snapshot().await?;
        Ok(OperatorRequests::between(start, &end, &self.background))
    }

    /// Server-side applies `sa-0..count` (as `kubectl apply` would), `concurrency` at a time.
    pub async fn apply_service_accounts(
        &mut self,
        count: usize,
        concurrency: usize,
    ) -> Result<(), String> {
        self.apply_service_accounts_in(0..count, concurrency).await
    }

    /// Server-side applies `sa-<i>` for each `i` in `range`, `concurrency` at a time.
    pub async fn apply_service_accounts_in(
        &mut self,
        range: std::ops::Range<usize>,
        concurrency: usize,
    ) -> Result<(), String> {
        let api: Api<DfnsServiceAccount> = Api::namespaced(self.kube.clone(), self.namespace());
        let params = PatchParams::apply(FIELD_MANAGER);
        let extra = self.spec_extra.clone();
        let results: Vec<Result<(String, Instant), String>> = futures::stream::iter(range)
            .map(|i| {
                let (api, params, extra) = (&api, &params, &extra);
                async move {
                    let name = format!("sa-{i}");
                    let mut spec = json!({ "connectionRef": { "kind": "DfnsConnection", "name": CONNECTION } });
                    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
                        spec.extend(extra.clone());
                    }
                    let body = json!({
                        "apiVersion": "dfns.io/v1alpha1",
                        "kind": "DfnsServiceAccount",
                        "metadata": { "name": name },
                        "spec": spec,
                    });
                    api.patch(&name, params, &Patch::Apply(&body)).await.map_err(|e| format!("apply {name}: {e}"))?;
                    Ok((name, Instant::now()))
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for result in results {
            let (name, at) = result?;
            self.applied_at.insert(name, at);
            self.own_writes.service_accounts += 1;
        }
        Ok(())
    }

    /// Stops the operator and the emulator; the namespace is removed when the fleet is dropped.
    pub async fn stop(self) {
        let Fleet {
            operator,
            emulator,
            writes,
            ready,
            ns,
            ..
        } = self;
        operator.stop().await;
        drop((writes, ready));
        emulator.shutdown().await;
        drop(ns);
    }
}

async fn create_login_secret(
    kube: &kube::Client,
    namespace: &str,
    emulator: &RunningEmulator,
) -> Result<(), String> {
    let admin = &emulator.bootstrap().admin;
    let data = [
        ("DFNS_CRED_ID", admin.cred_id.as_str()),
        ("DFNS_PRIVATE_KEY", admin.private_key.as_str()),
    ];
    let secret = opaque_secret(&format!("{CONNECTION}-login"), &data);
    Api::<Secret>::namespaced(kube.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| format!("create login Secret: {e}"))?;
    Ok(())
}

async fn apply_connection(
    kube: &kube::Client,
    namespace: &str,
    emulator: &RunningEmulator,
    requests_per_minute: u32,
) -> Result<(), String> {
    let bootstrap = emulator.bootstrap();
    let body = json!({
        "apiVersion": "dfns.io/v1alpha1",
        "kind": "DfnsConnection",
        "metadata": { "name": CONNECTION },
        "spec": {
            "apiUrl": emulator.api_url(),
            "allowInsecureHttp": true,
            "orgId": bootstrap.org_id,
            "auth": { "userLogin": { "username": bootstrap.admin.username, "secretRef": { "name": format!("{CONNECTION}-login") } } },
            "rateLimit": { "requestsPerMinute": requests_per_minute },
        },
    });
    Api::<DfnsConnection>::namespaced(kube.clone(), namespace)
        .patch(
            CONNECTION,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| format!("apply connection: {e}"))?;
    Ok(())
}

/// `target/bench/`, where results and operator logs go.
pub fn bench_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    dir
}
