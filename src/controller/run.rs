//! Wiring the controllers: one per kind, sharing one context, until shutdown.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Config as ControllerRuntimeConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::connection::{self, ConnectionResource};
use super::context::{Context, ControllerConfig};
use super::credential::{self, CredentialResource};
use super::secret::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::api::{
    ClusterDfnsConnection, ConnectionKind, DfnsConnection, DfnsPersonalAccessToken, DfnsServiceAccount,
};

/// Runs every controller until `shutdown` resolves.
pub async fn run(kube: Client, config: ControllerConfig, shutdown: impl Future<Output = ()> + Send + Sync + 'static) -> Result<(), String> {
    check_crds_installed(&kube).await?;
    let ctx = Arc::new(Context::new(kube.clone(), config));
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let tasks = vec![
        tokio::spawn(credential_controller::<DfnsServiceAccount>(ctx.clone(), shutdown.clone())),
        tokio::spawn(credential_controller::<DfnsPersonalAccessToken>(ctx.clone(), shutdown.clone())),
        tokio::spawn(connection_controller::<DfnsConnection>(ctx.clone(), scoped(&ctx), shutdown.clone())),
        tokio::spawn(connection_controller::<ClusterDfnsConnection>(ctx.clone(), Api::all(kube.clone()), shutdown.clone())),
    ];
    for task in futures::future::join_all(tasks).await {
        task.map_err(|e| format!("controller task failed: {e}"))?;
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

async fn check_crds_installed(kube: &Client) -> Result<(), String> {
    let probe = ListParams::default().limit(1);
    let missing = |kind: &str, e: kube::Error| {
        format!("cannot list {kind} ({e}); are the CRDs installed (kubectl apply -f crds/) and is RBAC in place?")
    };
    Api::<DfnsServiceAccount>::all(kube.clone()).list(&probe).await.map_err(|e| missing("DfnsServiceAccount", e))?;
    Api::<DfnsPersonalAccessToken>::all(kube.clone()).list(&probe).await.map_err(|e| missing("DfnsPersonalAccessToken", e))?;
    Api::<DfnsConnection>::all(kube.clone()).list(&probe).await.map_err(|e| missing("DfnsConnection", e))?;
    Api::<ClusterDfnsConnection>::all(kube.clone()).list(&probe).await.map_err(|e| missing("ClusterDfnsConnection", e))?;
    Ok(())
}

async fn credential_controller<K: CredentialResource>(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let kube = ctx.kube.clone();
    // Owned Secrets are watched by label and as metadata only: never the cluster's other Secrets,
    // never secret values in the cache.
    let secrets = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let controller = Controller::new(scoped::<K>(&ctx), watcher::Config::default().any_semantic());
    let store = controller.store();
    let by_connection = move |kind: ConnectionKind, namespace: Option<String>, name: String| {
        store
            .state()
            .into_iter()
            .filter(|r| {
                let reference = r.credential_spec().connection_ref.clone().unwrap_or_default();
                reference.kind == kind
                    && reference.name == name
                    && (kind == ConnectionKind::ClusterDfnsConnection || r.namespace() == namespace)
            })
            .map(|r| ObjectRef::from_obj(&*r))
            .collect::<Vec<_>>()
    };
    let for_namespaced = by_connection.clone();
    controller
        .owns(scoped::<Secret>(&ctx), secrets)
        // A connection turning Ready (or changing) wakes the resources that use it.
        .watches(scoped::<DfnsConnection>(&ctx), watcher::Config::default(), move |c| {
            for_namespaced(ConnectionKind::DfnsConnection, c.namespace(), c.name_any())
        })
        .watches(Api::<ClusterDfnsConnection>::all(kube.clone()), watcher::Config::default(), move |c| {
            by_connection(ConnectionKind::ClusterDfnsConnection, None, c.name_any())
        })
        .with_config(ControllerRuntimeConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(credential::reconcile::<K>, credential::error_policy::<K>, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn connection_controller<C: ConnectionResource>(
    ctx: Arc<Context>,
    api: Api<C>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) where
    C: kube::Resource<DynamicType = ()>,
{
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(ControllerRuntimeConfig::default().concurrency(ctx.config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(connection::reconcile::<C>, connection::error_policy::<C>, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
