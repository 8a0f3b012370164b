//! When and how long to wait before trying a request again.
use std::time::Duration;

use rand::RngExt as _;

/// Exponential backoff with full jitter (a random wait between zero and the exponential cap),
/// so that many reconcilers hitting the same 429 do not come back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Whether another attempt is allowed after `attempts_made` attempts.
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }

    /// How long to wait after the `attempts_made`-th failed attempt. A server's Retry-After is a
    /// floor: waiting less would only earn another 429.
    pub fn delay(&self, attempts_made: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempts_made.saturating_sub(1).min(16);
        let cap = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let jittered = if cap.is_zero() {
            cap
        } else {
            rand::rng().random_range(Duration::ZERO..=cap)
        };
        retry_after.map_or(jittered, |floor| jittered.max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_exponential_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for _ in 0..200 {
            assert!(policy.delay(1, None) <= Duration::from_millis(100));
            assert!(policy.delay(3, None) <= Duration::from_millis(400));
            assert!(policy.delay(9, None) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn delays_are_jittered() {
        let policy = RetryPolicy::default();
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| policy.delay(3, None)).collect();
        assert!(delays.len() > 1);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = RetryPolicy::default();
        assert!(policy.delay(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(policy.allows_another(2));
        assert!(!policy.allows_another(3));
        let no_retries = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert!(!no_retries.allows_another(1));
    }
}
