//! What every reconcile shares: the Kubernetes client, settings, connection clients, the Dfns
//! inventory, the event recorder and per-object failure backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::runtime::reflector::ObjectRef;
use rand::RngExt;

use super::allowed_hosts::AllowedHosts;
use super::connection_slots::ConnectionSlots;
use super::dfns_clients::{ConnectionStores, DfnsClients};
use super::event_series::EventPublisher;
use super::inventory::Inventory;
use super::own_writes::OwnWrites;
use super::owned_secrets::OwnedSecrets;
use super::restart_targets::RolloutRestarts;
use super::seal::Sealer;
use crate::telemetry::Metrics;

#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Where the operator runs; the Secrets of `ClusterDfnsConnection`s live here.
    pub operator_namespace: String,
    /// How often an idle resource is compared with Dfns (jittered by up to 10%).
    pub resync_interval: Duration,
    /// How often a write held for a Dfns policy approval is looked at again.
    pub approval_check_interval: Duration,
    /// Reconciles running at once, per kind.
    pub concurrency: u16,
    /// Watch only this namespace's resources (default: all namespaces).
    pub watch_namespace: Option<String>,
    /// Serve only the `ClusterDfnsConnection`s with these labels (a Kubernetes label selector,
    /// e.g. `dfns.io/shard=a`); default: all of them.
    pub cluster_connection_selector: Option<String>,
    /// Told about every Dfns HTTP exchange, for metrics.
    pub request_observer: Option<dfns_client::RequestObserver>,
    /// The Secret in `operator_namespace` holding the key that seals recorded ids (`seal.rs`);
    /// created on first start.
    pub seal_key_secret: String,
    /// The API hosts a connection may name (`--allowed-api-hosts`); others go Stalled unasked.
    pub allowed_api_hosts: AllowedHosts,
    /// Restarting `rolloutRestartTargets` after a Secret switched.
    pub rollout_restarts: RolloutRestarts,
    /// The cap on a Dfns list answer (service accounts, PATs: unpaginated), in bytes
    /// (`--max-list-response-bytes`; `dfns_client::DEFAULT_MAX_LIST_RESPONSE_BYTES`).
    pub max_list_response_bytes: usize,
}

pub struct Context {
    pub kube: Client,
    pub config: ControllerConfig,
    pub dfns_clients: DfnsClients,
    pub inventory: Inventory,
    /// The owned Secrets' watch: which exist, and which versions the operator wrote.
    pub owned_secrets: Arc<OwnedSecrets>,
    /// The credential status writes the watch has not reported yet.
    pub own_writes: Arc<OwnWrites>,
    pub sealer: Arc<Sealer>,
    /// Each connection's share of the workers.
    pub connection_slots: ConnectionSlots,
    /// Counters the reconcilers feed directly (rule enforcement, credentials left active).
    pub metrics: Arc<Metrics>,
    events: EventPublisher,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// `gate` is shared by every Dfns client: closed at shutdown, and past its deadline when
    /// this replica's leadership may have expired. Connections are read from `connection_stores`
    /// (with a GET on a miss), or always with a GET without them.
    pub fn new(
        kube: Client,
        config: ControllerConfig,
        connection_stores: Option<ConnectionStores>,
        sealer: Sealer,
        gate: dfns_client::Gate,
        metrics: Arc<Metrics>,
    ) -> Self {
        let reporter = Reporter {
            controller: "dfns-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            dfns_clients: DfnsClients::new(
                kube.clone(),
                connection_stores,
                config.operator_namespace.clone(),
                config.request_observer.clone(),
                gate,
                config.allowed_api_hosts.clone(),
                config.max_list_response_bytes,
            ),
            connection_slots: ConnectionSlots::for_workers(config.concurrency),
            inventory: Inventory::new(config.resync_interval),
            owned_secrets: Arc::default(),
            own_writes: Arc::default(),
            sealer: Arc::new(sealer),
            metrics,
            events: EventPublisher::new(kube.clone(), reporter),
            failures: Mutex::default(),
            kube,
            config,
        }
    }

    /// Publishes an Event; repeats are folded into a series (`event_series.rs`). Failing to publish is
    /// logged, never fatal. Notes carry ids and reasons only, never secrets.
    pub async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.into(),
            // Notes quote error texts; the scrub catches any secret they carry (dfns_client::redact).
            note: Some(dfns_client::scrub(&note)),
            action: reason.into(),
            secondary: None,
        };
        if let Err(error) = self.events.publish(&event, reference).await {
            tracing::warn!(%error, reason, "could not publish event");
        }
    }

    /// The resync interval with up to 10% jitter, so idle resources do not all wake together.
    pub fn resync_delay(&self) -> Duration {
        jitter(self.config.resync_interval)
    }

    /// Backoff for the next attempt after a failure: 5 s doubling to 5 min, jittered.
    pub fn failure_delay<K: kube::Resource>(&self, object: &ObjectRef<K>) -> Duration
    where
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        let mut failures = self.failures.lock().expect("failures lock");
        let attempts = failures.entry(object.to_string()).or_default();
        *attempts = attempts.saturating_add(1);
        let base = Duration::from_secs(5).saturating_mul(1 << (*attempts - 1).min(6));
        jitter(base.min(Duration::from_secs(300)))
    }

    pub fn succeeded<K: kube::Resource>(&self, object: &ObjectRef<K>)
    where
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&object.to_string());
    }
}

fn jitter(base: Duration) -> Duration {
    let spread = base.as_millis() as u64 / 10;
    base + Duration::from_millis(if spread == 0 {
        0
    } else {
        rand::rng().random_range(0..=spread)
    })
}
