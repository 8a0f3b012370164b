//! The operator's own status writes that the credential watch has not reported yet
//! (docs/architecture.md, "A reconcile").
//!
//! A reconcile that starts on a cached copy the operator itself has since replaced would read the
//! resource before its next irreversible step (`freshness.rs`). When the copy is known to be one
//! of those the operator's writes replaced, waiting a moment for the watch gives the same answer
//! without a read. Only versions the operator saw itself replace count: a copy it does not know
//! is judged as before (by a read where a step needs one), so a write by someone else, or a
//! forgotten entry, never makes a reconcile act on a stale copy. An entry lives from a write
//! until the watch reports that version or a newer one, and waits are bounded.

use std::collections::HashMap;
use std::sync::Mutex;

/// The versions a resource's writes replaced, remembered until the watch catches up.
const SUPERSEDED_REMEMBERED: usize = 4;
/// How often in a row a reconcile waits for the watch before it reads instead.
pub const WAITS_BEFORE_READING: u8 = 10;

/// Kind, namespace and name.
pub type Key = (String, String, String);

#[derive(Debug, Default)]
struct Entry {
    /// Versions this operator's writes replaced.
    superseded: Vec<String>,
    /// The version its last write produced.
    written: String,
    /// Reconciles that waited for the watch since the last write.
    waits: u8,
}

#[derive(Debug, Default)]
pub struct OwnWrites {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl OwnWrites {
    /// A status write of ours replaced `based_on` with `written`.
    pub fn wrote(&self, key: Key, based_on: Option<String>, written: Option<String>) {
        let (Some(based_on), Some(written)) = (based_on, written) else {
            return;
        };
        let mut entries = self.entries.lock().expect("own writes lock");
        let entry = entries.entry(key).or_default();
        if entry.superseded.len() == SUPERSEDED_REMEMBERED {
            entry.superseded.remove(0);
        }
        entry.superseded.push(based_on);
        entry.written = written;
        entry.waits = 0;
    }

    /// The watch reported the resource at `version` (`None`: deleted). The entry ends unless
    /// the version is one our writes replaced: then the watch has yet to catch up.
    pub fn seen(&self, key: &Key, version: Option<&str>) {
        let mut entries = self.entries.lock().expect("own writes lock");
        let caught_up = match (entries.get(key), version) {
            (None, _) => return,
            (Some(entry), Some(version)) => !entry.superseded.iter().any(|v| v == version),
            (Some(_), None) => true,
        };
        if caught_up {
            entries.remove(key);
        }
    }

    /// Whether a reconcile starting on the cached copy at `cached_version` should wait for the
    /// watch: the copy is one our own later write replaced, and it has not waited too often.
    pub fn cache_is_behind(&self, key: &Key, cached_version: Option<&str>) -> bool {
        let Some(cached_version) = cached_version else {
            return false;
        };
        let mut entries = self.entries.lock().expect("own writes lock");
        let Some(entry) = entries.get_mut(key) else {
            return false;
        };
        if entry.written == cached_version
            || !entry.superseded.iter().any(|v| v == cached_version)
            || entry.waits >= WAITS_BEFORE_READING
        {
            return false;
        }
        entry.waits += 1;
        true
    }

    /// The key of `obj` in this registry.
    pub fn key_of<K: kube::Resource<DynamicType = ()>>(obj: &K) -> Key {
        let meta = obj.meta();
        (
            K::kind(&()).into_owned(),
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().expect("own writes lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        ("DfnsServiceAccount".into(), "team-a".into(), "ci".into())
    }

    fn wrote(own: &OwnWrites, from: &str, to: &str) {
        own.wrote(key(), Some(from.into()), Some(to.into()));
    }

    #[test]
    fn a_copy_our_own_write_replaced_waits_for_the_watch() {
        let own = OwnWrites::default();
        wrote(&own, "1", "2");
        wrote(&own, "2", "3");
        assert!(own.cache_is_behind(&key(), Some("1")));
        assert!(own.cache_is_behind(&key(), Some("2")));
        assert!(
            !own.cache_is_behind(&key(), Some("3")),
            "the copy is current"
        );
    }

    #[test]
    fn a_copy_nobody_here_replaced_is_judged_as_before() {
        let own = OwnWrites::default();
        assert!(!own.cache_is_behind(&key(), Some("1")), "no write of ours");
        wrote(&own, "1", "2");
        // Someone else's version, older or newer: unknown, so never waited on.
        assert!(!own.cache_is_behind(&key(), Some("7")));
        assert!(!own.cache_is_behind(&key(), None));
        let other = ("DfnsServiceAccount".into(), "team-b".into(), "ci".into());
        assert!(!own.cache_is_behind(&other, Some("1")), "another resource");
    }

    #[test]
    fn the_entry_ends_when_the_watch_reports_our_version_a_newer_one_or_the_deletion() {
        let own = OwnWrites::default();
        wrote(&own, "1", "2");
        wrote(&own, "2", "3");
        own.seen(&key(), Some("2"));
        assert_eq!(
            own.len(),
            1,
            "an intermediate version of ours: not caught up"
        );
        own.seen(&key(), Some("3"));
        assert_eq!(own.len(), 0);
        assert!(!own.cache_is_behind(&key(), Some("1")));

        wrote(&own, "3", "4");
        own.seen(&key(), Some("9"));
        assert_eq!(own.len(), 0, "someone else's later write");

        wrote(&own, "9", "10");
        own.seen(&key(), None);
        assert_eq!(own.len(), 0, "deleted");
    }

    #[test]
    fn waits_are_bounded_then_the_reconcile_reads() {
        let own = OwnWrites::default();
        wrote(&own, "1", "2");
        for _ in 0..WAITS_BEFORE_READING {
            assert!(own.cache_is_behind(&key(), Some("1")));
        }
        assert!(!own.cache_is_behind(&key(), Some("1")), "reads instead");
        wrote(&own, "2", "3");
        assert!(
            own.cache_is_behind(&key(), Some("2")),
            "a new write starts over"
        );
    }

    #[test]
    fn a_write_without_versions_is_not_remembered() {
        let own = OwnWrites::default();
        own.wrote(key(), None, Some("2".into()));
        own.wrote(key(), Some("1".into()), None);
        assert_eq!(own.len(), 0);
    }

    #[test]
    fn only_the_last_replaced_versions_are_kept() {
        let own = OwnWrites::default();
        for v in 1..=6 {
            wrote(&own, &v.to_string(), &(v + 1).to_string());
        }
        assert!(
            !own.cache_is_behind(&key(), Some("1")),
            "forgotten: judged as before"
        );
        assert!(own.cache_is_behind(&key(), Some("6")));
    }
}
