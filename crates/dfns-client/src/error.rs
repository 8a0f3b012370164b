//! The one error type of the Dfns client, and the categories callers branch on.
//!
//! Messages keep what Dfns said (it is what a user needs to fix the problem) but pass it through
//! [`scrub`] (`redact.rs`) first, and never include request or response bodies, headers or key material.
use std::time::Duration;

use reqwest::Method;

use super::keys::KeyError;

/// What kind of failure this is, for deciding what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCategory {
    /// 401: the token is missing, invalid, expired, or for another region.
    Unauthorized,
    /// 403: authenticated, but not allowed (missing permission, identity kind, or bad signature).
    Forbidden,
    /// 404.
    NotFound,
    /// 409: a duplicate or conflicting request.
    Conflict,
    /// 400 and other 4xx: the request itself is wrong; retrying it unchanged will not help.
    InvalidRequest,
    /// 429, with the server's Retry-After when it sent one.
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, or a response the client could not understand.
    ServerError,
    /// The request did not get an HTTP response (connection refused, TLS, reset, DNS).
    Transport,
    /// No response within the request timeout.
    Timeout,
    /// 202: a Dfns policy requires approval; the change is queued, not applied.
    PendingApproval,
    /// The local configuration is wrong (bad key, credential not allowed, bad URL); no request helps.
    Misconfigured,
    /// Nothing was sent: the connection's own rate limit has no token for longer than the caller
    /// may wait. Come back after `retry_in`.
    Throttled { retry_in: Duration },
    /// Nothing was sent: the process is shutting down.
    Halted,
    /// 403 from the credential endpoints to a service account or PAT managing its own Key
    /// credentials: Dfns does not let this identity rotate its key (its reference pages refuse
    /// these callers; its rotation guide allows them). Nothing was registered.
    KeyRotationRefused,
    /// The endpoint answered in a way Dfns never does (a body over the cap, a redirect). Not
    /// retried at once: asking a hostile or misconfigured endpoint again only costs more.
    EndpointMisbehaved,
}

impl ErrorCategory {
    /// Whether trying the same read again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::ServerError | Self::Transport | Self::Timeout
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DfnsError {
    #[error("Dfns {method} {path} failed with HTTP {status}: {message}")]
    Api {
        method: Method,
        path: String,
        status: u16,
        /// Dfns' own error message, scrubbed of anything token- or key-shaped.
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("Dfns {method} {path} is waiting for policy approval{}", change_request_suffix(.change_request_id))]
    PendingApproval {
        method: Method,
        path: String,
        change_request_id: Option<String>,
        /// The approval to follow with [`crate::DfnsClient::approval`].
        approval_id: Option<String>,
    },
    #[error("cannot reach Dfns for {method} {path}: {reason}")]
    Transport {
        method: Method,
        path: String,
        reason: String,
    },
    #[error(
        "Dfns {method} {path} did not answer in time (limits: {}s to connect, {}s of silence, {}s in all)",
        .limits.connect.as_secs_f32(),
        .limits.read.as_secs_f32(),
        .limits.total.as_secs_f32()
    )]
    Timeout {
        method: Method,
        path: String,
        limits: TimeoutLimits,
    },
    #[error("Dfns {method} {path} returned an unexpected response (HTTP {status}): {reason}")]
    UnexpectedResponse {
        method: Method,
        path: String,
        status: u16,
        reason: String,
    },
    #[error(
        "refusing to sign: credential id {cred_id} is not among the credentials Dfns allows for this user \
         (allowed: {}); check DFNS_CRED_ID",
        allowed_list(.allowed)
    )]
    CredentialNotAllowed {
        cred_id: String,
        allowed: Vec<String>,
    },
    /// See [`ErrorCategory::KeyRotationRefused`].
    #[error(
        "Dfns refused this identity a key rotation ({method} {path}: HTTP 403: {message}); \
         Dfns lets only some identities manage their own credentials"
    )]
    KeyRotationRefused {
        method: Method,
        path: String,
        /// Dfns' own error message, scrubbed like [`DfnsError::Api`]'s.
        message: String,
    },
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("invalid Dfns client configuration: {0}")]
    Config(String),
    #[error(
        "waiting for this connection's rate limit: the next request to Dfns is possible in {}s",
        .retry_in.as_secs_f32().ceil()
    )]
    Throttled { retry_in: Duration },
    #[error("shutting down: no more requests are sent to Dfns")]
    Halted,
    #[error(
        "Dfns {method} {path} answered with a body over {}{}; refused",
        byte_size(*.limit),
        announced_suffix(.announced)
    )]
    ResponseTooLarge {
        method: Method,
        path: String,
        /// The cap, in bytes.
        limit: usize,
        /// The Content-Length the endpoint announced, when it announced one over the cap.
        announced: Option<u64>,
    },
    /// Never followed: a redirect would carry the bearer token and user action elsewhere. The
    /// target is not named, since its query may carry anything.
    #[error(
        "Dfns {method} {path} answered with a redirect (HTTP {status}), which is never followed; \
         check the connection's apiUrl"
    )]
    Redirected {
        method: Method,
        path: String,
        status: u16,
    },
}

