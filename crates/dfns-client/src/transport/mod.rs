//! One HTTP exchange with Dfns: rate limiting, timeout, headers, and turning statuses into
//! [`DfnsError`]s. No retries and no signing here; the client layers those on top.
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::error::{DfnsError, scrub};
use super::observe::{Outcome, observe};
use super::rate_limit::RateLimiter;
use super::sensitive::SecretString;

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
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub requests_per_minute: u32,
}

pub(crate) struct Transport {
    http: reqwest::Client,
    base_url: String,
    timeout: Duration,
    limiter: RateLimiter,
}

/// One request to send. `path` may carry a query string; bodies are pre-serialized so the bytes
/// sent are exactly the bytes a user action signed.
pub(crate) struct ApiRequest<'a> {
    pub method: Method,
    pub path: &'a str,
    pub bearer: Option<&'a SecretString>,
    pub user_action: Option<&'a SecretString>,
    pub body: Option<&'a str>,
}

pub(crate) struct ApiResponse {
    pub status: StatusCode,
    /// Zeroized on drop: create and login responses carry tokens.
    pub body: Zeroizing<Vec<u8>>,
}

impl ApiResponse {
    /// Parses the body. On failure the error names the JSON problem by position only, because
    /// serde's messages quote values and this body may hold a token.
    pub fn json<T: for<'de> Deserialize<'de>>(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<T, DfnsError> {
        serde_json::from_slice(&self.body).map_err(|error| DfnsError::UnexpectedResponse {
            method: method.clone(),
            path: path.to_owned(),
            status: self.status.as_u16(),
            reason: format!(
                "invalid JSON ({:?} error at line {} column {})",
                error.classify(),
                error.line(),
                error.column()
            ),
        })
    }
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
            .timeout(config.request_timeout);
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
        Ok(Self {
            http,
            base_url,
            timeout: config.request_timeout,
            limiter: RateLimiter::per_minute(config.requests_per_minute),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub async fn send(&self, request: ApiRequest<'_>) -> Result<ApiResponse, DfnsError> {
        self.limiter.acquire().await;
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
        let response = builder
            .send()
            .await
            .map_err(|error| self.failed(&method, request.path, &error, started))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(parse_retry_after);
        let body = response
            .bytes()
            .await
            .map_err(|error| self.failed(&method, request.path, &error, started))?
            .to_vec();
        observe(
            &method,
            request.path,
            Outcome::Status(status.as_u16()),
            started.elapsed(),
        );
        self.classify(method, request.path, status, retry_after, body)
    }

    fn classify(
        &self,
        method: Method,
        path: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Vec<u8>,
    ) -> Result<ApiResponse, DfnsError> {
        if status == StatusCode::ACCEPTED {
            let change_request_id = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|value| {
                    value
                        .get("id")
                        .and_then(|id| id.as_str())
                        .map(str::to_owned)
                });
            return Err(DfnsError::PendingApproval {
                method,
                path: path.to_owned(),
                change_request_id,
            });
        }
        if status.is_success() {
            return Ok(ApiResponse {
                status,
                body: Zeroizing::new(body),
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.limiter
                .pause_for(retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE));
        }
        Err(DfnsError::Api {
            method,
            path: path.to_owned(),
            status: status.as_u16(),
            message: error_message(status, &body),
            retry_after,
        })
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
            Outcome::Timeout
        } else {
            Outcome::TransportError
        };
        observe(method, path, outcome, started.elapsed());
        self.transport_error(method, path, error)
    }

    fn transport_error(&self, method: &Method, path: &str, error: &reqwest::Error) -> DfnsError {
        if error.is_timeout() {
            DfnsError::Timeout {
                method: method.clone(),
                path: path.to_owned(),
                timeout: self.timeout,
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

fn sensitive_header(value: &str) -> Result<HeaderValue, DfnsError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        DfnsError::Config("token contains characters not allowed in an HTTP header".into())
    })?;
    // Keeps the value out of hyper's and reqwest's Debug output and HTTP/2 header compression.
    header.set_sensitive(true);
    Ok(header)
}

/// The base URL without a trailing slash; `http://` only when explicitly allowed.
fn normalize_base_url(api_url: &str, allow_insecure_http: bool) -> Result<String, DfnsError> {
    let trimmed = api_url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|_| DfnsError::Config(format!("API URL `{trimmed}` is not a URL")))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => {
            return Err(DfnsError::Config(format!(
                "API URL `{trimmed}` is plain http; set allowInsecureHttp (local emulators only)"
            )));
        }
        scheme => {
            return Err(DfnsError::Config(format!(
                "API URL scheme `{scheme}` is not http(s)"
            )));
        }
    }
    if parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(DfnsError::Config(
            "API URL must not carry credentials, a query or a fragment".into(),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Dfns' message (`error.message`, else top-level `message`), scrubbed; the status reason if none.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Option<ErrorField>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ErrorField {
        Object { message: Option<String> },
        Text(String),
    }
    let parsed: Option<Body> = serde_json::from_slice(body).ok();
    let message = parsed.and_then(|body| match body.error {
        Some(ErrorField::Object {
            message: Some(message),
        })
        | Some(ErrorField::Text(message)) => Some(message),
        _ => body.message,
    });
    match message {
        Some(message) if !message.trim().is_empty() => scrub(message.trim()),
        _ => status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned(),
    }
}

/// Retry-After as delta-seconds or an HTTP date.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
    let delta = date.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_refuses_plain_http_unless_allowed() {
        assert_eq!(
            normalize_base_url("https://api.dfns.io/", false).unwrap(),
            "https://api.dfns.io"
        );
        assert!(normalize_base_url("http://127.0.0.1:8080", false).is_err());
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080", true).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(normalize_base_url("ftp://x", true).is_err());
        assert!(normalize_base_url("https://user:pw@api.dfns.io", false).is_err());
        assert!(normalize_base_url("not a url", false).is_err());
    }

    #[test]
    fn error_message_prefers_dfns_error_message_then_top_level_message() {
        let nested = br#"{"error":{"id":"e1","status":403,"message":"not authorized to perform operation (Auth:Pats:Create)"}}"#;
        assert_eq!(
            error_message(StatusCode::FORBIDDEN, nested),
            "not authorized to perform operation (Auth:Pats:Create)"
        );
        assert_eq!(
            error_message(
                StatusCode::UNAUTHORIZED,
                br#"{"message":"Not Authorized."}"#
            ),
            "Not Authorized."
        );
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, br#"{"error":"bad thing"}"#),
            "bad thing"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"<html>oops</html>"),
            "Bad Gateway"
        );
    }

    #[test]
    fn error_message_scrubs_echoed_tokens() {
        let body = br#"{"error":{"message":"token eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln is expired"}}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, body),
            "token [redacted] is expired"
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7")),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let header = HeaderValue::from_str(
            &jiff::fmt::rfc2822::to_string(&future.to_zoned(jiff::tz::TimeZone::UTC)).unwrap(),
        )
        .unwrap();
        let parsed = parse_retry_after(&header).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}
