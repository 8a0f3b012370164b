//! kstatus conditions: `Ready`, `Reconciling`, `Stalled`, each carrying `observedGeneration`;
//! `lastTransitionTime` changes only when a condition's status really changes, so a reconcile
//! that finds nothing new produces an identical status and therefore no write.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ConditionReason, ConditionType};

/// What a reconcile concluded about a resource, mapped onto the three kstatus conditions.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Desired state reached.
    Ready {
        reason: ConditionReason,
        message: String,
    },
    /// Work under way (creating, waiting for the connection, retrying after an error).
    Progressing {
        reason: ConditionReason,
        message: String,
    },
    /// Not ready, and no progress is possible without a person (kstatus: Failed).
    Stalled {
        reason: ConditionReason,
        message: String,
    },
    /// Not ready and not expected to change on its own, but not an error of the spec either,
    /// e.g. deactivated in Dfns by someone else.
    NotReady {
        reason: ConditionReason,
        message: String,
    },
    /// Nothing new could be learned (the connection is unavailable, while the credential in the
    /// Secret keeps working): keep the conditions as they are, so health does not flap with a
    /// Dfns outage.
    Unchanged,
}

impl Verdict {
    /// The same verdict with `suffix` appended to its message.
    pub fn with_message_suffix(self, suffix: &str) -> Self {
        self.map_message(|message| message + suffix)
    }

    /// The same verdict with its message rewritten by `f`.
    fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::Ready { reason, message } => Self::Ready {
                reason,
                message: f(message),
            },
            Self::Progressing { reason, message } => Self::Progressing {
                reason,
                message: f(message),
            },
            Self::Stalled { reason, message } => Self::Stalled {
                reason,
                message: f(message),
            },
            Self::NotReady { reason, message } => Self::NotReady {
                reason,
                message: f(message),
            },
            Self::Unchanged => Self::Unchanged,
        }
    }

    /// The verdict of a failure while the resource is being deleted: same condition and reason,
    /// but the message says that the deletion waits for it, so a person reading a bare Dfns
    /// refusal knows the resource is held back and how to let it go.
    pub fn during_cleanup(self) -> Self {
        let explain = |message: String| {
            format!(
                "cannot clean up in Dfns, deletion waits: {message}. Fix the connection, or annotate this \
                 resource with dfns.io/skip-cleanup=\"true\" to release it without touching Dfns"
            )
        };
        match self {
            Self::Progressing { .. } | Self::Stalled { .. } => self.map_message(explain),
            other => other,
        }
    }
}

/// The conditions that `verdict` implies, keeping transition times of unchanged statuses.
pub fn conditions_for(
    verdict: &Verdict,
    generation: i64,
    previous: &[Condition],
    now: Time,
) -> Vec<Condition> {
    let (ready, reconciling, stalled, reason, message) = match verdict {
        Verdict::Ready { reason, message } => ("True", "False", "False", reason, message),
        Verdict::Progressing { reason, message } => ("False", "True", "False", reason, message),
        Verdict::Stalled { reason, message } => ("False", "False", "True", reason, message),
        Verdict::NotReady { reason, message } => ("False", "False", "False", reason, message),
        Verdict::Unchanged => return previous.to_vec(),
    };
    let make = |kind: ConditionType, status: &str| {
        // A False abnormal condition carries the overall reason and no message.
        let message = if status == "True" || kind == ConditionType::Ready {
            message.clone()
        } else {
            String::new()
        };
        let reason = reason.as_str().to_string();
        let last_transition_time = previous
            .iter()
            .find(|c| c.type_ == kind.as_str() && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: kind.as_str().to_string(),
            status: status.to_string(),
            reason,
            message,
            observed_generation: Some(generation),
            last_transition_time,
        }
    };
    vec![
        make(ConditionType::Ready, ready),
        make(ConditionType::Reconciling, reconciling),
        make(ConditionType::Stalled, stalled),
    ]
}

/// The condition of this type, if present.
pub fn find(conditions: &[Condition], kind: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_during_cleanup_keeps_its_reason_and_says_the_deletion_waits() {
        let failed = Verdict::Stalled {
            reason: ConditionReason::Forbidden,
            message: "HTTP 403: not authorized".into(),
        };
        let Verdict::Stalled { reason, message } = failed.during_cleanup() else {
            panic!("still stalled");
        };
        assert_eq!(reason, ConditionReason::Forbidden);
        assert!(
            message.contains("deletion waits: HTTP 403: not authorized"),
            "{message}"
        );
        assert!(message.contains("dfns.io/skip-cleanup"), "{message}");
        // A verdict that already explains the cleanup (CleanupBlocked) is left alone.
        let blocked = Verdict::NotReady {
            reason: ConditionReason::CleanupBlocked,
            message: "cannot clean up".into(),
        };
        assert!(
            matches!(blocked.during_cleanup(), Verdict::NotReady { message, .. } if message == "cannot clean up")
        );
    }

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn ready_sets_ready_true_and_clears_the_abnormal_conditions() {
        let c = conditions_for(
            &Verdict::Ready {
                reason: ConditionReason::Ready,
                message: "ok".into(),
            },
            3,
            &[],
            t(10),
        );
        let ready = find(&c, ConditionType::Ready).unwrap();
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.observed_generation
            ),
            ("True", "Ready", Some(3))
        );
        assert_eq!(find(&c, ConditionType::Stalled).unwrap().status, "False");
        assert_eq!(
            find(&c, ConditionType::Reconciling).unwrap().status,
            "False"
        );
    }

    #[test]
    fn transition_time_changes_only_when_the_status_changes() {
        let ready = Verdict::Ready {
            reason: ConditionReason::Ready,
            message: "ok".into(),
        };
        let first = conditions_for(&ready, 1, &[], t(10));
        let again = conditions_for(&ready, 2, &first, t(20));
        assert_eq!(
            find(&again, ConditionType::Ready)
                .unwrap()
                .last_transition_time,
            t(10)
        );
        let stalled = Verdict::Stalled {
            reason: ConditionReason::SecretConflict,
            message: "x".into(),
        };
        let after = conditions_for(&stalled, 2, &again, t(30));
        assert_eq!(
            find(&after, ConditionType::Ready)
                .unwrap()
                .last_transition_time,
            t(30)
        );
        assert_eq!(
            find(&after, ConditionType::Stalled).unwrap().reason,
            "SecretConflict"
        );
    }

    #[test]
    fn an_unchanged_health_yields_identical_conditions() {
        let h = Verdict::Progressing {
            reason: ConditionReason::Creating,
            message: "m".into(),
        };
        let first = conditions_for(&h, 1, &[], t(10));
        assert_eq!(conditions_for(&h, 1, &first, t(99)), first);
    }
}
