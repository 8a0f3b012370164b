//! A per-connection token bucket, so the operator stays under the organisation's Dfns limit
//! (1000 requests per minute on paid plans) however many resources share the connection.
//!
//! A caller may bound its wait ([`RateLimiter::acquire`]): when the next token is further away,
//! it gets [`DfnsError::Throttled`] at once instead of holding its reconcile slot, with a time to
//! come back. Those times are handed out one token interval apart, so many callers turned away
//! at once come back spread out, not in a burst that would be turned away again.
//!
//! The bucket arithmetic takes the current instant as an argument, so it is tested without sleeping.
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::error::DfnsError;
use super::gate::Gate;

#[derive(Debug)]
pub struct RateLimiter {
    /// Tokens added per second, as configured: the ceiling the adaptive rate returns to.
    rate: f64,
    /// Most tokens the bucket holds at the configured rate.
    burst: f64,
    state: Mutex<BucketState>,
}

/// After a 429 the rate is halved (once per congestion episode) and then grows back by a tenth
/// per quiet minute: the organization's limit is shared with others, so what we may send is
/// learned from Dfns' answers rather than trusted from configuration alone.
const DECREASE_FACTOR: f64 = 0.5;
const RECOVERY_FACTOR: f64 = 1.1;
const RECOVERY_STEP: Duration = Duration::from_secs(60);
/// 429s arriving within this window of a decrease belong to the same episode.
const EPISODE: Duration = Duration::from_secs(2);
/// Never slower than one request per minute.
const MIN_RATE: f64 = 1.0 / 60.0;

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    refilled_at: Instant,
    /// Set after a 429: nobody sends before this instant.
    paused_until: Option<Instant>,
    /// Current tokens per second: the configured rate, or less after 429s.
    rate: f64,
    /// Last time the rate changed.
    rate_changed_at: Instant,
    /// The earliest time the next turned-away caller may be told to come back.
    next_return: Instant,
}

impl RateLimiter {
    /// `requests_per_minute` sustained, with bursts of up to one second's worth (at least one).
    /// A small burst keeps any sliding minute close to the limit, which is how servers count.
    pub fn per_minute(requests_per_minute: u32) -> Self {
        let requests_per_minute = requests_per_minute.max(1);
        let burst = (f64::from(requests_per_minute) / 60.0).ceil().max(1.0);
        Self::new(requests_per_minute, burst as u32)
    }

