//! Workload restarts after the Secret switched (docs/architecture.md, "Workload restarts"): when
//! a `rolloutRestartTargets` entry is due, and whether it needs a restart. Pure; the reads and
//! patches around it are in `restart_targets.rs`.
//!
//! Stateless on purpose: whether a target still needs a restart is read from the target itself
//! (its pod template's `dfns.io/restartedAt`, or its creation time) against the resource's
//! `status.switchedAt`, so neither an operator restart nor a no-op reconcile can restart it
//! again.

use std::time::Duration;

use jiff::Timestamp;

/// The pod-template annotation a restart sets, as `kubectl rollout restart` sets its own: an
/// RFC 3339 time, whole seconds.
pub const RESTARTED_AT_ANNOTATION: &str = "dfns.io/restartedAt";

/// Kubernetes stores times in whole seconds (`status.switchedAt`, `creationTimestamp`): a switch
/// recorded as second `S` happened somewhere in `[S, S + 1 s)`. A restart or a creation proves
/// its pods came after the switch only from `S + 1 s` on.
const STORED_TIME_RESOLUTION: Duration = Duration::from_secs(1);

/// When the restarts owed for a switch are due, decided before anything is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// The debounce window after the last switch ends then: look again at that moment, so that
    /// several switches in the window make one restart.
    At(Timestamp),
    /// The window is over: read the targets and restart those that need it.
    Now,
}

/// When the restarts owed for a switch at `switched_at` are due. The window is at least one
/// second, so the value a restart writes always lies past the stored switch's second (see
/// [`STORED_TIME_RESOLUTION`]).
pub fn due(switched_at: Timestamp, now: Timestamp, debounce: Duration) -> Due {
    let window = debounce.max(STORED_TIME_RESOLUTION);
    let end = whole_second(switched_at)
        .checked_add(window)
        .unwrap_or(Timestamp::MAX);
    if now < end { Due::At(end) } else { Due::Now }
}

/// What was read of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// No such Deployment, StatefulSet or DaemonSet in the namespace.
    Missing,
    Found {
        /// Its pod template's `dfns.io/restartedAt`, as written (anyone may edit it).
        restarted_at: Option<&'a str>,
        created_at: Option<Timestamp>,
    },
}

/// What to do with one target once the restarts are due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its pods came after the switch (restarted since, or created since): nothing to do.
    Covered,
    /// Set the pod template's `dfns.io/restartedAt` to this value.
    Restart { restarted_at: String },
    /// A restart is owed to a target that does not exist: tell the user.
    Missing,
}

/// Whether `target` needs a restart for the switch at `switched_at`; `now` is the restart's time
/// (called only once the restarts are due, see [`due`]). A value written by an earlier restart
/// that covers this switch, or a target created after it, needs nothing; a value that is not an
/// RFC 3339 time counts as none.
pub fn decide(switched_at: Timestamp, now: Timestamp, target: &Target<'_>) -> Decision {
    let Target::Found {
        restarted_at,
        created_at,
    } = target
    else {
        return Decision::Missing;
    };
    let covered_from = whole_second(switched_at)
        .checked_add(STORED_TIME_RESOLUTION)
        .unwrap_or(Timestamp::MAX);
    let restarted_at = restarted_at.and_then(|text| text.parse::<Timestamp>().ok());
    let pods_since = restarted_at.max(*created_at);
    if pods_since.is_some_and(|since| since >= covered_from) {
        return Decision::Covered;
    }
    Decision::Restart {
        restarted_at: whole_second(now).to_string(),
    }
}

/// `at` without its fraction of a second, as Kubernetes stores times.
fn whole_second(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

#[cfg(test)]
#[path = "restart_tests.rs"]
mod tests;
