//! One HTTP exchange with Dfns: rate limiting, the shutdown gate, timeout, headers, and turning
//! statuses into [`DfnsError`]s. No retries and no signing here; the client layers those on top.
mod base_url;
mod response;

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use reqwest::{Method, StatusCode};
use zeroize::Zeroizing;

use super::error::{DfnsError, TimeoutLimits, scrub};
use super::exchange::{ExchangeOutcome, RequestObserver};
use super::gate::Gate;
use super::rate_limit::RateLimiter;
use super::sensitive::SecretString;
use base_url::normalize_base_url;
pub(crate) use response::ApiResponse;
use response::{into_result, parse_retry_after};

const USER_ACTION_HEADER: &str = "x-dfns-useraction";
/// Used for a 429 without Retry-After: long enough to let a per-minute window move on.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(2);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub api_url: String,
    /// Extra trusted roots (PEM), for a private CA or a local emulator.
    pub ca_bundle_pem: Option<String>,
    /// `http://` is refused unless this is set (local emulators only).
    pub allow_insecure_http: bool,
    /// The whole exchange, body included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest silence while reading (between two chunks of the answer).
    pub read_timeout: Duration,
    /// Largest response body read; a larger one is refused (announced ones without reading).
    pub max_response_bytes: usize,
    /// The same for requests marked [`BodyLimit::List`].
    pub max_list_response_bytes: usize,
    pub requests_per_minute: u32,
    pub request_observer: Option<RequestObserver>,
    /// See [`crate::ClientConfig::rate_limit_wait_bound`].
    pub rate_limit_wait_bound: Option<Duration>,
    pub gate: Gate,
}

pub(crate) struct Transport {
    /// Tells this transport's rate limiter apart from others' (`Admission::Prepaid`).
    id: u64,
    http: reqwest::Client,
    base_url: String,
    timeouts: TimeoutLimits,
    max_response_bytes: usize,
    max_list_response_bytes: usize,
    limiter: RateLimiter,
    wait_bound: Option<Duration>,
    gate: Gate,
    observer: Option<RequestObserver>,
}

/// Where the current operation stands with the rate limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// No request admitted yet: the next one is bounded by the wait bound.
    NotYet,
    /// The first request's token was taken ahead ([`Transport::admit_ahead`]) from the limiter
    /// of the transport with this id: that transport's next request uses it.
    Prepaid(u64),
    /// Admitted: later requests wait their turn, unbounded.
    Started,
}

tokio::task_local! {
    static OPERATION: Cell<Admission>;
}

/// Runs `operation` as one operation for the rate limiter: only its first request may be turned
/// away by the wait bound; the rest wait their turn, so a signed write is never abandoned between
/// its handshake and the write. Nested calls belong to the outermost operation.
pub(crate) async fn as_one_operation<F: Future>(operation: F) -> F::Output {
    if OPERATION.try_with(|_| ()).is_ok() {
        operation.await
    } else {
        OPERATION
            .scope(Cell::new(Admission::NotYet), operation)
            .await
    }
}

/// One request to send. `path` may carry a query string; bodies are pre-serialized so the bytes
/// sent are exactly the bytes a user action signed.
pub(crate) struct ApiRequest<'a> {
    pub method: Method,
    pub path: &'a str,
    pub bearer: Option<&'a SecretString>,
    pub user_action: Option<&'a SecretString>,
    pub body: Option<&'a str>,
    pub limit: BodyLimit,
}

/// Which cap a response body is read under.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum BodyLimit {
    #[default]
    Normal,
    /// An unpaginated list: every identity of the organization in one answer.
    List,
}

