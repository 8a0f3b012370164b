//! Leadership once won: renewed in the background, lost when renewing fails for the renew
//! deadline or another replica takes the Lease, handed back on release.
use std::sync::Arc;

use dfns_client::Gate;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::elector::{Attempt, LeaderElector};

/// Held leadership: renewed in the background until [`Leadership::release`] or until lost.
pub struct Leadership {
    elector: Arc<LeaderElector>,
    lost: watch::Receiver<bool>,
    stop_renewing: Option<tokio::sync::oneshot::Sender<()>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Leadership {
    pub(super) fn start(elector: Arc<LeaderElector>, fence: Gate) -> Self {
        let (lost_tx, lost) = watch::channel(false);
        let (stop_renewing, stop) = tokio::sync::oneshot::channel();
        let renewer = tokio::spawn(renew_until_lost(elector.clone(), lost_tx, stop, fence));
        Self {
            elector,
            lost,
            stop_renewing: Some(stop_renewing),
            renewer,
        }
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

    fn is_lost(&self) -> bool {
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

/// Renews every retry period. Each success moves `fence` on to the renew deadline counted from
/// when that attempt started (before the Lease was written, so before any standby can have seen
/// the renewal): a standby takes over no earlier than a lease duration after it saw it, and the
/// renew deadline is shorter than the lease duration.
async fn renew_until_lost(
    elector: Arc<LeaderElector>,
    lost: watch::Sender<bool>,
    stop: tokio::sync::oneshot::Receiver<()>,
    fence: Gate,
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
        let attempt_started = Instant::now();
        let attempt = tokio::time::timeout_at(deadline, elector.try_acquire_or_renew()).await;
        let reason = match attempt {
            Ok(Ok(Attempt::Held)) => {
                renewed_at = attempt_started;
                fence.open_until(attempt_started + config.renew_deadline);
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
        fence.close();
        let _ = lost.send(true);
        return;
    }
}
