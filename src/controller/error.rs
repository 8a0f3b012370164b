//! The controller layer's one error type. Its category names the metric label and decides the
//! condition a failure shows and how soon to try again: what only a person can fix stalls
//! (`Stalled`, retried at the resync interval); races, conflicts and outages are retried soon
//! with backoff (`Reconciling`).

use std::time::Duration;

use super::conditions::Verdict;
use super::fence;
use crate::api::ConditionReason;
use dfns_client::{DfnsError, ErrorCategory, KeyError};

/// When a reconcile stopped by shutdown or an expired leadership is looked at again: moot when
/// the process stops; after a renewal that came in late, the work resumes.
const NOT_LEADING_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Dfns(#[from] DfnsError),
    /// The connection's configuration or Secret is unusable; the message says what to fix.
    #[error("{0}")]
    Connection(String),
    /// The resource asks for something that cannot be done; the message says what to fix.
    #[error("{0}")]
    InvalidSpec(String),
    /// Someone changed what this reconcile was working on (a Secret deleted or edited
    /// mid-create): the next attempt sees the change and decides again.
    #[error("{0}")]
    Conflict(String),
    /// A write conditional on the resource's version was refused (409): the resource changed
    /// since this reconcile read it (a lagging watch cache, another writer). Nothing was
    /// written; the reconcile decides again on a fresh read.
    #[error("the resource changed since it was read; deciding again on a fresh read")]
    StaleResource,
    #[error("generating a key: {0}")]
    KeyGeneration(#[source] KeyError),
    /// The Secret's private key stopped parsing mid-create (edited by someone): the next
    /// attempt plans a fresh key.
    #[error("the Secret's private key: {0}")]
    SecretKey(#[source] KeyError),
    /// Dfns answered a create in a way the protocol does not allow.
    #[error("{0}")]
    UnexpectedDfnsAnswer(String),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Not a failure: the deletion waits for something outside the operator (a Dfns policy
    /// approval), looked at again after `retry_in`. An error only so that the finalizer stays.
    #[error("{message}")]
    DeletionWaits { message: String, retry_in: Duration },
    /// An id in status names a Dfns identity that cannot be proven this resource's.
    #[error("{0}")]
    ForeignCredential(String),
    /// Not a failure: the connection already runs as many reconciles as it may (its share of
    /// the workers), so this one gives its worker back and comes back after `retry_in`.
    #[error("{connection} already runs its share of reconciles; trying again in {}s", .retry_in.as_secs())]
    ConnectionBusy {
        connection: String,
        retry_in: Duration,
    },
    /// Not a failure: the cached copy is one this operator's own status write has replaced; the
    /// watch brings the current one in a moment (`own_writes.rs`), so this reconcile gives its
    /// worker back instead of reading the resource.
    #[error("the watch has not yet shown this operator's last status write; deciding again in {}ms", .retry_in.as_millis())]
    CacheBehind { retry_in: Duration },
    /// The connection's apiUrl names a host outside `--allowed-api-hosts`; nothing was sent.
    #[error(
        "apiUrl host {host} is not allowed by this operator (--allowed-api-hosts: {allowed}); \
         point apiUrl at an allowed host, or ask the operator's administrator to allow this one"
    )]
    ApiHostNotAllowed { host: String, allowed: String },
}

impl Error {
    /// Short label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(e) if fence::refused(e) => "not_leading",
            Self::Kube(_) => "kubernetes",
            Self::Dfns(e) => match e.category() {
                ErrorCategory::Unauthorized => "dfns_unauthorized",
                ErrorCategory::Forbidden => "dfns_forbidden",
                ErrorCategory::NotFound => "dfns_not_found",
                ErrorCategory::Conflict => "dfns_conflict",
                ErrorCategory::InvalidRequest => "dfns_invalid_request",
                ErrorCategory::RateLimited { .. } => "dfns_rate_limited",
                ErrorCategory::ServerError => "dfns_server_error",
                ErrorCategory::Transport => "dfns_transport",
                ErrorCategory::Timeout => "dfns_timeout",
                ErrorCategory::PendingApproval => "dfns_pending_approval",
                ErrorCategory::Misconfigured => "dfns_misconfigured",
                ErrorCategory::Throttled { .. } => "dfns_throttled",
                ErrorCategory::Halted => "not_leading",
                ErrorCategory::EndpointMisbehaved => "dfns_endpoint_misbehaved",
                ErrorCategory::KeyRotationRefused => "dfns_key_rotation_refused",
            },
            Self::Connection(_) => "connection",
            Self::InvalidSpec(_) => "invalid_spec",
            Self::Conflict(_) => "conflict",
            Self::StaleResource => "stale_resource",
            Self::KeyGeneration(_) => "key_generation",
            Self::SecretKey(_) => "secret_key",
            Self::UnexpectedDfnsAnswer(_) => "dfns_unexpected_answer",
            Self::Finalizer(_) => "finalizer",
            Self::DeletionWaits { .. } => "deletion_waits",
            Self::ForeignCredential(_) => "foreign_credential",
            Self::ConnectionBusy { .. } => "connection_busy",
            Self::CacheBehind { .. } => "cache_behind",
            Self::ApiHostNotAllowed { .. } => "api_host_not_allowed",
        }
    }

    /// Not a failure but a wait that gives the worker back (a rate limit, the connection's
    /// share of workers) or a stop (shutdown, leadership that may have expired): no status
    /// write, no Warning, no backoff growth; the resource comes back after the returned time.
    pub fn waiting(&self) -> Option<Duration> {
        match self {
            Self::ConnectionBusy { retry_in, .. } | Self::CacheBehind { retry_in } => {
                Some(*retry_in)
            }
            Self::Kube(e) if fence::refused(e) => Some(NOT_LEADING_RETRY),
            Self::Dfns(e) => match e.category() {
                ErrorCategory::Throttled { retry_in } => Some(retry_in),
                ErrorCategory::Halted => Some(NOT_LEADING_RETRY),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether only a person can resolve this (kstatus Stalled) rather than time.
    pub fn needs_a_person(&self) -> bool {
        match self {
            Self::Dfns(e) => matches!(
                e.category(),
                ErrorCategory::Unauthorized
                    | ErrorCategory::Forbidden
                    | ErrorCategory::InvalidRequest
                    | ErrorCategory::Conflict
                    | ErrorCategory::Misconfigured
                    | ErrorCategory::KeyRotationRefused
            ),
            Self::Connection(_)
            | Self::InvalidSpec(_)
            | Self::ForeignCredential(_)
            | Self::ApiHostNotAllowed { .. } => true,
            Self::Kube(kube::Error::Api(status)) => status.code == 403 || status.code == 422,
            Self::Kube(_)
            | Self::Conflict(_)
            | Self::StaleResource
            | Self::KeyGeneration(_)
            | Self::SecretKey(_)
            | Self::UnexpectedDfnsAnswer(_)
            | Self::Finalizer(_)
            | Self::DeletionWaits { .. }
            | Self::ConnectionBusy { .. }
            | Self::CacheBehind { .. } => false,
        }
    }

    /// The condition this failure shows.
    pub fn verdict(&self) -> Verdict {
        // Kubernetes' and the endpoint's texts end up here; no secret may reach a condition.
        let message = dfns_client::scrub(&self.to_string());
        let reason = match self {
            Self::Dfns(e) => match e.category() {
                ErrorCategory::Unauthorized => ConditionReason::Unauthorized,
                // A refused key rotation is a 403 too; the key rotation steps, which know
                // spec.rotation.onKeyRotationRefused, report it more precisely.
                ErrorCategory::Forbidden | ErrorCategory::KeyRotationRefused => {
                    ConditionReason::Forbidden
                }
                ErrorCategory::RateLimited { .. } => ConditionReason::RateLimited,
                ErrorCategory::PendingApproval => ConditionReason::PendingApproval,
                ErrorCategory::InvalidRequest | ErrorCategory::Conflict => {
                    ConditionReason::InvalidSpec
                }
                ErrorCategory::Misconfigured => ConditionReason::ConnectionNotReady,
                _ => ConditionReason::DfnsUnavailable,
            },
            Self::Connection(_) => ConditionReason::ConnectionNotReady,
            Self::InvalidSpec(_) => ConditionReason::InvalidSpec,
            Self::Kube(kube::Error::Api(status)) if status.code == 403 => {
                ConditionReason::Forbidden
            }
            Self::UnexpectedDfnsAnswer(_) => ConditionReason::DfnsUnavailable,
            Self::DeletionWaits { .. } => ConditionReason::PendingApproval,
            Self::ForeignCredential(_) => ConditionReason::ForeignCredential,
            Self::ConnectionBusy { .. } => ConditionReason::RateLimited,
            Self::ApiHostNotAllowed { .. } => ConditionReason::ApiHostNotAllowed,
            Self::Kube(_)
            | Self::Conflict(_)
            | Self::StaleResource
            | Self::CacheBehind { .. }
            | Self::KeyGeneration(_)
            | Self::SecretKey(_)
            | Self::Finalizer(_) => ConditionReason::Progressing,
        };
        if self.needs_a_person() {
            Verdict::Stalled { reason, message }
        } else {
            Verdict::Progressing { reason, message }
        }
    }

    /// A Dfns write that may or may not have happened: no answer, or a 5xx after it was sent.
    pub fn outcome_unknown(&self) -> bool {
        // A misbehaving endpoint answered after the write was sent: it may have acted on it.
        matches!(self, Self::Dfns(e) if matches!(
            e.category(),
            ErrorCategory::ServerError
                | ErrorCategory::Transport
                | ErrorCategory::Timeout
                | ErrorCategory::EndpointMisbehaved
        ))
    }

    /// How long Dfns asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Dfns(e) => match e.category() {
                ErrorCategory::RateLimited { retry_after } => retry_after,
                _ => None,
            },
            Self::DeletionWaits { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }
}

/// Dfns 404 on a call that removes something means it is already gone.
pub fn ignore_not_found<T>(result: Result<T, DfnsError>) -> Result<Option<T>, DfnsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.category() == ErrorCategory::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_race_with_another_writer_is_retried_soon_and_shows_reconciling() {
        let race = Error::Conflict("Secret app vanished or changed owner during create".into());
        assert!(!race.needs_a_person());
        assert!(matches!(race.verdict(), Verdict::Progressing { .. }));
        let edited_key = Error::SecretKey(KeyError::NotPem);
        assert!(!edited_key.needs_a_person());
        assert!(matches!(edited_key.verdict(), Verdict::Progressing { .. }));
    }

    #[test]
    fn waits_that_give_the_worker_back_are_not_failures_and_say_when_to_come_back() {
        let in_a_minute = Duration::from_secs(60);
        let throttled = Error::Dfns(DfnsError::Throttled {
            retry_in: in_a_minute,
        });
        assert_eq!(throttled.waiting(), Some(in_a_minute));
        assert_eq!(throttled.category(), "dfns_throttled");
        let busy = Error::ConnectionBusy {
            connection: "DfnsConnection ns/slow".into(),
            retry_in: Duration::from_secs(3),
        };
        assert_eq!(busy.waiting(), Some(Duration::from_secs(3)));
        let behind = Error::CacheBehind {
            retry_in: Duration::from_millis(500),
        };
        assert_eq!(behind.waiting(), Some(Duration::from_millis(500)));
        assert_eq!(behind.category(), "cache_behind");
        let halted = Error::Dfns(DfnsError::Halted);
        let fenced = Error::Kube(kube::Error::Service(Box::new(super::fence::Fenced)));
        for stop in [&halted, &fenced] {
            assert_eq!(stop.waiting(), Some(NOT_LEADING_RETRY));
            assert_eq!(stop.category(), "not_leading");
        }
        for wait in [&throttled, &busy, &behind, &halted, &fenced] {
            assert!(!wait.needs_a_person(), "{wait}");
        }
        // Real failures are not waits.
        assert_eq!(Error::Conflict("x".into()).waiting(), None);
        assert_eq!(
            Error::Kube(kube::Error::Service("connection reset".into())).waiting(),
            None
        );
    }

    #[test]
    fn a_misbehaving_endpoint_is_retried_with_backoff_and_a_write_to_it_has_an_unknown_outcome() {
        let too_large = Error::Dfns(DfnsError::ResponseTooLarge {
            method: reqwest::Method::POST,
            path: "/auth/service-accounts".into(),
            limit: 4 * 1024 * 1024,
            announced: None,
        });
        assert!(!too_large.needs_a_person());
        assert!(too_large.outcome_unknown());
        assert_eq!(too_large.category(), "dfns_endpoint_misbehaved");
        let Verdict::Progressing { reason, message } = too_large.verdict() else {
            panic!("not progressing");
        };
        assert_eq!(reason, ConditionReason::DfnsUnavailable);
        assert!(message.contains("body over 4 MiB; refused"), "{message}");
    }

    #[test]
    fn a_host_that_is_not_allowed_stalls_and_names_the_host_and_the_flag() {
        let error = Error::ApiHostNotAllowed {
            host: "evil.example:8443".into(),
            allowed: "api.dfns.io".into(),
        };
        let Verdict::Stalled { reason, message } = error.verdict() else {
            panic!("not stalled");
        };
        assert_eq!(reason, ConditionReason::ApiHostNotAllowed);
        assert!(
            message.contains("evil.example:8443") && message.contains("--allowed-api-hosts"),
            "{message}"
        );
    }

    #[test]
    fn condition_messages_are_scrubbed_of_secrets() {
        let error = Error::Connection(
            "Secret said token=eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".into(),
        );
        let Verdict::Stalled { message, .. } = error.verdict() else {
            panic!("not stalled");
        };
        assert_eq!(message, "Secret said token=[redacted]");
    }

    #[test]
    fn what_only_a_person_can_fix_stalls_with_its_reason() {
        let spec = Error::InvalidSpec("resource has no namespace".into());
        assert!(spec.needs_a_person());
        assert!(matches!(
            spec.verdict(),
            Verdict::Stalled {
                reason: ConditionReason::InvalidSpec,
                ..
            }
        ));
        let connection = Error::Connection("Secret dfns/admin not found".into());
        assert!(matches!(
            connection.verdict(),
            Verdict::Stalled {
                reason: ConditionReason::ConnectionNotReady,
                ..
            }
        ));
    }
}
