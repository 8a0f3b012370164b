//! The gate in front of every request: while open, requests flow; once closed, no request is
//! sent and every wait (rate limiter, retry backoff) ends at once with
//! [`crate::DfnsError::Halted`]. One gate is shared by all clients of a process, so shutting down
//! never waits out a slow connection's rate limit.
//!
//! A gate closes for good on [`Gate::close`] (shutdown), and for as long as it is past the
//! deadline set with [`Gate::open_until`]: a leader sets it from each Lease renewal, measured on
//! the monotonic clock, so a process paused past its Lease (SIGSTOP, a long GC pause) sends
//! nothing when it wakes, before it even learns that another replica leads.
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, Default)]
struct State {
    closed: bool,
    open_until: Option<Instant>,
}

/// Cheap to clone; clones share the state. Closing is final.
#[derive(Clone, Debug)]
pub struct Gate {
    state: Arc<watch::Sender<State>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// An open gate.
    pub fn new() -> Self {
        Self {
            state: Arc::new(watch::Sender::new(State::default())),
        }
    }

    /// Closes the gate for every clone: nothing more is sent, every wait ends.
    pub fn close(&self) {
        self.state.send_modify(|state| state.closed = true);
    }

    /// The gate counts as closed from `deadline` on, until a later deadline is set.
    pub fn open_until(&self, deadline: Instant) {
        self.state
            .send_modify(|state| state.open_until = Some(deadline));
    }

    /// Closed for good, or past its deadline.
    pub fn is_closed(&self) -> bool {
        self.is_shut() || self.is_expired()
    }

    /// Past the deadline set with [`Gate::open_until`] (not counting [`Gate::close`]).
    pub fn is_expired(&self) -> bool {
        self.state
            .borrow()
            .open_until
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn is_shut(&self) -> bool {
        self.state.borrow().closed
    }

    /// Resolves once the gate is closed or past its deadline (at once if it is).
    pub async fn closed(&self) {
        let mut receiver = self.state.subscribe();
        loop {
            let state = *receiver.borrow_and_update();
            if state.closed {
                return;
            }
            match state.open_until {
                Some(deadline) if Instant::now() >= deadline => return,
                Some(deadline) => tokio::select! {
                    // The sender lives in `self`, so the channel cannot close while we wait.
                    _ = receiver.changed() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                },
                None => {
                    let _ = receiver.changed().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn closing_wakes_every_waiter_of_every_clone() {
        let gate = Gate::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.closed().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        assert!(!gate.is_closed());
        gate.clone().close();
        for waiter in waiters {
            tokio::time::timeout(Duration::from_millis(1), waiter)
                .await
                .expect("woken at once")
                .unwrap();
        }
        assert!(gate.is_closed());
        // A wait that starts after closing ends at once too.
        tokio::time::timeout(Duration::from_millis(1), gate.closed())
            .await
            .expect("already closed");
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_deadline_the_gate_is_closed_until_the_deadline_moves_on() {
        let gate = Gate::new();
        let start = Instant::now();
        gate.open_until(start + Duration::from_secs(10));
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move {
                gate.closed().await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!gate.is_closed() && !gate.is_expired());
        // A renewal moves the deadline on: the waiter follows it.
        gate.open_until(start + Duration::from_secs(20));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!gate.is_closed(), "open until the new deadline");
        let woke = waiter.await.unwrap();
        assert_eq!(woke, start + Duration::from_secs(20));
        assert!(gate.is_closed() && gate.is_expired());
        // A later renewal opens it again; closing is final whatever the deadline.
        gate.open_until(Instant::now() + Duration::from_secs(10));
        assert!(!gate.is_closed());
        gate.close();
        assert!(gate.is_closed() && !gate.is_expired());
    }
}
