//! The Secrets that connections name (bootstrap credentials), served from small watch caches
//! instead of a GET per reconcile: one watch per Secret, selected by name, so no other Secret of
//! the namespace is ever sent to the operator. A watch nobody has asked for in [`UNUSED_AFTER`]
//! is stopped (the connection was deleted or now names another Secret).
//!
//! Until a watch has listed its Secret, and whenever it cannot (RBAC, API errors), the Secret is
//! read with a GET as before, so a new connection is never judged on a cache still filling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

/// How long a reconcile waits for a new watch's first list before reading the Secret directly.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(5);
/// A watch not asked for this long is stopped.
const UNUSED_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SecretKey {
    namespace: String,
    name: String,
}

struct Watched {
    store: Store<Secret>,
    task: tokio::task::JoinHandle<()>,
    last_used: Instant,
}

pub struct ConnectionSecrets {
    kube: Client,
    watched: Mutex<HashMap<SecretKey, Watched>>,
}

impl ConnectionSecrets {
    pub fn new(kube: Client) -> Self {
        Self {
            kube,
            watched: Mutex::default(),
        }
    }

    /// The Secret `namespace/name`, or `None` when it does not exist.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
        let key = SecretKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let (store, new) = self.watch(&key);
        let listed = if new {
            tokio::time::timeout(FIRST_LIST_WAIT, store.wait_until_ready())
                .await
                .is_ok_and(|r| r.is_ok())
        } else {
            store
                .wait_until_ready()
                .now_or_never()
                .is_some_and(|r| r.is_ok())
        };
        if listed {
            let reference = ObjectRef::new(name).within(namespace);
            return Ok(store.get(&reference).map(|s| (*s).clone()));
        }
        Api::<Secret>::namespaced(self.kube.clone(), namespace)
            .get_opt(name)
            .await
    }

    /// The store for `key`, starting its watch if there is none; `true` when just started.
    fn watch(&self, key: &SecretKey) -> (Store<Secret>, bool) {
        let now = Instant::now();
        let mut watched = self.watched.lock().expect("connection secrets lock");
        watched.retain(|_, w| {
            let keep = now.duration_since(w.last_used) < UNUSED_AFTER;
            if !keep {
                w.task.abort();
            }
            keep
        });
        if let Some(w) = watched.get_mut(key) {
            w.last_used = now;
            return (w.store.clone(), false);
        }
        let (store, writer) = reflector::store();
        let api = Api::<Secret>::namespaced(self.kube.clone(), &key.namespace);
        let only_this = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
        let events = watcher(api, only_this)
            .default_backoff()
            .reflect(writer)
            .for_each(|_| futures::future::ready(()));
        let task = tokio::spawn(events);
        watched.insert(
            key.clone(),
            Watched {
                store: store.clone(),
                task,
                last_used: now,
            },
        );
        (store, true)
    }
}

impl Drop for ConnectionSecrets {
    fn drop(&mut self) {
        let watched = self.watched.get_mut().unwrap_or_else(|p| p.into_inner());
        for (_, w) in watched.drain() {
            w.task.abort();
        }
    }
}
