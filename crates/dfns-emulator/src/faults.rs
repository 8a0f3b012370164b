//! Fault injection around Dfns API paths: latency with jitter, the per-organization rate limit
//! (429, with Retry-After only when asked for: Dfns documents none), injected 5xx before anything changes, and "lost responses" (the change
//! is applied, then the reply is replaced by a 502).

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::app::Shared;
use super::counters::{Outcome, RequestClass, classify};
use super::error::ApiError;

/// Token bucket holding up to one minute's allowance, refilled continuously. The emulator
/// serves a single organization, so one bucket is the per-organization limit. It starts full
/// unless `initial_tokens` says otherwise.
pub(crate) struct RateLimiter {
    per_minute: Option<u32>,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: Option<u32>, initial_tokens: Option<u32>) -> Self {
        let full = per_minute.unwrap_or(0);
        Self {
            per_minute,
            tokens: initial_tokens.unwrap_or(full).min(full) as f64,
            last: Instant::now(),
        }
    }

    /// `Ok` to admit a request, `Err(seconds)` to wait before retrying.
    pub fn admit(&mut self, now: Instant) -> Result<(), u64> {
        let Some(limit) = self.per_minute else {
            return Ok(());
        };
        let rate_per_sec = limit as f64 / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate_per_sec).min(limit as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate_per_sec).ceil().max(1.0) as u64)
        }
    }
}

fn delay(latency: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        latency
    } else {
        latency + Duration::from_micros(rand::random_range(0..=jitter.as_micros() as u64))
    }
}

/// Middleware for every Dfns API route (the `/_emulator/` routes are mounted outside it).
pub(crate) async fn apply(State(app): State<Shared>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let endpoint = format!("{method} {route}");
    let class = classify(&method, &route);
    let faults = app.faults();

    let wait = delay(faults.latency, faults.jitter);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }

    let admitted = app
        .limiter
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .admit(Instant::now());
    if let Err(retry_after) = admitted {
        app.counters.record(&endpoint, class, Outcome::RateLimited);
        let mut err = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests: rate limit exceeded",
        );
        let send = faults.retry_after || app.store.lock().profile.retry_after_on_every_429;
        err.retry_after_secs = send.then_some(retry_after);
        return err.into_response();
    }

    if faults.error_ratio > 0.0 && rand::random::<f64>() < faults.error_ratio {
        app.counters
            .record(&endpoint, class, Outcome::InjectedError);
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error (injected by the emulator)",
        )
        .into_response();
    }

    let response = next.run(request).await;

    // Only state-changing requests lose their reply: losing a read or a signing step changes
    // nothing, and would keep a client from ever reaching the write under test.
    if class == RequestClass::Write
        && faults.lost_response_ratio > 0.0
        && rand::random::<f64>() < faults.lost_response_ratio
    {
        app.counters.record(&endpoint, class, Outcome::LostResponse);
        tracing::debug!(%endpoint, status = %response.status(), "dropping the reply of an applied request");
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway: the response was lost (injected by the emulator)",
        )
        .into_response();
    }
    app.counters.record(&endpoint, class, Outcome::Served);
    tracing::debug!(%endpoint, status = %response.status(), "request served");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_admits_everything() {
        let mut l = RateLimiter::new(None, None);
        let now = Instant::now();
        assert!((0..10_000).all(|_| l.admit(now).is_ok()));
    }

    #[test]
    fn limit_admits_one_minute_burst_then_asks_to_retry() {
        let mut l = RateLimiter::new(Some(60), None);
        let now = Instant::now();
        assert!((0..60).all(|_| l.admit(now).is_ok()));
        assert_eq!(l.admit(now), Err(1));
        // One second later one request's worth has refilled.
        assert!(l.admit(now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn retry_after_reflects_the_refill_rate() {
        let mut l = RateLimiter::new(Some(6), None);
        let now = Instant::now();
        assert!((0..6).all(|_| l.admit(now).is_ok()));
        assert_eq!(l.admit(now), Err(10));
    }

    #[test]
    fn a_bucket_started_low_admits_only_its_initial_tokens_then_the_rate() {
        // 6,000 a minute is 100 a second; starting with one second's worth, not a minute's.
        let mut l = RateLimiter::new(Some(6000), Some(100));
        let now = Instant::now();
        assert!((0..100).all(|_| l.admit(now).is_ok()));
        assert!(l.admit(now).is_err());
        let later = now + Duration::from_secs(1);
        assert!((0..100).all(|_| l.admit(later).is_ok()));
        assert!(l.admit(later).is_err());
    }

    #[test]
    fn initial_tokens_never_exceed_a_full_bucket() {
        let mut l = RateLimiter::new(Some(60), Some(1_000));
        let now = Instant::now();
        assert!((0..60).all(|_| l.admit(now).is_ok()));
        assert!(l.admit(now).is_err());
    }
}
