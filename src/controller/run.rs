//! Wiring the controllers: one per kind, sharing one context, while this replica leads and until
//! shutdown; with metrics and probes around them.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfns_client::Gate;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerRuntimeConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::task::JoinSet;

use super::cache::stripped_into_store;
use super::connection::{self, ConnectionResource};
use super::connection_feed::ConnectionFeed;
use super::context::{Context, ControllerConfig};
use super::credential::{self, CredentialResource};
use super::dfns_clients::ConnectionStores;
use super::drift_watch;
use super::error::Error;
use super::fence::fenced_client;
use super::leader::{LeaderElector, Leadership, LeaseConfig, LeaseConfigError};
use super::own_writes::OwnWrites;
use super::seal::{SealKeyError, Sealer};
use super::secret_layout::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::api::{
    ClusterDfnsConnection, ConnectionKind, DfnsConnection, DfnsPersonalAccessToken,
    DfnsServiceAccount,
};
use crate::telemetry::health::Phase;
use crate::telemetry::{
    CredentialSample, CredentialSource, CredentialState, Health, Metrics, ReconcileOutcome,
};

/// How the process around the controllers is run; the default is a single replica without
/// leader election, with metrics and health kept but not served (what tests use).
#[derive(Default)]
pub struct RunOptions {
    /// Reconcile only while holding this Lease.
    pub leader_election: Option<LeaseConfig>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

/// Why the operator could not run, or stopped reconciling.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot list {kind} ({source}); are the CRDs installed (kubectl apply -f crds/) and is RBAC in place?"
    )]
    CrdsNotListable {
        kind: &'static str,
        source: kube::Error,
    },
    #[error(transparent)]
    LeaseConfig(#[from] LeaseConfigError),
    #[error(
        "lost leadership; stopped reconciling and exiting so that a restart rejoins the election"
    )]
    LostLeadership,
    #[error(transparent)]
    SealKey(#[from] SealKeyError),
    #[error("controller task failed: {0}")]
    ControllerTask(#[from] tokio::task::JoinError),
}

/// Why the controllers stopped.
enum Stop {
    Shutdown,
    LostLeadership,
}

/// How long in-flight reconciles may take to finish after shutdown begins. With the Dfns gate
/// closed they end at once unless a Dfns call is on the wire; what has not finished by then is
/// dropped (a Dfns write already sent is resolved by the crash-safe create on the next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long handing the Lease back may take, after [`SHUTDOWN_GRACE`].
const RELEASE_BOUND: Duration = Duration::from_secs(1);

/// Runs every controller until `shutdown` resolves.
pub async fn run(
    kube: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    run_with(kube, config, RunOptions::default(), shutdown).await
}

/// Runs every controller until `shutdown` resolves; with leader election, only while this
/// replica leads. Losing leadership stops reconciling at once and returns an error, so the
/// process exits and its restart rejoins the election with fresh caches (client-go does the same).
/// On shutdown, no Dfns request is sent any more and every wait for one ends; in-flight
/// reconciles get [`SHUTDOWN_GRACE`] to finish, then the Lease is handed back.
pub async fn run_with(
    kube: Client,
    config: ControllerConfig,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), RunError> {
    let RunOptions {
        leader_election,
        metrics,
        health,
    } = options;
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let gate = Gate::new();
    // Not ready from the moment shutdown starts, so no new traffic (scrapes) is routed here.
    let mark_shutdown = tokio::spawn({
        let (shutdown, health, gate) = (shutdown.clone(), health.clone(), gate.clone());
        async move {
            shutdown.await;
            gate.close();
            health.set(Phase::ShuttingDown);
        }
    });
    let result = lead_and_run(
        kube,
        config,
        leader_election,
        Shared {
            metrics: &metrics,
            health: &health,
            gate,
        },
        shutdown,
    )
    .await;
    mark_shutdown.abort();
    health.set(Phase::ShuttingDown);
    result
}

/// What the run shares with the controllers.
struct Shared<'a> {
    metrics: &'a Arc<Metrics>,
    health: &'a Arc<Health>,
    /// In front of every Dfns request and (past its deadline) every Kubernetes write.
    gate: Gate,
}

