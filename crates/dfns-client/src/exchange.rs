//! What the client reports about each HTTP exchange with Dfns, for metrics: method, path, outcome
//! and latency. Never the headers or bodies, so never a token.
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeOutcome {
    /// An HTTP response with this status.
    Status(u16),
    Timeout,
    /// No response: connection refused, TLS failure, reset.
    TransportError,
}

impl ExchangeOutcome {
    pub fn label(&self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Timeout => "timeout".into(),
            Self::TransportError => "transport_error".into(),
        }
    }
}

type Callback = dyn Fn(&str, &str, ExchangeOutcome, Duration) + Send + Sync;

/// Called after every exchange with `(method, path with query, outcome, latency)`. Set per client
/// in [`crate::ClientConfig::request_observer`]; clones share the callback.
#[derive(Clone)]
pub struct RequestObserver(Arc<Callback>);

impl RequestObserver {
    pub fn new(
        callback: impl Fn(&str, &str, ExchangeOutcome, Duration) + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(callback))
    }

    pub(crate) fn exchanged(
        &self,
        method: &reqwest::Method,
        path: &str,
        outcome: ExchangeOutcome,
        took: Duration,
    ) {
        (self.0)(method.as_str(), path, outcome, took);
    }
}

impl fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestObserver")
    }
}