/// `4 MiB`, or bytes when not a whole number of MiB.
fn byte_size(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn announced_suffix(announced: &Option<u64>) -> String {
    announced
        .map(|length| format!(" (Content-Length {length})"))
        .unwrap_or_default()
}

/// The three timeouts of an exchange, for a message naming whichever may have fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutLimits {
    pub connect: Duration,
    /// Longest silence between two reads.
    pub read: Duration,
    /// The whole exchange, body included.
    pub total: Duration,
}

fn change_request_suffix(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" (change request {id})"))
        .unwrap_or_default()
}

fn allowed_list(allowed: &[String]) -> String {
    if allowed.is_empty() {
        "none".to_owned()
    } else {
        allowed.join(", ")
    }
}

impl DfnsError {
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Api {
                status,
                retry_after,
                ..
            } => match status {
                401 => ErrorCategory::Unauthorized,
                403 => ErrorCategory::Forbidden,
                404 => ErrorCategory::NotFound,
                409 => ErrorCategory::Conflict,
                429 => ErrorCategory::RateLimited {
                    retry_after: *retry_after,
                },
                500.. => ErrorCategory::ServerError,
                _ => ErrorCategory::InvalidRequest,
            },
            Self::PendingApproval { .. } => ErrorCategory::PendingApproval,
            Self::KeyRotationRefused { .. } => ErrorCategory::KeyRotationRefused,
            Self::Transport { .. } => ErrorCategory::Transport,
            Self::Timeout { .. } => ErrorCategory::Timeout,
            Self::UnexpectedResponse { .. } => ErrorCategory::ServerError,
            Self::CredentialNotAllowed { .. } | Self::Key(_) | Self::Config(_) => {
                ErrorCategory::Misconfigured
            }
            Self::Throttled { retry_in } => ErrorCategory::Throttled {
                retry_in: *retry_in,
            },
            Self::Halted => ErrorCategory::Halted,
            Self::ResponseTooLarge { .. } | Self::Redirected { .. } => {
                ErrorCategory::EndpointMisbehaved
            }
        }
    }

    /// For a write held for approval (202): the change request id (`cr-…`) and the approval id
    /// to follow it with.
    pub fn pending_approval(&self) -> Option<(Option<&str>, Option<&str>)> {
        match self {
            Self::PendingApproval {
                change_request_id,
                approval_id,
                ..
            } => Some((change_request_id.as_deref(), approval_id.as_deref())),
            _ => None,
        }
    }

    /// Dfns' error message, when it sent one.
    pub fn dfns_message(&self) -> Option<&str> {
        match self {
            Self::Api { message, .. } | Self::KeyRotationRefused { message, .. } => Some(message),
            _ => None,
        }
    }
}

pub use super::redact::scrub;

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> DfnsError {
        DfnsError::Api {
            method: Method::GET,
            path: "/auth/pats".into(),
            status,
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn http_statuses_map_to_categories() {
        assert_eq!(api(401).category(), ErrorCategory::Unauthorized);
        assert_eq!(api(403).category(), ErrorCategory::Forbidden);
        assert_eq!(api(404).category(), ErrorCategory::NotFound);
        assert_eq!(api(409).category(), ErrorCategory::Conflict);
        assert_eq!(api(400).category(), ErrorCategory::InvalidRequest);
        assert_eq!(api(402).category(), ErrorCategory::InvalidRequest);
        assert_eq!(
            api(429).category(),
            ErrorCategory::RateLimited { retry_after: None }
        );
        assert_eq!(api(500).category(), ErrorCategory::ServerError);
        assert_eq!(api(503).category(), ErrorCategory::ServerError);
    }

    #[test]
    fn only_transient_categories_are_retryable() {
        assert!(api(429).category().is_transient());
        assert!(api(502).category().is_transient());
        for status in [400, 401, 403, 404, 409] {
            assert!(!api(status).category().is_transient(), "{status}");
        }
        let pending = DfnsError::PendingApproval {
            method: Method::POST,
            path: "/p".into(),
            change_request_id: None,
            approval_id: None,
        };
        assert!(!pending.category().is_transient());
        let redirected = DfnsError::Redirected {
            method: Method::GET,
            path: "/p".into(),
            status: 307,
        };
        assert_eq!(redirected.category(), ErrorCategory::EndpointMisbehaved);
        assert!(!redirected.category().is_transient());
    }

    #[test]
    fn credential_not_allowed_names_the_credential_and_the_fix() {
        let error = DfnsError::CredentialNotAllowed {
            cred_id: "Y2kt-mine".into(),
            allowed: vec!["Y2kt-other".into()],
        };
        let text = error.to_string();
        assert!(
            text.contains("Y2kt-mine")
                && text.contains("Y2kt-other")
                && text.contains("DFNS_CRED_ID")
        );
        assert_eq!(error.category(), ErrorCategory::Misconfigured);
    }
}