async fn lead_and_run(
    kube: Client,
    config: ControllerConfig,
    leader_election: Option<LeaseConfig>,
    shared: Shared<'_>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> Result<(), RunError> {
    let Shared {
        metrics,
        health,
        gate,
    } = shared;
    check_crds_installed(&kube, config.watch_namespace.as_deref()).await?;
    let leadership = match leader_election {
        None => None,
        Some(lease) => {
            lease.validate()?;
            health.set(Phase::Standby);
            // The elector writes the Lease through the unfenced client: it must be able to
            // renew (or hand back) the Lease whatever the fence says.
            match LeaderElector::new(kube.clone(), lease)
                .acquire(shutdown.clone(), gate.clone())
                .await
            {
                Some(leadership) => Some(leadership),
                // Shut down while standing by: nothing to hand back.
                None => return Ok(()),
            }
        }
    };
    health.set(Phase::Leading);
    metrics.set_leader(true);
    let controllers = run_controllers(
        fenced_client(kube, gate.clone()),
        config,
        metrics.clone(),
        shutdown.clone(),
        gate,
    );
    let grace_over = async move {
        shutdown.await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "reconciles still in flight after the shutdown grace period; dropping them"
        );
    };
    let lost = leadership.as_ref().map(Leadership::lost);
    let lost = async move {
        match lost {
            Some(lost) => lost.await,
            None => std::future::pending().await,
        }
    };
    // Dropping `controllers` aborts every reconcile in flight.
    let stop = tokio::select! {
        result = controllers => result.map(|()| Stop::Shutdown),
        () = lost => Ok(Stop::LostLeadership),
        () = grace_over => Ok(Stop::Shutdown),
    };
    metrics.set_leader(false);
    metrics.clear_credential_sources();
    if let Some(leadership) = leadership
        && tokio::time::timeout(RELEASE_BOUND, leadership.release())
            .await
            .is_err()
    {
        tracing::warn!(
            "could not hand the Lease back in time; a standby takes over when it expires"
        );
    }
    match stop? {
        Stop::Shutdown => Ok(()),
        Stop::LostLeadership => Err(RunError::LostLeadership),
    }
}

