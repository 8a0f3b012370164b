//! The Secrets the operator owns, through one metadata-only watch (by the managed-by label)
//! shared by both credential controllers (docs/architecture.md, "A reconcile").
//!
//! Per Secret it keeps only its `resourceVersion` and, for a moment around the operator's writes,
//! the versions of its own last writes (and the events that came before a write's answer) —
//! never `ObjectMeta` at rest, never data. That serves two things:
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
    /// Writes of ours sent and not yet answered.
    in_flight: u8,
    /// Events that arrived while a write of ours was in flight, with a version not known to be
    /// ours: the API server may report a write before its answer reaches the writer, so they
    /// are judged once the writes were answered (empty at rest).
    held: Vec<PartialObjectMeta<Secret>>,
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

    /// The operator is about to write Secret `namespace/name` (create or update): until the
    /// write is answered ([`Writing::wrote`], or dropped when it failed), watch events for it
    /// wait, so the event reporting this very write wakes nobody even when it comes first.
    pub fn writing(&self, namespace: &str, name: &str) -> Writing<'_> {
        let key = key(namespace, name);
        let mut state = self.state.lock().expect("owned Secrets lock");
        let known = state.secrets.entry(key.clone()).or_default();
        known.in_flight = known.in_flight.saturating_add(1);
        Writing {
            owned: self,
            key,
            answered: false,
        }
    }

    /// A write to `key` was answered, with the version written if it succeeded: that version
    /// wakes nobody; events held meanwhile with another version wake the owner once no write
    /// is in flight.
    fn answered(&self, key: &Key, version: Option<&str>) {
        let woken = {
            let mut state = self.state.lock().expect("owned Secrets lock");
            let Some(known) = state.secrets.get_mut(key) else {
                return;
            };
            known.in_flight = known.in_flight.saturating_sub(1);
            if let Some(version) = version {
                let before = known.held.len();
                known
                    .held
                    .retain(|m| m.metadata.resource_version.as_deref() != Some(version));
                // Not reported yet: the event to come is recognised as ours.
                if known.held.len() == before {
                    if known.written.len() == WRITES_REMEMBERED {
                        known.written.remove(0);
                    }
                    known.written.push(version.into());
                }
            }
            if known.in_flight > 0 {
                return;
            }
            // The entry stays even after a failed create: the create may have met a Secret the
            // watch does not show (not labelled as ours), which must be read, never skipped.
            std::mem::take(&mut known.held)
        };
        // The latest is enough: waking an owner twice does nothing more.
        if let Some(meta) = woken.into_iter().last() {
            self.wake(meta);
        }
    }

    fn wake(&self, meta: PartialObjectMeta<Secret>) {
        self.subscribers
            .lock()
            .expect("subscribers lock")
            .retain(|s| s.unbounded_send(meta.clone()).is_ok());
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
                        self.wake(woken);
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
                    // Maybe a write of ours whose answer has not come back yet.
                    Wake::Owner if known.in_flight > 0 => {
                        known.held.push(meta);
                        Vec::new()
                    }
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

/// A write of the operator's to one Secret, from just before it is sent until it is answered.
#[must_use = "a write in flight holds the Secret's events until it is answered"]
pub struct Writing<'a> {
    owned: &'a OwnedSecrets,
    key: Key,
    answered: bool,
}

impl Writing<'_> {
    /// The write succeeded: `secret` is what the API server stored.
    pub fn wrote(mut self, secret: &Secret) {
        self.answered = true;
        self.owned
            .answered(&self.key, secret.metadata.resource_version.as_deref());
    }
}

impl Drop for Writing<'_> {
    /// The write failed (or its reconcile was dropped): nothing of ours to recognise.
    fn drop(&mut self) {
        if !self.answered {
            self.owned.answered(&self.key, None);
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
