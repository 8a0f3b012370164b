//! Wall-clock helpers: Dfns uses ISO-8601 UTC strings with milliseconds and JWT seconds.

use jiff::{Timestamp, Unit};

/// Current time as `2026-01-02T03:04:05.678Z`.
pub(crate) fn iso_now() -> String {
    iso(Timestamp::now())
}

pub(crate) fn iso(ts: Timestamp) -> String {
    ts.round(Unit::Millisecond).unwrap_or(ts).to_string()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    Timestamp::now().as_second()
}

/// ISO form of a Unix-seconds instant (falls back to the epoch for out-of-range values).
pub(crate) fn iso_from_unix(secs: i64) -> String {
    iso(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}