    pub fn new(requests_per_minute: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        let rate = f64::from(requests_per_minute.max(1)) / 60.0;
        let now = Instant::now();
        Self {
            rate,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                refilled_at: now,
                paused_until: None,
                rate,
                rate_changed_at: now,
                next_return: now,
            }),
        }
    }

    /// Waits until a request may be sent, and takes its token. With a `bound`, a wait that would
    /// end later than `bound` from now is not started: [`DfnsError::Throttled`] says when to come
    /// back. A closed `gate` ends any wait at once with [`DfnsError::Halted`].
    pub async fn acquire(&self, bound: Option<Duration>, gate: &Gate) -> Result<(), DfnsError> {
        let deadline = bound.map(|bound| Instant::now() + bound);
        loop {
            if gate.is_closed() {
                return Err(DfnsError::Halted);
            }
            let now = Instant::now();
            let wait = match self.try_take(now) {
                Ok(()) => return Ok(()),
                Err(wait) => wait,
            };
            if deadline.is_some_and(|deadline| now + wait > deadline) {
                return Err(DfnsError::Throttled {
                    retry_in: self.return_time(now, wait),
                });
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = gate.closed() => return Err(DfnsError::Halted),
            }
        }
    }

    /// When a caller turned away at `now`, whose token is `wait` away, should come back: no
    /// earlier than its token, and one token interval after the previous caller turned away.
    fn return_time(&self, now: Instant, wait: Duration) -> Duration {
        let mut state = self.state.lock().expect("rate limiter lock");
        let interval = Duration::from_secs_f64(1.0 / state.rate);
        let at = (now + wait).max(state.next_return);
        state.next_return = at + interval;
        at - now
    }

    /// The rate currently allowed, in requests per minute (for metrics and tests).
    #[cfg(test)]
    fn current_per_minute(&self) -> f64 {
        self.state.lock().expect("rate limiter lock").rate * 60.0
    }

    /// Takes a token at `now` if one is available, else says how long until one is.
    fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().expect("rate limiter lock");
        if let Some(until) = state.paused_until {
            if until > now {
                return Err(until - now);
            }
            state.paused_until = None;
        }
        if state.rate < self.rate
            && now.saturating_duration_since(state.rate_changed_at) >= RECOVERY_STEP
        {
            state.rate = (state.rate * RECOVERY_FACTOR).min(self.rate);
            state.rate_changed_at = now;
        }
        // A slowed-down bucket also holds fewer tokens, so it cannot burst past the learned rate.
        let burst = if state.rate < self.rate {
            self.burst.min(state.rate.ceil()).max(1.0)
        } else {
            self.burst
        };
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.tokens = (state.tokens + elapsed * state.rate).min(burst);
        state.refilled_at = state.refilled_at.max(now);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Ok(())
        } else {
            // At least a millisecond: float rounding must never yield a zero wait (a busy loop).
            Err(Duration::from_secs_f64((1.0 - state.tokens) / state.rate)
                .max(Duration::from_millis(1)))
        }
    }

    /// The server said 429: stop everyone sending for `duration` (its Retry-After, or a default),
    /// empty the bucket so the resumption is not a burst, and slow down.
    pub fn pause_for(&self, duration: Duration) {
        self.pause_at(Instant::now(), duration);
    }

    fn pause_at(&self, now: Instant, duration: Duration) {
        let mut state = self.state.lock().expect("rate limiter lock");
        let until = now + duration;
        let until = state
            .paused_until
            .map_or(until, |current| current.max(until));
        state.paused_until = Some(until);
        state.tokens = 0.0;
        state.refilled_at = until;
        let new_episode = state.rate == self.rate
            || now.saturating_duration_since(state.rate_changed_at) >= EPISODE;
        if new_episode {
            state.rate = (state.rate * DECREASE_FACTOR).max(MIN_RATE);
            state.rate_changed_at = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn allows_the_burst_then_spaces_requests_at_the_rate() {
        let limiter = RateLimiter::new(60, 2); // one per second, bursts of two
        let start = Instant::now();
        assert_eq!(limiter.try_take(start), Ok(()));
        assert_eq!(limiter.try_take(start), Ok(()));
        let wait = limiter.try_take(start).unwrap_err();
        assert!(
            wait > Duration::from_millis(999) && wait <= SECOND,
            "{wait:?}"
        );
        assert_eq!(limiter.try_take(start + SECOND), Ok(()));
        assert!(limiter.try_take(start + SECOND).is_err());
        // An idle bucket refills only up to the burst.
        let later = start + 100 * SECOND;
        assert_eq!(limiter.try_take(later), Ok(()));
        assert_eq!(limiter.try_take(later), Ok(()));
        assert!(limiter.try_take(later).is_err());
    }

    #[test]
    fn a_minute_never_admits_more_than_the_limit_plus_burst() {
        let limiter = RateLimiter::per_minute(120); // burst 2
        let start = Instant::now();
        let mut admitted = 0;
        let mut now = start;
        while now < start + 60 * SECOND {
            match limiter.try_take(now) {
                Ok(()) => admitted += 1,
                Err(wait) => now += wait,
            }
        }
        assert!((120..=122).contains(&admitted), "admitted {admitted}");
    }

    #[test]
    fn pause_holds_every_caller_until_it_ends() {
        let limiter = RateLimiter::new(6000, 100);
        let start = Instant::now();
        limiter.pause_at(start, 7 * SECOND);
        assert_eq!(limiter.try_take(start + SECOND).unwrap_err(), 6 * SECOND);
        // A shorter pause never shortens a longer one.
        limiter.pause_at(start + SECOND, SECOND);
        assert_eq!(
            limiter.try_take(start + 2 * SECOND).unwrap_err(),
            5 * SECOND
        );
        // After the pause the bucket starts empty: no burst right away.
        let resumed = start + 7 * SECOND;
        assert!(limiter.try_take(resumed).is_err());
        assert_eq!(
            limiter.try_take(resumed + Duration::from_millis(20)),
            Ok(())
        );
    }

    #[test]
    fn a_429_halves_the_rate_once_per_episode_and_quiet_minutes_restore_it() {
        let limiter = RateLimiter::per_minute(1200); // 20/s
        let start = Instant::now();
        limiter.pause_at(start, SECOND);
        assert_eq!(limiter.current_per_minute(), 600.0);
        // More 429s of the same episode (requests that were already in flight) do not compound.
        limiter.pause_at(start + Duration::from_millis(300), SECOND);
        assert_eq!(limiter.current_per_minute(), 600.0);
        limiter.pause_at(start + 3 * SECOND, SECOND);
        assert_eq!(limiter.current_per_minute(), 300.0);
        // Each quiet minute gives back a tenth, up to the configured rate and never beyond.
        let mut now = start + 3 * SECOND;
        for _ in 0..20 {
            now += 61 * SECOND;
            let _ = limiter.try_take(now);
        }
        assert_eq!(limiter.current_per_minute(), 1200.0);
    }

    #[test]
    fn a_slowed_bucket_admits_at_the_learned_rate_without_bursting() {
        let limiter = RateLimiter::per_minute(6000); // 100/s, bursts of 100
        let start = Instant::now();
        limiter.pause_at(start, SECOND); // now 50/s, burst 50
        let mut admitted = 0;
        let mut now = start + 2 * SECOND; // a second after the pause: the bucket is full again
        let end = now + 10 * SECOND;
        while now < end {
            match limiter.try_take(now) {
                Ok(()) => admitted += 1,
                Err(wait) => now += wait,
            }
        }
        // About 50/s for 10 s plus one learned burst; the configured 100/s would admit ~1100.
        assert!((500..=560).contains(&admitted), "admitted {admitted}");
    }

    #[tokio::test]
    async fn acquire_waits_for_a_token() {
        let limiter = RateLimiter::new(600, 1); // one per 100 ms
        let gate = Gate::new();
        let start = Instant::now();
        limiter.acquire(None, &gate).await.unwrap();
        limiter.acquire(None, &gate).await.unwrap();
        assert!(Instant::now() - start >= Duration::from_millis(99));
    }

    fn throttled_for(result: Result<(), DfnsError>) -> Duration {
        match result {
            Err(DfnsError::Throttled { retry_in }) => retry_in,
            other => panic!("expected Throttled, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_acquire_waits_within_the_bound_and_refuses_at_once_beyond_it() {
        let limiter = RateLimiter::new(60, 1); // one per second
        let gate = Gate::new();
        let bound = Some(2 * SECOND);
        limiter.acquire(bound, &gate).await.unwrap();
        // The next token is a second away: within the bound, so it waits for it.
        let start = Instant::now();
        limiter.acquire(bound, &gate).await.unwrap();
        assert_eq!(Instant::now() - start, SECOND);

        let slow = RateLimiter::new(1, 1); // one per minute
        slow.acquire(bound, &gate).await.unwrap();
        let start = Instant::now();
        let retry_in = throttled_for(slow.acquire(bound, &gate).await);
        assert_eq!(Instant::now(), start, "refused without waiting");
        assert!(
            retry_in > 59 * SECOND && retry_in <= 60 * SECOND,
            "{retry_in:?}"
        );
        // Coming back when told, the token is there.
        tokio::time::sleep(retry_in).await;
        slow.acquire(Some(Duration::ZERO), &gate).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn callers_turned_away_together_are_told_to_come_back_one_token_apart() {
        let limiter = RateLimiter::new(1, 1); // one per minute
        let gate = Gate::new();
        let bound = Some(2 * SECOND);
        limiter.acquire(bound, &gate).await.unwrap();
        let mut returns = Vec::new();
        for _ in 0..5 {
            returns.push(throttled_for(limiter.acquire(bound, &gate).await));
        }
        for (index, pair) in returns.windows(2).enumerate() {
            assert_eq!(
                pair[1] - pair[0],
                60 * SECOND,
                "caller {index}: {returns:?}"
            );
        }
        // Each comes back at its time and finds its token: none is turned away again.
        let start = Instant::now();
        for retry_in in returns {
            tokio::time::sleep_until(start + retry_in).await;
            limiter.acquire(bound, &gate).await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_gate_ends_a_wait_at_once_and_refuses_further_requests() {
        let limiter = std::sync::Arc::new(RateLimiter::new(1, 1));
        let gate = Gate::new();
        limiter.acquire(None, &gate).await.unwrap();
        let waiting = tokio::spawn({
            let (limiter, gate) = (limiter.clone(), gate.clone());
            async move { limiter.acquire(None, &gate).await }
        });
        tokio::time::sleep(10 * SECOND).await;
        assert!(!waiting.is_finished(), "waits for the next token");
        gate.close();
        let ended = tokio::time::timeout(Duration::from_millis(1), waiting)
            .await
            .expect("the wait ends at once")
            .unwrap();
        assert!(matches!(ended, Err(DfnsError::Halted)), "{ended:?}");
        // Even with a token available, a closed gate admits nothing.
        tokio::time::sleep(600 * SECOND).await;
        assert!(matches!(
            limiter.acquire(None, &gate).await,
            Err(DfnsError::Halted)
        ));
    }

    #[test]
    fn per_minute_burst_is_about_one_second_of_traffic() {
        assert_eq!(RateLimiter::per_minute(1000).burst, 17.0);
        assert_eq!(RateLimiter::per_minute(10).burst, 1.0);
        assert_eq!(RateLimiter::per_minute(0).rate, 1.0 / 60.0);
    }
}
