//! Request counters for tests and benchmarks (`GET /_emulator/requests`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Counts of Dfns API requests since start or the last reset (`/_emulator/` calls excluded).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    /// Every Dfns API request received, including refused ones.
    pub total: u64,
    /// GET requests.
    pub reads: u64,
    /// State-changing requests (POST/PUT/DELETE except the auth plumbing below).
    pub writes: u64,
    /// Login, user-action signing and credential-challenge requests.
    pub auth: u64,
    /// Requests answered 429 by the rate limit.
    pub rate_limited: u64,
    /// Requests answered with an injected 5xx (nothing applied).
    pub injected_errors: u64,
    /// Requests applied whose reply was replaced by a 502.
    pub lost_responses: u64,
    /// Per endpoint, keyed `"METHOD /route/{param}"`.
    pub by_endpoint: BTreeMap<String, EndpointCounts>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCounts {
    pub requests: u64,
    pub rate_limited: u64,
}

/// How a request is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestClass {
    Read,
    Write,
    Auth,
}

pub(crate) fn classify(method: &str, route: &str) -> RequestClass {
    if method == "GET" {
        RequestClass::Read
    } else if route.starts_with("/auth/login")
        || route.starts_with("/auth/action")
        || route == "/auth/credentials/init"
    {
        RequestClass::Auth
    } else {
        RequestClass::Write
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    inner: Mutex<RequestCounts>,
}

/// What finally happened to a request, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Served,
    RateLimited,
    InjectedError,
    LostResponse,
}

impl Counters {
    fn with<R>(&self, f: impl FnOnce(&mut RequestCounts) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn record(&self, endpoint: &str, class: RequestClass, outcome: Outcome) {
        self.with(|c| {
            c.total += 1;
            match class {
                RequestClass::Read => c.reads += 1,
                RequestClass::Write => c.writes += 1,
                RequestClass::Auth => c.auth += 1,
            }
            let e = c.by_endpoint.entry(endpoint.to_owned()).or_default();
            e.requests += 1;
            match outcome {
                Outcome::Served => {}
                Outcome::RateLimited => {
                    c.rate_limited += 1;
                    c.by_endpoint
                        .get_mut(endpoint)
                        .expect("inserted above")
                        .rate_limited += 1;
                }
                Outcome::InjectedError => c.injected_errors += 1,
                Outcome::LostResponse => c.lost_responses += 1,
            }
        })
    }

    pub fn snapshot(&self) -> RequestCounts {
        self.with(|c| c.clone())
    }

    pub fn reset(&self) {
        self.with(|c| *c = RequestCounts::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_and_counted_per_endpoint() {
        assert_eq!(classify("GET", "/auth/pats"), RequestClass::Read);
        assert_eq!(classify("POST", "/auth/action/init"), RequestClass::Auth);
        assert_eq!(classify("POST", "/auth/pats"), RequestClass::Write);
        let c = Counters::default();
        c.record("POST /auth/pats", RequestClass::Write, Outcome::Served);
        c.record("POST /auth/pats", RequestClass::Write, Outcome::RateLimited);
        let s = c.snapshot();
        assert_eq!((s.total, s.writes, s.rate_limited), (2, 2, 1));
        assert_eq!(
            s.by_endpoint["POST /auth/pats"],
            EndpointCounts {
                requests: 2,
                rate_limited: 1
            }
        );
        c.reset();
        assert_eq!(c.snapshot(), RequestCounts::default());
    }
}
