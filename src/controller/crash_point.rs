//! Crash points: a test hook that makes the process abort at a named moment of the crash-safe
//! protocols (docs/architecture.md, "Crash points"), so the end-to-end tests can prove recovery
//! from a crash exactly there instead of hoping a random `kill -9` landed in the right place.
//!
//! Inert unless the environment variable [`ENV`] names a point: then the first time that point is
//! reached the process prints [`marker`] to stderr and calls [`std::process::abort`] — no
//! destructors, no flushing of buffers, no graceful shutdown, like `kill -9`.

use std::io::Write;
use std::sync::OnceLock;

/// The environment variable naming the one point to abort at.
pub const ENV: &str = "DFNS_OPERATOR_CRASH_AT";

/// The moments a crash is most dangerous, in the order a resource meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// `status.pendingCreate` is saved; the Dfns create call has not been made.
    CreatePendingSaved,
    /// Dfns answered the create; its token exists only in this process.
    CreateDfnsReturned,
    /// The token is in the Secret; the ids are not yet recorded in status.
    CreateTokenWritten,
    /// An orphan of an interrupted create is deactivated in Dfns, not yet archived.
    RetireOrphanDeactivated,
    /// A lost credential's predecessor is deactivated; `status.retiring` still names it.
    RetirePreviousDeactivated,
    /// Deletion: `deletionPolicy` is applied in Dfns; the Secret and finalizer are untouched.
    CleanupDfnsDone,
    /// Renewal: the Secret holds the replacement and the staging Secret is gone; status still
    /// records the credential it replaces.
    RenewalSecretSwitched,
    /// Key rotation: Dfns registered the new key credential; the Secret still holds the old key.
    KeyRotationRegistered,
    /// Key rotation: the Secret holds the new key and credential id; status still names the old.
    KeyRotationSecretSwitched,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 9] = [
        CrashPoint::CreatePendingSaved,
        CrashPoint::CreateDfnsReturned,
        CrashPoint::CreateTokenWritten,
        CrashPoint::RetireOrphanDeactivated,
        CrashPoint::RetirePreviousDeactivated,
        CrashPoint::CleanupDfnsDone,
        CrashPoint::RenewalSecretSwitched,
        CrashPoint::KeyRotationRegistered,
        CrashPoint::KeyRotationSecretSwitched,
    ];

    /// The name [`ENV`] takes.
    pub const fn name(self) -> &'static str {
        match self {
            CrashPoint::CreatePendingSaved => "create-pending-saved",
            CrashPoint::CreateDfnsReturned => "create-dfns-returned",
            CrashPoint::CreateTokenWritten => "create-token-written",
            CrashPoint::RetireOrphanDeactivated => "retire-orphan-deactivated",
            CrashPoint::RetirePreviousDeactivated => "retire-previous-deactivated",
            CrashPoint::CleanupDfnsDone => "cleanup-dfns-done",
            CrashPoint::RenewalSecretSwitched => "renewal-secret-switched",
            CrashPoint::KeyRotationRegistered => "key-rotation-registered",
            CrashPoint::KeyRotationSecretSwitched => "key-rotation-secret-switched",
        }
    }

    pub fn from_name(name: &str) -> Option<CrashPoint> {
        CrashPoint::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The line printed to stderr just before aborting at `point`.
pub fn marker(point: CrashPoint) -> String {
    format!("dfns-operator: crash point {} reached", point.name())
}

/// The armed point, read from the environment once. An unknown name arms nothing but is
/// reported, so a misspelt test setting cannot silently test nothing (the test also checks the
/// marker).
fn armed() -> Option<CrashPoint> {
    static ARMED: OnceLock<Option<CrashPoint>> = OnceLock::new();
    *ARMED.get_or_init(|| {
        let name = std::env::var(ENV).ok()?;
        let point = CrashPoint::from_name(&name);
        if point.is_none() {
            eprintln!("dfns-operator: {ENV}={name:?} names no crash point; none armed");
        }
        point
    })
}

/// Aborts the process if `point` is the armed one; otherwise does nothing.
pub fn reached(point: CrashPoint) {
    if armed() == Some(point) {
        let mut stderr = std::io::stderr().lock();
        // Best effort: the abort is the point; the test also sees the process die by SIGABRT.
        let _ = writeln!(stderr, "{}", marker(point));
        let _ = stderr.flush();
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_is_found_by_its_name_and_names_are_distinct() {
        for point in CrashPoint::ALL {
            assert_eq!(CrashPoint::from_name(point.name()), Some(point));
        }
        let mut names: Vec<_> = CrashPoint::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CrashPoint::ALL.len());
        assert_eq!(CrashPoint::from_name("create-pending"), None);
    }

    #[test]
    fn the_marker_names_the_point() {
        assert_eq!(
            marker(CrashPoint::CleanupDfnsDone),
            "dfns-operator: crash point cleanup-dfns-done reached"
        );
    }
}
