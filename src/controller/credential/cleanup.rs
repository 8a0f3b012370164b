//! Deleting a resource: perform the cleanup plan's steps (`deletionPolicy` in Dfns, then the
//! Secret), then release the finalizer.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::cleanup_plan::{CleanupStep, next_cleanup_step};
use super::create::Slot;
use super::facts::{Change, Effect};
use super::reconcile::{MAX_STEPS, Run, SKIP_CLEANUP_ANNOTATION};
use super::resource::CredentialResource;
use super::rules;
use crate::api::ConditionReason;
use crate::controller::conditions::Verdict;
use crate::controller::crash_point::{self, CrashPoint};
use crate::controller::error::{Error, ignore_not_found};
use crate::controller::secret_layout;

impl<K: CredentialResource> Run<'_, K> {
    pub(super) async fn cleanup(mut self) -> Result<Action, Error> {
        let skip = self
            .obj
            .annotations()
            .get(SKIP_CLEANUP_ANNOTATION)
            .is_some_and(|v| v == "true");
        if skip && !rules::skip_cleanup_honoured(&self.facts.view()) {
            let connection = self
                .facts
                .connection
                .as_ref()
                .map(|c| c.display.clone())
                .unwrap_or_default();
            self.event(
                EventType::Warning,
                "SkipCleanupIgnored",
                format!(
                    "{SKIP_CLEANUP_ANNOTATION} is ignored: {connection} does not honour it \
                     (spec.credentialLimits.honourSkipCleanup: false); the deletion policy is applied in Dfns"
                ),
            )
            .await;
        }
        let view = self.facts.view();
        let applied = rules::deletion_policy(&view);
        if applied != view.desired.deletion_policy {
            self.event(
                EventType::Warning,
                "DeletionPolicyReplaced",
                format!(
                    "deletionPolicy {:?} is not allowed by the connection \
                     (spec.credentialLimits.allowedDeletionPolicies); {applied:?} is applied instead",
                    view.desired.deletion_policy
                ),
            )
            .await;
        }
        for _ in 0..MAX_STEPS {
            let view = self.facts.view();
            let step = next_cleanup_step(&view, skip);
            if step == CleanupStep::RemoveFinalizer {
                let honoured = skip && rules::skip_cleanup_honoured(&view);
                if let Some(reason) = rules::left_active(&view, honoured) {
                    self.report_left_active(reason).await;
                }
                return Ok(Action::await_change());
            }
            if !self.ensure_fresh(&step).await? {
                continue;
            }
            if let CleanupStep::AwaitApproval { message } = &step {
                return self.await_approval(message.clone()).await;
            }
            let performed = match self.perform_cleanup(&step).await {
                Ok(effect) => self.take(effect).await,
                // A 202: Dfns holds the write for an approver; never send it again while pending.
                Err(Error::Dfns(ref e))
                    if let Some((change_request, approval)) = e.pending_approval() =>
                {
                    let held = self.held_for_approval(
                        cleanup_operation(&step, K::DFNS_KIND),
                        change_request.map(str::to_owned),
                        approval.map(str::to_owned),
                    );
                    self.take(held).await?;
                    return self.await_approval(String::new()).await;
                }
                Err(error) => {
                    self.forget_if_outcome_unknown(step.written_id(), &error)
                        .await;
                    Err(error)
                }
            };
            if let Err(error) = performed {
                if error.waiting().is_some() {
                    return Err(error);
                }
                let verdict = match &step {
                    CleanupStep::Blocked { message } => Verdict::NotReady {
                        reason: ConditionReason::CleanupBlocked,
                        message: message.clone(),
                    },
                    CleanupStep::Foreign { .. } => error.verdict(),
                    _ => error.verdict().during_cleanup(),
                };
                if let Err(save_error) = self.save(verdict).await {
                    tracing::warn!(error = %save_error, "could not record the cleanup failure in status");
                }
                return Err(error);
            }
        }
        // Ok would let the finalizer go: the deletion is not done, so look again soon.
        Err(Error::DeletionWaits {
            message: format!("deletion still in progress after {MAX_STEPS} steps"),
            retry_in: Duration::from_secs(5),
        })
    }

    /// A credential deliberately left active in Dfns by a deletion: valid, and tracked by nobody
    /// from now on, so it is told loudly (Warning Event, metric).
    async fn report_left_active(&self, reason: &'static str) {
        let (kind, id) = (
            K::DFNS_KIND,
            self.facts.status.recorded_id().unwrap_or_default(),
        );
        let why = if reason == "Retain" {
            "deletionPolicy Retain".to_owned()
        } else {
            SKIP_CLEANUP_ANNOTATION.to_owned()
        };
        self.ctx.metrics.left_active(&K::kind(&()), reason);
        self.event(
            EventType::Warning,
            "CredentialLeftActive",
            format!(
                "{kind} {id} is left active in Dfns ({why}) and no longer tracked by the operator; \
                 deactivate it in Dfns when it is no longer needed"
            ),
        )
        .await;
    }

    /// Reports the held write (a fresh message, or the recorded one) and looks again later.
    async fn await_approval(&mut self, message: String) -> Result<Action, Error> {
        let operation = self
            .facts
            .status
            .pending_approval
            .as_ref()
            .map(|p| p.operation.clone())
            .unwrap_or_default();
        let message = if message.is_empty() {
            format!(
                "deleting: Dfns holds \"{operation}\" for a policy approval; it is not sent again \
                 while the approval is pending (ids in status.pendingApproval)"
            )
        } else {
            message
        };
        self.save(Verdict::Progressing {
            reason: ConditionReason::PendingApproval,
            message: message.clone(),
        })
        .await?;
        // Ok would let the finalizer go: the deletion is not done.
        Err(Error::DeletionWaits {
            message,
            retry_in: self.ctx.config.approval_check_interval,
        })
    }

    async fn perform_cleanup(&self, step: &CleanupStep) -> Result<Effect, Error> {
        let kind = K::DFNS_KIND;
        match step {
            CleanupStep::AwaitApproval { .. } => Ok(Effect::changed(Vec::new())),
            CleanupStep::RecordApprovalOutcome { outcome, reason } => {
                Ok(self.record_approval_outcome(outcome.clone(), reason.clone()))
            }
            CleanupStep::ApprovalGranted => self.approval_granted().await,
            CleanupStep::ForgetApproval => Ok(self.forget_approval()),
            CleanupStep::Blocked { message } => Err(Error::Connection(message.clone())),
            CleanupStep::Foreign { message } => {
                self.event(EventType::Warning, "ForeignCredential", message.clone())
                    .await;
                Err(Error::ForeignCredential(message.clone()))
            }
            CleanupStep::RetirePrevious { id } => {
                ignore_not_found(self.handle()?.client.deactivate(kind, id).await)?;
                crash_point::reached(CrashPoint::RetirePreviousDeactivated);
                let mut status = self.facts.status.clone();
                status.retiring = None;
                Ok(Effect::changed(vec![Change::Status(status)]))
            }
            CleanupStep::RetireOrphan { id } => Ok(Effect::changed(vec![self.retire(id).await?])),
            CleanupStep::Deactivate { id } => {
                let updated = ignore_not_found(self.handle()?.client.deactivate(kind, id).await)?;
                crash_point::reached(CrashPoint::CleanupDfnsDone);
                Ok(Effect::changed(vec![Change::Recorded(updated)]).with_event(
                    EventType::Normal,
                    "Deactivated",
                    format!("deactivated {kind} {id} (deletionPolicy)"),
                ))
            }
            CleanupStep::Archive { id } => {
                ignore_not_found(self.handle()?.client.delete(kind, id).await)?;
                crash_point::reached(CrashPoint::CleanupDfnsDone);
                Ok(
                    Effect::changed(vec![Change::Archived(id.clone())]).with_event(
                        EventType::Normal,
                        "Archived",
                        format!("archived {kind} {id} (deletionPolicy)"),
                    ),
                )
            }
            CleanupStep::ReleaseSecret => {
                let released = secret_layout::released(self.owned_secret()?, &self.facts.uid);
                Ok(Effect::changed(
                    self.write_secret(Slot::Main, released).await?,
                ))
            }
            CleanupStep::DeleteSecret => {
                let secret = self.owned_secret()?;
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: secret.uid(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match self.secrets().delete(&secret.name_any(), &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Effect::changed(vec![Change::Secret(None)]))
            }
            CleanupStep::RemoveFinalizer => Ok(Effect::changed(Vec::new())),
        }
    }

    fn owned_secret(&self) -> Result<&k8s_openapi::api::core::v1::Secret, Error> {
        self.facts
            .owned_secret()
            .ok_or_else(|| Error::Conflict("the Secret changed owner during cleanup".into()))
    }
}

/// What a cleanup step asks Dfns to do, as `status.pendingApproval.operation` names it.
fn cleanup_operation(step: &CleanupStep, kind: dfns_client::IdentityKind) -> String {
    match step {
        CleanupStep::Deactivate { id } | CleanupStep::RetirePrevious { id } => {
            format!("deactivate {kind} {id}")
        }
        CleanupStep::Archive { id } => format!("archive {kind} {id}"),
        CleanupStep::RetireOrphan { id } => format!("retire {kind} {id}"),
        _ => "a deletion write".to_owned(),
    }
}
