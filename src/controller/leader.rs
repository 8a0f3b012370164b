//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
//! reconciles (design §4: never double-create in Dfns).
//!
//! The algorithm is client-go's: a candidate takes the Lease when its holder has not renewed it
//! for `lease_duration`, measured on the candidate's own clock from when it last saw the record
//! change (so clock skew between nodes does not matter). Every write carries the resourceVersion
//! it read, so two candidates can never both win. The leader renews every `retry_period` and
//! gives up when it could not renew for `renew_deadline`, which is shorter than `lease_duration`:
//! it stops acting before anyone else may start. On shutdown it hands the Lease back at once.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

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
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "leader election: renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "leader election: retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.lease_duration.as_secs() == 0 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return Err("leader election: the lease duration must be at least one second".into());
        }
        Ok(())
    }
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

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election: Lease {namespace}/{name}: {source}")]
    Kube {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// This process holds the Lease (acquired or renewed).
    Held,
    /// Another live holder has it.
    HeldByOther(String),
    /// Someone wrote the Lease between our read and our write; try again.
    Conflict,
}

/// The Lease record as last seen, and when (on our clock) it last changed.
struct Observed {
    record: Option<LeaseSpec>,
    changed_at: Instant,
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Mutex<Observed>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self {
            api,
            config,
            observed: Mutex::new(Observed {
                record: None,
                changed_at: Instant::now(),
            }),
        }
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Waits until this process leads, or `stop` resolves first (then `None`). API errors while
    /// standing by are logged and retried: a standby has nothing to protect.
    pub async fn acquire(self, stop: impl Future<Output = ()>) -> Option<Leadership> {
        let stop = stop.fuse();
        futures::pin_mut!(stop);
        let mut last_holder: Option<String> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    return Some(Leadership::start(Arc::new(self)));
                }
                Ok(Attempt::HeldByOther(holder)) => {
                    if last_holder.as_deref() != Some(&holder) {
                        tracing::info!(lease = %self.config.name, %holder, "standing by; another replica leads");
                        last_holder = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => {}
                Err(error) => tracing::warn!(%error, "cannot acquire the leader Lease; retrying"),
            }
            tokio::select! {
                _ = &mut stop => return None,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaderError> {
        let now = MicroTime(jiff::Timestamp::now());
        let Some(current) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))?
        else {
            return self.create(now).await;
        };
        let spec = current.spec.clone().unwrap_or_default();
        let changed_at = self.observe(&spec).await;
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if let Some(holder) = holder.as_ref().filter(|_| !ours) {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            if changed_at + duration > Instant::now() {
                return Ok(Attempt::HeldByOther(holder.clone()));
            }
        }
        let mut next = spec.clone();
        if !ours {
            next.holder_identity = Some(self.config.identity.clone());
            next.acquire_time = Some(now.clone());
            next.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0) + if holder.is_some() { 1 } else { 0 });
        }
        next.lease_duration_seconds = Some(self.config.lease_duration.as_secs() as i32);
        next.renew_time = Some(now);
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        let lease = Lease {
            metadata: current.metadata.clone(),
            spec: Some(next.clone()),
        };
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observe(&next).await;
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn create(&self, now: MicroTime) -> Result<Attempt, LeaderError> {
        let spec = LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs() as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        };
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "dfns-operator".to_owned(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(spec.clone()),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => {
                self.observe(&spec).await;
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records the Lease as seen now; returns when (on our clock) it last changed. A holder is
    /// alive as long as its record keeps changing, whatever its clock says.
    async fn observe(&self, spec: &LeaseSpec) -> Instant {
        let mut observed = self.observed.lock().await;
        if observed.record.as_ref() != Some(spec) {
            observed.record = Some(spec.clone());
            observed.changed_at = Instant::now();
        }
        observed.changed_at
    }

    /// Hands the Lease back (holder cleared, duration 1 s) if we still hold it, so a standby
    /// takes over at its next attempt instead of after a full lease duration.
    async fn release(&self) -> Result<(), LeaderError> {
        let Some(current) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(());
        };
        let mut spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(jiff::Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        let lease = Lease {
            metadata: current.metadata,
            spec: Some(spec),
        };
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else wrote it meanwhile: it is no longer ours to release.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    fn error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Kube {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }
}

/// Held leadership: renewed in the background until [`Leadership::release`] or until lost.
pub struct Leadership {
    elector: Arc<LeaderElector>,
    lost: watch::Receiver<bool>,
    stop_renewing: Option<tokio::sync::oneshot::Sender<()>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Leadership {
    fn start(elector: Arc<LeaderElector>) -> Self {
        let (lost_tx, lost) = watch::channel(false);
        let (stop_renewing, stop) = tokio::sync::oneshot::channel();
        let renewer = tokio::spawn(renew_until_lost(elector.clone(), lost_tx, stop));
        Self {
            elector,
            lost,
            stop_renewing: Some(stop_renewing),
            renewer,
        }
    }

    pub fn identity(&self) -> &str {
        self.elector.identity()
    }

    /// Resolves once leadership is lost: renewing failed for the renew deadline, or another
    /// replica took the Lease. The caller must stop reconciling at once.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            // An error means the renewer is gone, which only happens once it stopped renewing.
            let _ = lost.wait_for(|lost| *lost).await;
        }
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Stops renewing and hands the Lease back. Call after reconciling has stopped.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop_renewing.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.renewer).await;
        if self.is_lost() {
            return;
        }
        match self.elector.release().await {
            Ok(()) => {
                tracing::info!(lease = %self.elector.config.name, "released the leader Lease")
            }
            Err(error) => {
                tracing::warn!(%error, "could not release the leader Lease; a standby takes over when it expires")
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn renew_until_lost(
    elector: Arc<LeaderElector>,
    lost: watch::Sender<bool>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let config = elector.config.clone();
    let mut stop = stop.fuse();
    let mut renewed_at = Instant::now();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(config.retry_period) => {}
        }
        let deadline = renewed_at + config.renew_deadline;
        let attempt = tokio::time::timeout_at(deadline, elector.try_acquire_or_renew()).await;
        let reason = match attempt {
            Ok(Ok(Attempt::Held)) => {
                renewed_at = Instant::now();
                continue;
            }
            Ok(Ok(Attempt::HeldByOther(holder))) => format!("replica {holder} took the Lease"),
            Ok(Ok(Attempt::Conflict)) if Instant::now() < deadline => continue,
            Ok(Err(error)) if Instant::now() < deadline => {
                tracing::warn!(%error, "cannot renew the leader Lease; retrying");
                continue;
            }
            Ok(Ok(Attempt::Conflict)) | Ok(Err(_)) | Err(_) => {
                format!("could not renew the Lease for {:?}", config.renew_deadline)
            }
        };
        tracing::error!(lease = %config.name, %reason, "lost leadership");
        let _ = lost.send(true);
        return;
    }
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
        assert!(config.validate().unwrap_err().contains("renew deadline"));
        let mut config = LeaseConfig::new("ns", "lease", "me");
        config.retry_period = config.renew_deadline;
        assert!(config.validate().unwrap_err().contains("retry period"));
    }

    #[test]
    fn identities_are_unique_per_process_start() {
        assert_ne!(default_identity(), default_identity());
    }
}
