//! What a Lease election is configured with, and who this process is in it.
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process: the pod name plus a random suffix.
    pub identity: String,
    /// How long a candidate waits after the holder's last renewal before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops reconciling.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The leader must give up before a candidate may take over, and must try more than once.
    pub fn validate(&self) -> Result<(), LeaseConfigError> {
        if self.renew_deadline >= self.lease_duration {
            return Err(LeaseConfigError::RenewDeadlineNotShorterThanLease {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(LeaseConfigError::RetryPeriodNotShorterThanRenewDeadline {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.lease_duration.as_secs() == 0 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return Err(LeaseConfigError::LeaseDurationOutOfRange);
        }
        Ok(())
    }
}

/// Why a [`LeaseConfig`] cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeaseConfigError {
    #[error(
        "leader election: renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease_duration:?})"
    )]
    RenewDeadlineNotShorterThanLease {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "leader election: retry period ({retry_period:?}) must be shorter than the renew deadline ({renew_deadline:?})"
    )]
    RetryPeriodNotShorterThanRenewDeadline {
        retry_period: Duration,
        renew_deadline: Duration,
    },
    #[error("leader election: the lease duration must be at least one second")]
    LeaseDurationOutOfRange,
}

/// A unique identity for this process: `<pod or host name>_<random>`, as client-go does, so a
/// restarted pod with the same name is a new candidate rather than the old holder.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "dfns-operator".into());
    format!("{host}_{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_client_go_and_are_consistent() {
        let config = LeaseConfig::new("dfns-system", "dfns-operator", "pod-a_1");
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn a_renew_deadline_not_shorter_than_the_lease_is_refused() {
        let mut config = LeaseConfig::new("ns", "lease", "me");
        config.renew_deadline = config.lease_duration;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("renew deadline")
        );
        let mut config = LeaseConfig::new("ns", "lease", "me");
        config.retry_period = config.renew_deadline;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("retry period")
        );
    }

    #[test]
    fn identities_are_unique_per_process_start() {
        assert_ne!(default_identity(), default_identity());
    }
}
