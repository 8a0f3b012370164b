//! The controller layer's one error type. Its category names the metric label and decides the
//! condition a failure shows, and how soon to try again.

use std::time::Duration;

use super::conditions::Health;
use crate::api::ConditionReason;
use dfns_client::{DfnsError, ErrorCategory};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Dfns(#[from] DfnsError),
    /// The connection's configuration or Secret is unusable; the message says what to fix.
    #[error("{0}")]
    Connection(String),
    /// An object the operator needs is malformed (e.g. a Secret key that is not UTF-8).
    #[error("{0}")]
    Invalid(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// Short label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
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
            },
            Self::Connection(_) => "connection",
            Self::Invalid(_) => "invalid",
            Self::Finalizer(_) => "finalizer",
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
            ),
            Self::Connection(_) | Self::Invalid(_) => true,
            Self::Kube(kube::Error::Api(status)) => status.code == 403 || status.code == 422,
            Self::Kube(_) | Self::Finalizer(_) => false,
        }
    }

    /// The condition this failure shows.
    pub fn health(&self) -> Health {
        let message = self.to_string();
        let reason = match self {
            Self::Dfns(e) => match e.category() {
                ErrorCategory::Unauthorized => ConditionReason::Unauthorized,
                ErrorCategory::Forbidden => ConditionReason::Forbidden,
                ErrorCategory::RateLimited { .. } => ConditionReason::RateLimited,
                ErrorCategory::PendingApproval => ConditionReason::PendingApproval,
                ErrorCategory::InvalidRequest | ErrorCategory::Conflict => {
                    ConditionReason::InvalidSpec
                }
                ErrorCategory::Misconfigured => ConditionReason::ConnectionNotReady,
                _ => ConditionReason::DfnsUnavailable,
            },
            Self::Connection(_) => ConditionReason::ConnectionNotReady,
            Self::Invalid(_) => ConditionReason::InvalidSpec,
            Self::Kube(kube::Error::Api(status)) if status.code == 403 => {
                ConditionReason::Forbidden
            }
            Self::Kube(_) | Self::Finalizer(_) => ConditionReason::Progressing,
        };
        if self.needs_a_person() {
            Health::Stalled { reason, message }
        } else {
            Health::Progressing { reason, message }
        }
    }

    /// How long Dfns asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Dfns(e) => match e.category() {
                ErrorCategory::RateLimited { retry_after } => retry_after,
                _ => None,
            },
            _ => None,
        }
    }

    pub fn is_dfns_not_found(&self) -> bool {
        matches!(self, Self::Dfns(e) if e.category() == ErrorCategory::NotFound)
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
