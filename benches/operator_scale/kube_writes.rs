//! Counting Kubernetes writes from the outside: every ADDED and MODIFIED watch event on the kinds
//! the operator writes in the bench namespace. A metadata-only watch sees each write as one event,
//! whoever made it; the bench subtracts its own.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, pin_mut};
use kube::Resource;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::core::NamespaceResourceScope;
use serde::de::DeserializeOwned;

/// Write counts for one kind.
#[derive(Default)]
pub struct KindCounter {
    pub added: AtomicU64,
    pub modified: AtomicU64,
    /// Watches that expired (410 Gone) and were restarted from a fresh list: events in between are
    /// not counted, so a non-zero value marks the count as a lower bound.
    pub gaps: AtomicU64,
}

impl KindCounter {
    pub fn writes(&self) -> u64 {
        self.added.load(Ordering::Relaxed) + self.modified.load(Ordering::Relaxed)
    }
}

/// Counters for the kinds the operator writes, and when any of them last changed.
pub struct KubeWrites {
    pub service_accounts: Arc<KindCounter>,
    pub connections: Arc<KindCounter>,
    pub secrets: Arc<KindCounter>,
    pub events: Arc<KindCounter>,
    last_change: Arc<Mutex<Instant>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A point-in-time copy, to take differences between phases.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteSnapshot {
    pub service_accounts: u64,
    pub connections: u64,
    pub secrets: u64,
    pub events: u64,
    pub gaps: u64,
}

impl WriteSnapshot {
    pub fn minus(self, earlier: WriteSnapshot) -> WriteSnapshot {
        WriteSnapshot {
            service_accounts: self.service_accounts - earlier.service_accounts,
            connections: self.connections - earlier.connections,
            secrets: self.secrets - earlier.secrets,
            events: self.events - earlier.events,
            gaps: self.gaps - earlier.gaps,
        }
    }

    /// Writes to the custom resources and Secrets (the figure the targets are about).
    pub fn resource_and_secret_writes(&self) -> u64 {
        self.service_accounts + self.connections + self.secrets
    }
}

impl KubeWrites {
    /// Starts the watches; returns once each has its starting point, so no later write is missed.
    pub async fn start(client: &kube::Client, namespace: &str) -> Result<Self, kube::Error> {
        let last_change = Arc::new(Mutex::new(Instant::now()));
        let mut tasks = Vec::new();
        let service_accounts = Arc::new(KindCounter::default());
        let connections = Arc::new(KindCounter::default());
        let secrets = Arc::new(KindCounter::default());
        let events = Arc::new(KindCounter::default());
        tasks.push(
            watch_kind::<dfns_operator::api::DfnsServiceAccount>(
                client,
                namespace,
                &service_accounts,
                &last_change,
            )
            .await?,
        );
        tasks.push(
            watch_kind::<dfns_operator::api::DfnsConnection>(
                client,
                namespace,
                &connections,
                &last_change,
            )
            .await?,
        );
        tasks.push(
            watch_kind::<k8s_openapi::api::core::v1::Secret>(
                client,
                namespace,
                &secrets,
                &last_change,
            )
            .await?,
        );
        tasks.push(
            watch_kind::<k8s_openapi::api::events::v1::Event>(
                client,
                namespace,
                &events,
                &last_change,
            )
            .await?,
        );
        Ok(Self {
            service_accounts,
            connections,
            secrets,
            events,
            last_change,
            tasks,
        })
    }

    pub fn snapshot(&self) -> WriteSnapshot {
        WriteSnapshot {
            service_accounts: self.service_accounts.writes(),
            connections: self.connections.writes(),
            secrets: self.secrets.writes(),
            events: self.events.writes(),
            gaps: [
                &self.service_accounts,
                &self.connections,
                &self.secrets,
                &self.events,
            ]
            .iter()
            .map(|c| c.gaps.load(Ordering::Relaxed))
            .sum(),
        }
    }

    /// Waits until no watched object changed for `quiet` (at most `limit`); returns how long it took.
    pub async fn settle(&self, quiet: Duration, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let since = self.last_change.lock().expect("lock").elapsed();
            if since >= quiet || start.elapsed() >= limit {
                return start.elapsed();
            }
            tokio::time::sleep(quiet - since.min(quiet) + Duration::from_millis(50)).await;
        }
    }
}

impl Drop for KubeWrites {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

async fn watch_kind<K>(
    client: &kube::Client,
    namespace: &str,
    counter: &Arc<KindCounter>,
    last_change: &Arc<Mutex<Instant>>,
) -> Result<tokio::task::JoinHandle<()>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let start = current_version(&api).await?;
    let (counter, last_change) = (counter.clone(), last_change.clone());
    Ok(tokio::spawn(async move {
        let mut version = start;
        loop {
            match count_until_closed(&api, &mut version, &counter, &last_change).await {
                Ok(()) => {}
                Err(Restart::Expired) => {
                    counter.gaps.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "bench: {} watch expired; counts from here on are a lower bound",
                        K::kind(&())
                    );
                    match current_version(&api).await {
                        Ok(v) => version = v,
                        Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                }
                // A dropped connection resumes from the last version seen: nothing is lost.
                Err(Restart::Failed) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }))
}

enum Restart {
    Expired,
    Failed,
}

async fn current_version<K>(api: &Api<K>) -> Result<String, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let list = api.list_metadata(&ListParams::default().limit(1)).await?;
    Ok(list.metadata.resource_version.unwrap_or_default())
}

async fn count_until_closed<K>(
    api: &Api<K>,
    version: &mut String,
    counter: &KindCounter,
    last_change: &Mutex<Instant>,
) -> Result<(), Restart>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let stream = api
        .watch_metadata(&WatchParams::default().timeout(290), version)
        .await
        .map_err(|_| Restart::Failed)?;
    pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let event = event.map_err(|_| Restart::Failed)?;
        let (changed, object_version) = match event {
            WatchEvent::Added(o) => {
                counter.added.fetch_add(1, Ordering::Relaxed);
                (true, o.metadata.resource_version)
            }
            WatchEvent::Modified(o) => {
                counter.modified.fetch_add(1, Ordering::Relaxed);
                (true, o.metadata.resource_version)
            }
            WatchEvent::Deleted(o) => (true, o.metadata.resource_version),
            WatchEvent::Bookmark(b) => (false, Some(b.metadata.resource_version)),
            WatchEvent::Error(status) if status.code == 410 => return Err(Restart::Expired),
            WatchEvent::Error(_) => return Err(Restart::Failed),
        };
        if changed {
            *last_change.lock().expect("lock") = Instant::now();
        }
        if let Some(v) = object_version {
            *version = v;
        }
    }
    Ok(())
}
