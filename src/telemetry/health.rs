//! Liveness and readiness as the HTTP probes report them.
//!
//! Ready means: the API server answered, the CRDs are served and RBAC lets the operator list
//! them. A standby replica is ready too (it is healthy and able to take over); whether it leads is
//! in the response body and the `dfns_operator_leader` metric. During shutdown it is not ready.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Default)]
pub struct Health {
    phase: AtomicU8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Starting = 0,
    Standby = 1,
    Leading = 2,
    ShuttingDown = 3,
}

impl Health {
    pub fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            1 => Phase::Standby,
            2 => Phase::Leading,
            3 => Phase::ShuttingDown,
            _ => Phase::Starting,
        }
    }

    /// `(ready, text for /readyz)`.
    pub fn readiness(&self) -> (bool, &'static str) {
        match self.phase() {
            Phase::Starting => (
                false,
                "starting: waiting for the Kubernetes API and the dfns.io CRDs\n",
            ),
            Phase::Standby => (true, "ok: standby, another replica leads\n"),
            Phase::Leading => (true, "ok: leading\n"),
            Phase::ShuttingDown => (false, "shutting down\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_between_start_up_and_shutdown() {
        let health = Health::default();
        assert!(!health.readiness().0);
        health.set(Phase::Standby);
        assert!(health.readiness().0);
        health.set(Phase::Leading);
        assert_eq!(health.readiness(), (true, "ok: leading\n"));
        health.set(Phase::ShuttingDown);
        assert!(!health.readiness().0);
    }
}