/// reqwest is built without a default rustls provider; install ring once per process.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another component installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Transport {
    pub fn new(config: &TransportConfig) -> Result<Self, DfnsError> {
        install_crypto_provider();
        let base_url = normalize_base_url(&config.api_url, config.allow_insecure_http)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("dfns-operator/", env!("CARGO_PKG_VERSION"))),
        );
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .timeout(config.request_timeout)
            // A redirect would carry the bearer token and the user action to another place.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.ca_bundle_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|_| DfnsError::Config("CA bundle is not valid PEM certificates".into()))?;
            if certificates.is_empty() {
                return Err(DfnsError::Config(
                    "CA bundle contains no certificates".into(),
                ));
            }
            builder = builder.tls_certs_merge(certificates);
        }
        let http = builder.build().map_err(|error| {
            DfnsError::Config(format!("cannot build HTTP client: {}", error_chain(&error)))
        })?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            http,
            base_url,
            timeouts: TimeoutLimits {
                connect: config.connect_timeout,
                read: config.read_timeout,
                total: config.request_timeout,
            },
            max_response_bytes: config.max_response_bytes,
            max_list_response_bytes: config.max_list_response_bytes,
            limiter: RateLimiter::per_minute(config.requests_per_minute),
            wait_bound: config.rate_limit_wait_bound,
            gate: config.gate.clone(),
            observer: config.request_observer.clone(),
        })
    }

    /// Sleeps `delay` (a retry backoff), unless the gate closes first.
    pub async fn pause(&self, delay: Duration) -> Result<(), DfnsError> {
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = self.gate.closed() => Err(DfnsError::Halted),
        }
    }

    /// Takes a rate-limit token; bounded for the first request of an operation only, and none
    /// for a request whose token was taken ahead.
    async fn admit(&self) -> Result<(), DfnsError> {
        let before = OPERATION
            .try_with(|admission| admission.replace(Admission::Started))
            .unwrap_or(Admission::NotYet);
        match before {
            Admission::Prepaid(id) if id == self.id => Ok(()),
            // Another client's token does not admit a request to this one.
            Admission::Prepaid(_) | Admission::NotYet => {
                self.limiter.acquire(self.wait_bound, &self.gate).await
            }
            Admission::Started => self.limiter.acquire(None, &self.gate).await,
        }
    }

    /// Within an operation ([`as_one_operation`]) that has sent nothing yet: takes its first
    /// request's token now, under the wait bound, so that a caller turned away
    /// ([`DfnsError::Throttled`]) is turned away before it does what must precede the request.
    /// Outside an operation, or once it started, there is nothing to take ahead.
    pub async fn admit_ahead(&self) -> Result<(), DfnsError> {
        if !matches!(OPERATION.try_with(Cell::get), Ok(Admission::NotYet)) {
            return Ok(());
        }
        self.limiter.acquire(self.wait_bound, &self.gate).await?;
        // Set after the wait: a failed or abandoned wait leaves the operation as it was.
        let _ = OPERATION.try_with(|admission| admission.set(Admission::Prepaid(self.id)));
        Ok(())
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn send(&self, request: ApiRequest<'_>) -> Result<ApiResponse, DfnsError> {
        self.admit().await?;
        let method = request.method.clone();
        let mut builder = self
            .http
            .request(request.method, format!("{}{}", self.base_url, request.path));
        if let Some(token) = request.bearer {
            let value = Zeroizing::new(format!("Bearer {}", token.expose()));
            builder = builder.header(AUTHORIZATION, sensitive_header(&value)?);
        }
        if let Some(user_action) = request.user_action {
            builder = builder.header(USER_ACTION_HEADER, sensitive_header(user_action.expose())?);
        }
        if let Some(body) = request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_owned());
        }
        let started = Instant::now();
        let mut response = builder
            .send()
            .await
            .map_err(|error| self.failed(&method, request.path, &error, started))?;
        let status = response.status();
        if status.is_redirection() {
            self.report(
                &method,
                request.path,
                ExchangeOutcome::Status(status.as_u16()),
                started,
            );
            return Err(DfnsError::Redirected {
                method,
                path: request.path.to_owned(),
                status: status.as_u16(),
            });
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(parse_retry_after);
        let limit = match request.limit {
            BodyLimit::Normal => self.max_response_bytes,
            BodyLimit::List => self.max_list_response_bytes,
        };
        let body = self
            .read_body(&mut response, limit)
            .await
            .map_err(|failure| match failure {
                BodyFailure::TooLarge { announced } => {
                    self.report(
                        &method,
                        request.path,
                        ExchangeOutcome::Status(status.as_u16()),
                        started,
                    );
                    DfnsError::ResponseTooLarge {
                        method: method.clone(),
                        path: request.path.to_owned(),
                        limit,
                        announced,
                    }
                }
                BodyFailure::Http(error) => self.failed(&method, request.path, &error, started),
            })?;
        self.report(
            &method,
            request.path,
            ExchangeOutcome::Status(status.as_u16()),
            started,
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.limiter
                .pause_for(retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE));
        }
        into_result(method, request.path, status, retry_after, body)
    }

    /// The body, chunk by chunk, stopping as soon as it passes the cap; an announced length over
    /// the cap is refused before reading anything.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        limit: usize,
    ) -> Result<Zeroizing<Vec<u8>>, BodyFailure> {
        if let Some(announced) = response.content_length()
            && announced > limit as u64
        {
            return Err(BodyFailure::TooLarge {
                announced: Some(announced),
            });
        }
        let expected = response.content_length().unwrap_or(0) as usize;
        // Sized from Content-Length when announced: growing moves the bytes and leaves an
        // unzeroized copy of a token behind.
        let mut body = Zeroizing::new(Vec::with_capacity(expected.max(8 * 1024)));
        while let Some(chunk) = response.chunk().await.map_err(BodyFailure::Http)? {
            if body.len() + chunk.len() > limit {
                return Err(BodyFailure::TooLarge { announced: None });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Tells the configured observer, if any, how an exchange ended and how long it took.
    fn report(&self, method: &Method, path: &str, outcome: ExchangeOutcome, started: Instant) {
        if let Some(observer) = &self.observer {
            observer.exchanged(method, path, outcome, started.elapsed());
        }
    }

    /// Reports an exchange that got no (complete) response to the observer, as an error.
    fn failed(
        &self,
        method: &Method,
        path: &str,
        error: &reqwest::Error,
        started: Instant,
    ) -> DfnsError {
        let outcome = if error.is_timeout() {
            ExchangeOutcome::Timeout
        } else {
            ExchangeOutcome::TransportError
        };
        self.report(method, path, outcome, started);
        self.transport_error(method, path, error)
    }

    fn transport_error(&self, method: &Method, path: &str, error: &reqwest::Error) -> DfnsError {
        if error.is_timeout() {
            DfnsError::Timeout {
                method: method.clone(),
                path: path.to_owned(),
                limits: self.timeouts,
            }
        } else {
            DfnsError::Transport {
                method: method.clone(),
                path: path.to_owned(),
                reason: scrub(&error_chain(error)),
            }
        }
    }
}

enum BodyFailure {
    TooLarge { announced: Option<u64> },
    Http(reqwest::Error),
}

fn sensitive_header(value: &str) -> Result<HeaderValue, DfnsError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        DfnsError::Config("token contains characters not allowed in an HTTP header".into())
    })?;
    // Keeps the value out of hyper's and reqwest's Debug output and HTTP/2 header compression.
    header.set_sensitive(true);
    Ok(header)
}

/// "error sending request: connection refused" rather than only the outermost layer.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
