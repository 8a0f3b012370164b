//! The Secrets the operator owns, through one metadata-only watch (by the managed-by label)
//! shared by both credential controllers (docs/architecture.md, "A reconcile").
//!
//! Per Secret it keeps only its `resourceVersion` and, for a moment after the operator wrote it,
//! the versions of its own last writes — never `ObjectMeta`, never data. That serves two things:
//! - a reconcile skips the Secret GET when the watch (listed at least once) shows no such Secret;
//!   if one was created meanwhile, the create meets `AlreadyExists` and the reconcile reads it
//!   and decides again: nothing is overwritten on the watch's word;
//! - a watch event wakes the Secret's owner only when the Secret was deleted or carries a version
//!   the operator did not write, so the operator's own writes start no reconcile. Forgetting a
//!   written version (a restart) costs one extra reconcile, nothing more. The first list wakes
//!   nobody (the credential watch's own first list reconciles every owner); a relist wakes the
//!   owners of Secrets that are new or changed since. A Secret deleted while the watch was
//!   down is dropped from the store at the relist; its owner sees it at its next resync.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};

/// Versions remembered per Secret between a write and the watch event that reports it; a create
/// writes a Secret twice in quick succession (key, then token).
const WRITES_REMEMBERED: usize = 2;

type Key = (Box<str>, Box<str>);

#[derive(Default)]
struct Known {
    /// As the watch last reported it (empty while only a write of ours showed it).
    version: Box<str>,
    /// Versions the operator wrote that the watch has not reported yet (empty at rest).
    written: Vec<Box<str>>,
}

#[derive(Default)]
struct State {
    /// Secrets the watch (or a write of ours) showed to exist.
    secrets: HashMap<Key, Known>,
    /// The watch listed every owned Secret at least once.
    listed: bool,
    /// Keys seen during a (re)list in progress; the rest are gone when it completes.
    relisting: Option<HashMap<Key, ()>>,
}

#[derive(Default)]
pub struct OwnedSecrets {
    state: Mutex<State>,
    subscribers: Mutex<Vec<UnboundedSender<PartialObjectMeta<Secret>>>>,
}

/// What a watch event means for the Secret's owner.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    Owner,
    Nobody,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.into(), name.into())
}

fn key_of(meta: &PartialObjectMeta<Secret>) -> Option<Key> {
    Some(key(
        meta.metadata.namespace.as_deref()?,
        meta.metadata.name.as_deref()?,
    ))
}

impl OwnedSecrets {
    /// The watch has listed the owned Secrets and shows none named `namespace/name`: reading it
    /// would find nothing.
    pub fn known_absent(&self, namespace: &str, name: &str) -> bool {
        let state = self.state.lock().expect("owned Secrets lock");
        state.listed && !state.secrets.contains_key(&key(namespace, name))
    }

    /// The operator wrote `secret` (create or update): the watch event reporting this version
    /// wakes nobody.
    pub fn wrote(&self, secret: &Secret) {
        let (Some(namespace), Some(name), Some(version)) = (
            secret.metadata.namespace.as_deref(),
            secret.metadata.name.as_deref(),
            secret.metadata.resource_version.as_deref(),
        ) else {
            return;
        };
        let mut state = self.state.lock().expect("owned Secrets lock");
        let written = &mut state
            .secrets
            .entry(key(namespace, name))
            .or_default()
            .written;
        if written.len() == WRITES_REMEMBERED {
            written.remove(0);
        }
        written.push(version.into());
    }

    /// A create met a Secret of that name: it exists, whatever the watch said.
    pub fn exists(&self, namespace: &str, name: &str) {
        let mut state = self.state.lock().expect("owned Secrets lock");
        state.secrets.entry(key(namespace, name)).or_default();
    }

    /// Owned Secrets whose change should wake their owner (deleted, or changed by someone else).
    pub fn changed(
        &self,
    ) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + use<> {
        let (tx, rx) = unbounded();
        self.subscribers.lock().expect("subscribers lock").push(tx);
        rx.map(Ok)
    }

    /// Drives the watch until it ends; watch errors are retried with backoff.
    pub async fn run(
        &self,
        events: impl Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>>,
    ) {
        let events = events.default_backoff();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    for woken in self.apply(event) {
                        self.subscribers
                            .lock()
                            .expect("subscribers lock")
                            .retain(|s| s.unbounded_send(woken.clone()).is_ok());
                    }
                }
                Err(error) => tracing::warn!(%error, "owned Secret watch failed; retrying"),
            }
        }
    }

    /// Records one watch event; returns the Secrets whose owners it wakes.
    fn apply(
        &self,
        event: watcher::Event<PartialObjectMeta<Secret>>,
    ) -> Vec<PartialObjectMeta<Secret>> {
        let mut state = self.state.lock().expect("owned Secrets lock");
        match event {
            watcher::Event::Init => {
                state.relisting = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(meta) | watcher::Event::Apply(meta) => {
                let Some(key) = key_of(&meta) else {
                    return Vec::new();
                };
                if let Some(seen) = state.relisting.as_mut() {
                    seen.insert(key.clone(), ());
                }
                let first_list = !state.listed;
                let version = meta
                    .metadata
                    .resource_version
                    .as_deref()
                    .unwrap_or_default();
                let known = state.secrets.entry(key).or_default();
                let wake = match wake_on(&mut known.written, version) {
                    // Relisted unchanged, or listed first: the owner's own watch covers it.
                    Wake::Owner if &*known.version == version || first_list => Wake::Nobody,
                    wake => wake,
                };
                known.version = version.into();
                match wake {
                    Wake::Owner => vec![meta],
                    Wake::Nobody => Vec::new(),
                }
            }
            watcher::Event::Delete(meta) => {
                if let Some(key) = key_of(&meta) {
                    state.secrets.remove(&key);
                }
                vec![meta]
            }
            watcher::Event::InitDone => {
                if let Some(seen) = state.relisting.take() {
                    state.secrets.retain(|key, _| seen.contains_key(key));
                }
                state.listed = true;
                Vec::new()
            }
        }
    }
}

/// An event reporting `version`: the operator's own write wakes nobody (and is forgotten along
/// with the older writes it supersedes); any other version wakes the owner.
fn wake_on(written: &mut Vec<Box<str>>, version: &str) -> Wake {
    match written.iter().position(|w| &**w == version) {
        Some(at) => {
            written.drain(..=at);
            written.shrink_to_fit();
            Wake::Nobody
        }
        None => Wake::Owner,
    }
}

#[cfg(test)]
#[path = "owned_secrets_tests.rs"]
mod tests;