/// The four controllers; dropping this future aborts them (their tasks live in a JoinSet).
async fn run_controllers(
    kube: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
    gate: Gate,
) -> Result<(), RunError> {
    let sealer = Sealer::load_or_create(
        kube.clone(),
        &config.operator_namespace,
        &config.seal_key_secret,
    )
    .await?;
    // One watch per connection kind feeds the store reconciles read connections from, the
    // connection controllers and the credential controllers' triggers (connection_feed.rs).
    let mut namespaced = ConnectionFeed::<DfnsConnection>::default();
    let mut cluster = ConnectionFeed::<ClusterDfnsConnection>::default();
    let stores = ConnectionStores {
        namespaced: namespaced.store(),
        cluster: cluster.store(),
    };
    let ctx = Arc::new(Context::new(
        kube.clone(),
        config,
        Some(stores.clone()),
        sealer,
        gate,
        metrics.clone(),
    ));
    let mut tasks = JoinSet::new();
    tasks.spawn(credential_controller::<DfnsServiceAccount>(
        ctx.clone(),
        ConnectionTriggers {
            namespaced: namespaced.touched().boxed(),
            cluster: cluster.touched().boxed(),
            secrets: ctx.owned_secrets.changed().boxed(),
        },
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(credential_controller::<DfnsPersonalAccessToken>(
        ctx.clone(),
        ConnectionTriggers {
            namespaced: namespaced.touched().boxed(),
            cluster: cluster.touched().boxed(),
            secrets: ctx.owned_secrets.changed().boxed(),
        },
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(connection_controller::<DfnsConnection>(
        ctx.clone(),
        namespaced.applied(),
        stores.namespaced,
        metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(connection_controller::<ClusterDfnsConnection>(
        ctx.clone(),
        cluster.applied(),
        stores.cluster,
        metrics,
        shutdown,
    ));
    // Aborted when this function returns (the JoinSet is dropped), after the controllers.
    let mut feeds = JoinSet::new();
    feeds.spawn(namespaced.run(watcher(
        scoped::<DfnsConnection>(&ctx),
        watcher::Config::default().any_semantic(),
    )));
    feeds.spawn(cluster.run(watcher(
        Api::<ClusterDfnsConnection>::all(kube),
        cluster_connections(&ctx.config).any_semantic(),
    )));
    // Owned Secrets by label, as metadata only (never the cluster's other Secrets, never secret
    // values), into the small store of `owned_secrets.rs`.
    let owned = ctx.owned_secrets.clone();
    let owned_watch = watcher(
        scoped::<PartialObjectMeta<Secret>>(&ctx),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
    );
    feeds.spawn(async move { owned.run(owned_watch).await });
    while let Some(finished) = tasks.join_next().await {
        finished?;
    }
    Ok(())
}

/// An API over all namespaces, or only the watched one.
fn scoped<K>(ctx: &Context) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match &ctx.config.watch_namespace {
        Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
        None => Api::all(ctx.kube.clone()),
    }
}

/// Fails fast, with what to do, when the CRDs are missing or RBAC does not allow listing them.
async fn check_crds_installed(
    kube: &Client,
    watch_namespace: Option<&str>,
) -> Result<(), RunError> {
    let probe = ListParams::default().limit(1);
    let missing = |kind, source| RunError::CrdsNotListable { kind, source };
    fn api<K>(kube: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    {
        namespace.map_or_else(
            || Api::all(kube.clone()),
            |ns| Api::namespaced(kube.clone(), ns),
        )
    }
    api::<DfnsServiceAccount>(kube, watch_namespace)
        .list(&probe)
        .await
        .map_err(|e| missing("DfnsServiceAccount", e))?;
    api::<DfnsPersonalAccessToken>(kube, watch_namespace)
        .list(&probe)
        .await
        .map_err(|e| missing("DfnsPersonalAccessToken", e))?;
    api::<DfnsConnection>(kube, watch_namespace)
        .list(&probe)
        .await
        .map_err(|e| missing("DfnsConnection", e))?;
    Api::<ClusterDfnsConnection>::all(kube.clone())
        .list(&probe)
        .await
        .map_err(|e| missing("ClusterDfnsConnection", e))?;
    Ok(())
}

/// What of a resource, when it changes, calls for a reconcile: its spec (generation), labels,
/// annotations, finalizers, the start of its deletion, or a new object under the same name.
fn spec_or_lifecycle<K: kube::Resource>(obj: &K) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = DefaultHasher::new();
    (
        meta.generation,
        &meta.labels,
        &meta.annotations,
        &meta.finalizers,
        meta.deletion_timestamp.is_some(),
        &meta.uid,
    )
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// A credential kind's watch cache, read by the credential gauges at scrape time.
struct CachedCredentials<K: CredentialResource>(Store<K>);

impl<K: CredentialResource> std::fmt::Debug for CachedCredentials<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CachedCredentials<{}>", K::kind(&()))
    }
}

impl<K: CredentialResource> CredentialSource for CachedCredentials<K> {
    fn kind(&self) -> &'static str {
        match K::DFNS_KIND {
            dfns_client::IdentityKind::ServiceAccount => "DfnsServiceAccount",
            dfns_client::IdentityKind::PersonalAccessToken => "DfnsPersonalAccessToken",
        }
    }

    fn samples(&self) -> Vec<CredentialSample> {
        self.0
            .state()
            .iter()
            .map(|obj| {
                let status = obj.credential_status();
                CredentialSample {
                    namespace: obj.namespace().unwrap_or_default(),
                    name: obj.name_any(),
                    state: CredentialState::from_conditions(
                        status.map(|s| s.conditions.as_slice()).unwrap_or_default(),
                    ),
                    expires_at: status
                        .and_then(|s| s.expires_at.as_ref())
                        .map(|t| t.0.as_second()),
                    renews_at: status
                        .and_then(|s| s.renewal_time.as_ref())
                        .map(|t| t.0.as_second()),
                }
            })
            .collect()
    }
}

/// Times a reconcile and counts its result.
async fn measured(
    metrics: &Metrics,
    kind: &str,
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile.await;
    let outcome = match &result {
        Ok(_) => ReconcileOutcome::Success,
        Err(error) if error.waiting().is_some() || matches!(error, Error::DeletionWaits { .. }) => {
            ReconcileOutcome::Waiting(error.category())
        }
        Err(error) => ReconcileOutcome::Failed(error.category()),
    };
    metrics.reconciled(kind, outcome, started.elapsed());
    result
}

/// Connections created, changed or deleted, from the shared connection watches; owned Secrets
/// deleted or changed by someone else, from the owned-Secret watch.
struct ConnectionTriggers {
    namespaced: BoxStream<'static, Result<DfnsConnection, watcher::Error>>,
    cluster: BoxStream<'static, Result<ClusterDfnsConnection, watcher::Error>>,
    secrets: BoxStream<'static, Result<PartialObjectMeta<Secret>, watcher::Error>>,
}

async fn credential_controller<K: CredentialResource>(
    ctx: Arc<Context>,
    connections: ConnectionTriggers,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let kube = ctx.kube.clone();
    // Only what a person or another controller changes triggers a reconcile; the operator's own
    // status writes do not (they would re-run every reconcile that just failed, resending its
    // request). Resyncs and retries come from the requeue schedule.
    let (store, writer) = reflector::store();
    let own_writes = ctx.own_writes.clone();
    let events = watcher(scoped::<K>(&ctx), watcher::Config::default().any_semantic())
        .default_backoff()
        // What the watch reports ends the wait for our own writes (own_writes.rs).
        .inspect_ok(move |event| match event {
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => own_writes.seen(
                &OwnWrites::key_of(obj),
                obj.meta().resource_version.as_deref(),
            ),
            watcher::Event::Delete(obj) => own_writes.seen(&OwnWrites::key_of(obj), None),
            watcher::Event::Init | watcher::Event::InitDone => {}
        });
    let changes = stripped_into_store(events, writer)
        .predicate_filter(spec_or_lifecycle, PredicateConfig::default());
    let controller = Controller::for_stream(changes, store.clone());
    metrics.add_credential_source(Box::new(CachedCredentials(store.clone())));
    let cache = store.clone();
    let stop = shutdown.clone();
    let namespace_store = store.clone();
    let by_connection = move |kind: ConnectionKind, namespace: Option<String>, name: String| {
        store
            .state()
            .into_iter()
            .filter(|r| {
                let reference = r
                    .credential_spec()
                    .connection_ref
                    .clone()
                    .unwrap_or_default();
                reference.kind == kind
                    && reference.name == name
                    && (kind == ConnectionKind::ClusterDfnsConnection || r.namespace() == namespace)
            })
            .map(|r| ObjectRef::from_obj(&*r))
            .collect::<Vec<_>>()
    };
    // Relabelling a namespace can move it into or out of a ClusterDfnsConnection's
    // namespaceSelector: its resources that use a cluster connection decide again.
    let in_namespace = move |namespace: PartialObjectMeta<Namespace>| {
        namespace_store
            .state()
            .into_iter()
            .filter(|r| {
                r.namespace() == namespace.metadata.name
                    && r.credential_spec()
                        .connection_ref
                        .clone()
                        .unwrap_or_default()
                        .kind
                        == ConnectionKind::ClusterDfnsConnection
            })
            .map(|r| ObjectRef::from_obj(&*r))
            .collect::<Vec<_>>()
    };
    let for_namespaced = by_connection.clone();
    let drifted = drift_watch::drifted(ctx.clone(), cache.clone());
    let run = controller
        .owns_stream(connections.secrets)
        // Settled resources are not requeued one by one: the shared Dfns listing, refreshed once
        // per resync interval, names those whose Dfns state differs from their status.
        .reconcile_on(drifted)
        // A connection turning Ready (or changing, or going away) wakes the resources that use it.
        .watches_stream(connections.namespaced, move |c| {
            for_namespaced(ConnectionKind::DfnsConnection, c.namespace(), c.name_any())
        })
        .watches_stream(connections.cluster, move |c| {
            by_connection(ConnectionKind::ClusterDfnsConnection, None, c.name_any())
        })
        // Only a namespace's name is read here (the reconcile reads its labels): metadata only.
        .watches_stream(
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(kube.clone()),
                watched_namespaces(&ctx.config),
            )
            .touched_objects(),
            in_namespace,
        )
        .with_config(ControllerRuntimeConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            move |obj, ctx| {
                let metrics = metrics.clone();
                async move {
                    measured(
                        &metrics,
                        &K::kind(&()),
                        credential::reconcile::<K>(obj, ctx),
                    )
                    .await
                }
            },
            credential::error_policy::<K>,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    until_shutdown(run, cache, stop).await;
}

/// The namespaces whose labels matter: the watched one, or all.
fn watched_namespaces(config: &ControllerConfig) -> watcher::Config {
    match &config.watch_namespace {
        Some(namespace) => watcher::Config::default().fields(&format!("metadata.name={namespace}")),
        None => watcher::Config::default(),
    }
}

/// What the operator watches of `ClusterDfnsConnection`s: those its selector picks, or all.
fn cluster_connections(config: &ControllerConfig) -> watcher::Config {
    match &config.cluster_connection_selector {
        Some(selector) => watcher::Config::default().labels(selector),
        None => watcher::Config::default(),
    }
}

async fn connection_controller<C: ConnectionResource>(
    ctx: Arc<Context>,
    changes: impl futures::Stream<Item = Result<C, watcher::Error>> + Send + 'static,
    cache: Store<C>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let controller = Controller::for_stream(changes, cache.clone());
    let stop = shutdown.clone();
    let run = controller
        .with_config(ControllerRuntimeConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(
            move |obj, ctx| {
                let metrics = metrics.clone();
                async move {
                    measured(
                        &metrics,
                        &C::kind(&()),
                        connection::reconcile::<C>(obj, ctx),
                    )
                    .await
                }
            },
            connection::error_policy::<C>,
            ctx,
        )
        .for_each(|_| futures::future::ready(()));
    until_shutdown(run, cache, stop).await;
}

/// Runs a controller until it has shut down gracefully. kube-runtime holds a controller's
/// reconciles until its cache has filled, and a shutdown does not release that hold: a
/// controller stopped before its first list completed (a slow or refused watch backs off the
/// whole trigger stream) would wait forever. Such a controller has never reconciled, so
/// dropping it then loses nothing.
async fn until_shutdown<K>(
    run: impl Future<Output = ()>,
    cache: Store<K>,
    shutdown: impl Future<Output = ()>,
) where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    tokio::pin!(run);
    tokio::select! {
        () = &mut run => return,
        () = shutdown => {}
    }
    let filled = futures::FutureExt::now_or_never(cache.wait_until_ready()).is_some();
    if filled {
        run.await;
    } else {
        tracing::debug!("shut down before the first list completed; nothing was reconciled");
    }
}
