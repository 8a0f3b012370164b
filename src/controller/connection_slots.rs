//! Each connection's share of the reconcile workers: at most half of them (at least one) may work
//! on one connection's resources at once, so a slow connection (a low rate limit, an endpoint
//! that does not answer) can never take every worker from the others. A reconcile that finds
//! its connection's share taken gives its worker back at once and comes back shortly
//! ([`crate::controller::Error::ConnectionBusy`]); it never waits holding a worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::dfns_clients::ConnectionKey;

/// How soon a reconcile turned away comes back: spread over a range, so a crowd of resources on
/// one busy connection does not return all at once.
const BUSY_RETRY_MIN: Duration = Duration::from_secs(2);
const BUSY_RETRY_MAX: Duration = Duration::from_secs(6);

pub struct ConnectionSlots {
    per_connection: usize,
    slots: Mutex<HashMap<ConnectionKey, Arc<Semaphore>>>,
}

impl ConnectionSlots {
    /// Half of `workers` per connection, at least one.
    pub fn for_workers(workers: u16) -> Self {
        Self {
            per_connection: usize::from(workers / 2).max(1),
            slots: Mutex::default(),
        }
    }

    /// A slot of this connection's share, held until dropped; `None` when all are taken.
    pub fn try_take(&self, connection: &ConnectionKey) -> Option<OwnedSemaphorePermit> {
        let semaphore = self
            .slots
            .lock()
            .expect("connection slots lock")
            .entry(connection.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_connection)))
            .clone();
        semaphore.try_acquire_owned().ok()
    }

    /// When a reconcile that found no free slot should come back.
    pub fn retry_in() -> Duration {
        rand::rng().random_range(BUSY_RETRY_MIN..=BUSY_RETRY_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConnectionKind;

    fn key(name: &str) -> ConnectionKey {
        ConnectionKey {
            kind: ConnectionKind::ClusterDfnsConnection,
            namespace: None,
            name: name.into(),
        }
    }

    #[test]
    fn a_connection_gets_half_the_workers_and_others_keep_theirs() {
        let slots = ConnectionSlots::for_workers(4);
        let slow = key("slow");
        let held: Vec<_> = (0..2)
            .map(|_| slots.try_take(&slow).expect("a slot"))
            .collect();
        assert!(
            slots.try_take(&slow).is_none(),
            "a third reconcile of one connection waits"
        );
        assert!(
            slots.try_take(&key("other")).is_some(),
            "another connection is not held up"
        );
        drop(held);
        assert!(
            slots.try_take(&slow).is_some(),
            "slots come back when reconciles end"
        );
    }

    #[test]
    fn a_single_worker_still_serves_every_connection() {
        let slots = ConnectionSlots::for_workers(1);
        let first = slots.try_take(&key("a"));
        assert!(first.is_some());
        assert!(slots.try_take(&key("a")).is_none());
        let retry_in = ConnectionSlots::retry_in();
        assert!((BUSY_RETRY_MIN..=BUSY_RETRY_MAX).contains(&retry_in));
    }
}
