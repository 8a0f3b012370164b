//! What a [`crate::DfnsClient`] is built from.
use std::fmt;
use std::time::Duration;

use super::auth::AuthMode;
use super::exchange::RequestObserver;
use super::gate::Gate;
use super::retry::RetryPolicy;
use super::signer::KeySigner;

/// The production Dfns API (Europe). `https://api.uae.dfns.io` is the other region.
pub const DEFAULT_API_URL: &str = "https://api.dfns.io";

/// Dfns' answers other than lists are a few KiB; 4 MiB leaves ample room.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Dfns' lists of service accounts and PATs are unpaginated: one answer holds every identity of
/// the organization. Measured against the emulator (which answers in Dfns' documented shape), a
/// listed service account takes about 850 bytes (6.3 MB for 7,400, `docs/benchmarks.md`); 16 MiB
/// holds 10,000 identities at twice that size (longer names, roles with listed operations), or
/// about 19,700 at the measured size. A larger organization needs a larger
/// [`ClientConfig::max_list_response_bytes`].
pub const DEFAULT_MAX_LIST_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Everything needed to build a [`crate::DfnsClient`].
pub struct ClientConfig {
    pub api_url: String,
    pub auth: AuthMode,
    /// The Key credential that signs user actions (and logins, in login mode).
    pub signer: KeySigner,
    /// Extra trusted CA certificates (PEM).
    pub ca_bundle_pem: Option<String>,
    pub allow_insecure_http: bool,
    /// Shared by every request of this client (Dfns' paid-plan limit is 1000).
    pub requests_per_minute: u32,
    /// The whole exchange, body included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest silence while reading an answer (between two chunks).
    pub read_timeout: Duration,
    /// Largest response body read; a larger one fails with [`crate::DfnsError::ResponseTooLarge`].
    pub max_response_bytes: usize,
    /// The same for the answers of list calls (service accounts, PATs, credentials), which Dfns
    /// does not paginate. Never below `max_response_bytes` in effect.
    pub max_list_response_bytes: usize,
    pub retry: RetryPolicy,
    /// Told about every HTTP exchange (for metrics); none by default.
    pub request_observer: Option<RequestObserver>,
    /// The longest an operation waits for this client's rate limit before its first request;
    /// beyond it the call fails at once with [`crate::DfnsError::Throttled`]. Requests after
    /// the first of an operation (a signed write's handshake, a login) always wait, so an
    /// operation once started is not abandoned halfway. `None` (the default): always wait.
    pub rate_limit_wait_bound: Option<Duration>,
    /// Closed at shutdown: nothing more is sent and every wait ends ([`crate::DfnsError::Halted`]).
    /// Share one gate between the clients of a process. Default: a gate nobody closes.
    pub gate: Gate,
}

impl ClientConfig {
    pub fn new(api_url: impl Into<String>, auth: AuthMode, signer: KeySigner) -> Self {
        Self {
            api_url: api_url.into(),
            auth,
            signer,
            ca_bundle_pem: None,
            allow_insecure_http: false,
            requests_per_minute: 1000,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(15),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_list_response_bytes: DEFAULT_MAX_LIST_RESPONSE_BYTES,
            retry: RetryPolicy::default(),
            request_observer: None,
            rate_limit_wait_bound: None,
            gate: Gate::new(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_url", &self.api_url)
            .field("auth", &self.auth)
            .field("signer", &self.signer)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("requests_per_minute", &self.requests_per_minute)
            .finish_non_exhaustive()
    }
}
