//! Finding the settled resources whose Dfns state drifted (docs/architecture.md, "Cost rules"):
//! once per resync interval, per connection and kind, the shared listing (`inventory.rs`) is
//! refreshed and compared with what each resource's status records in the watch cache
//! (`credential::drift`, pure); only the resources that differ are reconciled. Nothing is read
//! from the API server, and a settled resource that did not drift costs nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store};

use super::context::Context;
use super::credential::CredentialResource;
use super::credential::drift::{drift, holds_anything_in_dfns};
use super::credential::resource::display_name;
use super::dfns_clients::ConnectionKey;
use super::error::Error;

/// Attempts at a listing that the connection's rate limit turns away, before waiting for the
/// next interval.
const THROTTLED_ATTEMPTS: u32 = 3;

/// The resources of `store` to reconcile because the listing shows them drifted: a stream that
/// yields after each refresh, once per `ctx.config.resync_interval`, starting one interval after
/// the controller starts (its first reconcile of every resource lists on its own).
pub fn drifted<K: CredentialResource>(
    ctx: Arc<Context>,
    store: Store<K>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    let every = ctx.config.resync_interval;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures::stream::unfold((ctx, store, ticks), |(ctx, store, mut ticks)| async move {
        ticks.tick().await;
        let found = sweep(&ctx, &store).await;
        Some((futures::stream::iter(found), (ctx, store, ticks)))
    })
    .flatten()
}

/// One refresh of every listing this kind's resources use, and the resources that drifted.
async fn sweep<K: CredentialResource>(ctx: &Context, store: &Store<K>) -> Vec<ObjectRef<K>> {
    let mut by_connection: HashMap<ConnectionKey, Vec<Arc<K>>> = HashMap::new();
    for obj in store.state() {
        // A deletion has its own schedule; a resource never reconciled has nothing to compare.
        if obj.meta().deletion_timestamp.is_some()
            || !obj.credential_status().is_some_and(holds_anything_in_dfns)
        {
            continue;
        }
        by_connection
            .entry(super::credential::connection_key(&*obj))
            .or_default()
            .push(obj);
    }
    let mut drifted = Vec::new();
    for (key, resources) in by_connection {
        match compare(ctx, &key, &resources).await {
            Ok(found) => drifted.extend(found),
            Err(error) => tracing::info!(
                connection = %key,
                kind = K::kind(&()).as_ref(),
                %error,
                "could not refresh the Dfns listing; drift is looked for again at the next interval"
            ),
        }
    }
    drifted
}

/// Refreshes the connection's listing of `K`'s kind and compares `resources` with it.
async fn compare<K: CredentialResource>(
    ctx: &Context,
    key: &ConnectionKey,
    resources: &[Arc<K>],
) -> Result<Vec<ObjectRef<K>>, Error> {
    // From the store only: a connection it does not hold was deleted (which woke its
    // resources) or is not served by this operator.
    let Some(connection) = ctx.dfns_clients.cached(key) else {
        return Ok(Vec::new());
    };
    // Checks the connection's host before any client exists.
    let handle = ctx.dfns_clients.client_for(&connection).await?;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let compared = ctx
            .inventory
            .refresh(&handle, K::DFNS_KIND, |listed| {
                resources
                    .iter()
                    .filter_map(|obj| {
                        let status = obj.credential_status()?;
                        let found = drift(status, &display_name(&**obj), listed)?;
                        tracing::debug!(
                            kind = K::kind(&()).as_ref(),
                            namespace = obj.meta().namespace.as_deref().unwrap_or_default(),
                            name = obj.meta().name.as_deref().unwrap_or_default(),
                            drift = ?found,
                            "Dfns listing differs from status; reconciling"
                        );
                        Some(ObjectRef::from_obj(&**obj))
                    })
                    .collect()
            })
            .await
            .map_err(Error::from);
        match compared {
            Err(error) if attempts < THROTTLED_ATTEMPTS => match error.waiting() {
                Some(retry_in) => {
                    tokio::time::sleep(retry_in.max(Duration::from_millis(100))).await
                }
                None => return Err(error),
            },
            compared => return compared,
        }
    }
}
