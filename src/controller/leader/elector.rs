//! One candidate's attempts on the Lease: read it, and take or renew it when it is free or ours;
//! and handing it back.
use std::sync::Arc;
use std::time::Duration;

use dfns_client::Gate;
use futures::FutureExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::leadership::Leadership;
use super::lease::LeaseConfig;

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
pub(super) enum Attempt {
    /// This process holds the Lease (acquired or renewed).
    Held,
    /// Another live holder has it.
    HeldByOther(String),
    /// Someone wrote the Lease between our read and our write; try again.
    Conflict,
}

/// The Lease record as last seen, and when (on our clock) it last changed.
struct LastSeen {
    record: Option<LeaseSpec>,
    changed_at: Instant,
}

pub struct LeaderElector {
    api: Api<Lease>,
    pub(super) config: LeaseConfig,
    last_seen: Mutex<LastSeen>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self {
            api,
            config,
            last_seen: Mutex::new(LastSeen {
                record: None,
                changed_at: Instant::now(),
            }),
        }
    }

    /// Waits until this process leads, or `stop` resolves first (then `None`). API errors while
    /// standing by are logged and retried: a standby has nothing to protect. While leading,
    /// `fence` stays open only until the renew deadline after the last successful renewal.
    pub async fn acquire(self, stop: impl Future<Output = ()>, fence: Gate) -> Option<Leadership> {
        let stop = stop.fuse();
        futures::pin_mut!(stop);
        let mut last_holder: Option<String> = None;
        loop {
            let attempt_started = Instant::now();
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became the leader");
                    fence.open_until(attempt_started + self.config.renew_deadline);
                    return Some(Leadership::start(Arc::new(self), fence));
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

    pub(super) async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaderError> {
        let now = MicroTime(jiff::Timestamp::now());
        let Some(current) = self.read().await? else {
            return self.create(now).await;
        };
        let spec = current.spec.clone().unwrap_or_default();
        let changed_at = self.remember(&spec).await;
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
                self.remember(&next).await;
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
                self.remember(&spec).await;
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Records the Lease as seen now; returns when (on our clock) it last changed. A holder is
    /// alive as long as its record keeps changing, whatever its clock says.
    async fn remember(&self, spec: &LeaseSpec) -> Instant {
        let mut last_seen = self.last_seen.lock().await;
        if last_seen.record.as_ref() != Some(spec) {
            last_seen.record = Some(spec.clone());
            last_seen.changed_at = Instant::now();
        }
        last_seen.changed_at
    }

    /// Hands the Lease back (holder cleared, duration 1 s) if we still hold it, so a standby
    /// takes over at its next attempt instead of after a full lease duration.
    pub(super) async fn release(&self) -> Result<(), LeaderError> {
        let Some(current) = self.read().await? else {
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

    async fn read(&self) -> Result<Option<Lease>, LeaderError> {
        self.api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))
    }

    fn error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Kube {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }
}
