//! One watch per connection kind, shared by everything that reads connections: the store that
//! reconciles read a credential's connection from (instead of a GET per reconcile), the
//! connection controller, and the credential controllers' "a connection changed" triggers.
//!
//! Every event is stored before its object is handed to any subscriber, so a reconcile woken by
//! a connection's change always reads that change, or a later one, from the store: the store can
//! lag behind the API server, never behind the trigger.

use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::cache::strip_for_cache;

pub struct ConnectionFeed<C: Resource + Clone + 'static>
where
    C::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<C>,
    writer: reflector::store::Writer<C>,
    /// Get objects created or changed (the connection controller's own trigger).
    applied: Vec<UnboundedSender<C>>,
    /// Also get deleted objects (credentials whose connection went away decide again).
    touched: Vec<UnboundedSender<C>>,
}

impl<C> Default for ConnectionFeed<C>
where
    C: Resource<DynamicType = ()> + Clone + 'static,
{
    fn default() -> Self {
        let (store, writer) = reflector::store();
        Self {
            store,
            writer,
            applied: Vec::new(),
            touched: Vec::new(),
        }
    }
}

impl<C> ConnectionFeed<C>
where
    C: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    pub fn store(&self) -> Store<C> {
        self.store.clone()
    }

    /// Objects created or changed, stripped, once stored.
    pub fn applied(&mut self) -> impl Stream<Item = Result<C, watcher::Error>> + Send + use<C> {
        let (tx, rx) = unbounded();
        self.applied.push(tx);
        rx.map(Ok)
    }

    /// Objects created, changed or deleted, once the store has the change.
    pub fn touched(&mut self) -> impl Stream<Item = Result<C, watcher::Error>> + Send + use<C> {
        let (tx, rx) = unbounded();
        self.touched.push(tx);
        rx.map(Ok)
    }

    /// Drives the watch until it ends: stores each event (stripped), then hands its objects on.
    /// Watch errors are retried with backoff, as a controller's own watch would be.
    pub async fn run(self, events: impl Stream<Item = Result<watcher::Event<C>, watcher::Error>>) {
        let Self {
            writer,
            applied,
            touched,
            ..
        } = self;
        let stored = events
            .default_backoff()
            .modify(strip_for_cache::<C>)
            .reflect(writer);
        futures::pin_mut!(stored);
        while let Some(event) = stored.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                    send(&applied, &obj);
                    send(&touched, &obj);
                }
                Ok(watcher::Event::Delete(obj)) => send(&touched, &obj),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(error) => tracing::warn!(%error, "connection watch failed; retrying"),
            }
        }
    }
}

/// A subscriber that is gone (its controller stopped) is skipped.
fn send<C: Clone>(subscribers: &[UnboundedSender<C>], obj: &C) {
    for subscriber in subscribers {
        let _ = subscriber.unbounded_send(obj.clone());
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
    use kube::runtime::reflector::ObjectRef;

    use super::*;
    use crate::api::{DfnsConnection, DfnsConnectionSpec};

    fn connection(name: &str, version: &str) -> DfnsConnection {
        DfnsConnection {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team".into()),
                resource_version: Some(version.into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            spec: DfnsConnectionSpec::default(),
            status: None,
        }
    }

    #[tokio::test]
    async fn subscribers_get_an_object_only_once_the_store_holds_it_and_deletes_only_when_asked() {
        let mut feed = ConnectionFeed::<DfnsConnection>::default();
        let store = feed.store();
        let applied = feed.applied();
        let touched = feed.touched();
        let events = futures::stream::iter([
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(connection("a", "1"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(connection("a", "2"))),
            Ok(watcher::Event::Delete(connection("a", "3"))),
        ]);
        feed.run(events).await;

        let applied: Vec<_> = applied.map(Result::unwrap).collect().await;
        let touched: Vec<_> = touched.map(Result::unwrap).collect().await;
        let versions = |objs: &[DfnsConnection]| {
            objs.iter()
                .map(|o| o.metadata.resource_version.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(&applied), ["1", "2"]);
        assert_eq!(versions(&touched), ["1", "2", "3"]);
        assert!(
            touched.iter().all(|o| o.metadata.managed_fields.is_none()),
            "subscribers get stripped objects"
        );
        assert!(store.get(&ObjectRef::new("a").within("team")).is_none());
    }

    #[tokio::test]
    async fn a_trigger_never_runs_ahead_of_the_store() {
        let mut feed = ConnectionFeed::<DfnsConnection>::default();
        let store = feed.store();
        let mut touched = feed.touched();
        let (tx, rx) = unbounded();
        let driver = tokio::spawn(feed.run(rx));
        tx.unbounded_send(Ok(watcher::Event::Init)).unwrap();
        tx.unbounded_send(Ok(watcher::Event::InitDone)).unwrap();
        for version in 1..=50 {
            tx.unbounded_send(Ok(watcher::Event::Apply(connection(
                "a",
                &version.to_string(),
            ))))
            .unwrap();
            let woken = touched.next().await.unwrap().unwrap();
            let stored = store
                .get(&ObjectRef::new("a").within("team"))
                .expect("stored before the trigger");
            let seen = |o: &DfnsConnection| {
                o.metadata
                    .resource_version
                    .as_deref()
                    .unwrap_or_default()
                    .parse::<u32>()
                    .unwrap()
            };
            assert!(seen(&stored) >= seen(&woken));
        }
        drop(tx);
        driver.await.unwrap();
    }
}
