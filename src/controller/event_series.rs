//! Publishing Events with a bounded de-duplication cache.
//!
//! Like kube-runtime's `Recorder`, a repeat of the same Event (same object, type, reason and
//! action, within [`SERIES_TTL`]) is folded into the first one's `series` count instead of
//! creating another object. Unlike it, the cache is bounded: `Recorder` keeps a whole copy of
//! every Event it published for six minutes (at 10,000 creates, 10,000 Events with their object
//! references and notes), while this one keeps at most [`CAPACITY`] small entries (the Event's
//! name and count), forgetting the oldest first. A repeat whose entry was forgotten becomes a
//! new Event: a longer list in `kubectl describe`, never a lost one.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;
use std::sync::Mutex;

/// Entries kept at most; a reconcile publishes at most a few Events, and a repeat matters only
/// while the same object keeps failing the same way.
pub const CAPACITY: usize = 1024;
/// How long a repeat still joins its series (kube-runtime's `Recorder` uses the same).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// What makes two Events the same series: the object (by UID when it has one), type, reason and
/// action. The note is not part of it (as in kube-runtime): a changing error text still repeats.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    object: String,
    warning: bool,
    reason: String,
    action: String,
}

impl SeriesKey {
    pub fn of(event: &Event, regarding: &ObjectReference) -> Self {
        let object = match &regarding.uid {
            Some(uid) => uid.clone(),
            None => format!(
                "{}/{}/{}",
                regarding.kind.as_deref().unwrap_or_default(),
                regarding.namespace.as_deref().unwrap_or_default(),
                regarding.name.as_deref().unwrap_or_default()
            ),
        };
        Self {
            object,
            warning: event.type_ == EventType::Warning,
            reason: event.reason.clone(),
            action: event.action.clone(),
        }
    }
}

/// The published Event a repeat is folded into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub namespace: String,
    pub name: String,
    pub count: i32,
    last_seen: Instant,
}

/// The bounded cache itself, without I/O.
#[derive(Default)]
pub struct SeriesCache {
    entries: HashMap<SeriesKey, Published>,
    /// Keys from oldest to newest first publication; may hold keys already expired.
    order: VecDeque<SeriesKey>,
}

impl SeriesCache {
    /// The series `key` continues, with its count raised, if it is still live.
    pub fn repeat(&mut self, key: &SeriesKey, now: Instant) -> Option<Published> {
        let entry = self.entries.get_mut(key)?;
        if now.duration_since(entry.last_seen) >= SERIES_TTL {
            self.entries.remove(key);
            return None;
        }
        entry.count += 1;
        entry.last_seen = now;
        Some(entry.clone())
    }

    /// Remembers a newly published Event, forgetting the oldest entries beyond [`CAPACITY`].
    pub fn remember(&mut self, key: SeriesKey, namespace: String, name: String, now: Instant) {
        let published = Published {
            namespace,
            name,
            count: 1,
            last_seen: now,
        };
        if self.entries.insert(key.clone(), published).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > CAPACITY || self.order.len() > CAPACITY.saturating_mul(2) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    cache: Mutex<SeriesCache>,
}

impl EventPublisher {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            cache: Mutex::default(),
        }
    }

    /// Creates the Event, or raises the count of the series it repeats.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = SeriesKey::of(event, regarding);
        let now = Instant::now();
        // Not held across the write: Events must not queue behind each other. Two first
        // occurrences at once may both create an Event, as with kube-runtime's `Recorder`.
        let repeat = self
            .cache
            .lock()
            .expect("event cache lock")
            .repeat(&key, now);
        if let Some(series) = repeat {
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &series.namespace);
            let patch = json!({
                "series": EventSeries {
                    count: series.count,
                    last_observed_time: MicroTime(jiff::Timestamp::now()),
                }
            });
            return api
                .patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ());
        }
        let new = self.new_event(event, regarding);
        let namespace = new.metadata.namespace.clone().unwrap_or_default();
        let name = new.metadata.name.clone().unwrap_or_default();
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &new)
            .await?;
        self.cache
            .lock()
            .expect("event cache lock")
            .remember(key, namespace, name, now);
        Ok(())
    }

    /// The Event object, as kube-runtime's `Recorder` builds it.
    fn new_event(&self, event: &Event, regarding: &ObjectReference) -> K8sEvent {
        let now = jiff::Timestamp::now();
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: event.note.clone(),
            metadata: ObjectMeta {
                namespace: Some(namespace),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_ref().unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(match event.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            related: event.secondary.clone(),
            ..K8sEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(object: &str, reason: &str) -> SeriesKey {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some("a note".into()),
            action: reason.into(),
            secondary: None,
        };
        let regarding = ObjectReference {
            uid: Some(object.into()),
            ..ObjectReference::default()
        };
        SeriesKey::of(&event, &regarding)
    }

    #[test]
    fn a_repeat_within_the_ttl_raises_the_count_of_the_first_event() {
        let mut cache = SeriesCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.repeat(&key("a", "Failed"), t0), None);
        cache.remember(key("a", "Failed"), "ns".into(), "sa.1".into(), t0);
        let again = cache
            .repeat(&key("a", "Failed"), t0 + Duration::from_secs(60))
            .unwrap();
        assert_eq!((again.name.as_str(), again.count), ("sa.1", 2));
        let third = cache
            .repeat(&key("a", "Failed"), t0 + Duration::from_secs(120))
            .unwrap();
        assert_eq!(third.count, 3);
        // Another reason, or another object, is another series.
        assert_eq!(cache.repeat(&key("a", "Created"), t0), None);
        assert_eq!(cache.repeat(&key("b", "Failed"), t0), None);
    }

    #[test]
    fn a_repeat_after_the_ttl_starts_a_new_event() {
        let mut cache = SeriesCache::default();
        let t0 = Instant::now();
        cache.remember(key("a", "Failed"), "ns".into(), "sa.1".into(), t0);
        assert_eq!(cache.repeat(&key("a", "Failed"), t0 + SERIES_TTL), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity_and_forgets_the_oldest_first() {
        let mut cache = SeriesCache::default();
        let t0 = Instant::now();
        for i in 0..CAPACITY * 3 {
            cache.remember(
                key(&format!("obj-{i}"), "Created"),
                "ns".into(),
                format!("e{i}"),
                t0,
            );
            assert!(cache.len() <= CAPACITY);
        }
        assert_eq!(cache.len(), CAPACITY);
        assert_eq!(cache.repeat(&key("obj-0", "Created"), t0), None);
        let newest = format!("obj-{}", CAPACITY * 3 - 1);
        assert!(cache.repeat(&key(&newest, "Created"), t0).is_some());
    }
}
