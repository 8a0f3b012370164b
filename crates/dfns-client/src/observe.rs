//! A process-wide hook that sees every HTTP exchange with Dfns (for metrics): method, path,
//! outcome and latency. Never the headers or bodies, so never a token.

use std::sync::OnceLock;
use std::time::Duration;

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status.
    Status(u16),
    Timeout,
    /// No response: connection refused, TLS failure, reset.
    TransportError,
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Self::Status(code) => code.to_string(),
            Self::Timeout => "timeout".into(),
            Self::TransportError => "transport_error".into(),
        }
    }
}

/// `(method, path with query, outcome, latency)`.
pub type RequestObserver = Box<dyn Fn(&str, &str, Outcome, Duration) + Send + Sync>;

static OBSERVER: OnceLock<RequestObserver> = OnceLock::new();

/// Installs the observer; only the first call per process takes effect (returns whether it did).
pub fn set_request_observer(observer: RequestObserver) -> bool {
    OBSERVER.set(observer).is_ok()
}

pub(crate) fn observe(method: &reqwest::Method, path: &str, outcome: Outcome, took: Duration) {
    if let Some(observer) = OBSERVER.get() {
        observer(method.as_str(), path, outcome, took);
    }
}
