//! Performing the plan's steps after creation: each step is one small function that does its
//! I/O and returns what it changed ([`Effect`]); none edits the facts itself.

use std::sync::Arc;

use kube::runtime::events::EventType;

use super::create::Slot;
use super::facts::{Change, Effect, Then};
use super::plan::Step;
use super::reconcile::Run;
use super::resource::{CredentialResource, clear_ids};
use super::rules;
use crate::api::{ConditionReason, DeletionPolicy, PendingApproval, RetiringCredential};
use crate::controller::conditions::Verdict;
use crate::controller::crash_point::{self, CrashPoint};
use crate::controller::dfns_clients::ConnectionHandle;
use crate::controller::error::{Error, ignore_not_found};
use crate::controller::seal::Sealed;
use dfns_client::Identity;
use dfns_client::types::PermissionAssignmentRef;

impl<K: CredentialResource> Run<'_, K> {
    /// Performs one step of the plan.
    pub(super) async fn perform(&self, step: Step) -> Result<Effect, Error> {
        match step {
            Step::Wait { reason, message } => Ok(self.wait(reason, message)),
            Step::Stall { reason, message } => Ok(stall(reason, message)),
            Step::UpToDate => Ok(Effect::then(Then::Finish(self.steady_verdict()))),
            Step::AwaitApproval { message } => {
                Ok(Effect::then(Then::Finish(Verdict::Progressing {
                    reason: ConditionReason::PendingApproval,
                    message,
                })))
            }
            Step::RecordApprovalOutcome { outcome, reason } => {
                Ok(self.record_approval_outcome(outcome, reason))
            }
            Step::ApprovalGranted => self.approval_granted().await,
            Step::ForgetApproval => Ok(self.forget_approval()),
            Step::GenerateKey => self.generate_key(Slot::Main).await,
            Step::MarkPendingCreate { key_fingerprint } => {
                Ok(self.mark_pending_create(Slot::Main, key_fingerprint))
            }
            Step::Create => self.create(Slot::Main).await,
            Step::Renewal(step) => self.perform_renewal(step).await,
            Step::KeyRotation(step) => self.perform_key_rotation(step).await,
            Step::RecordRenewalTime(at) => {
                let mut status = self.facts.status.clone();
                status.renewal_time = at.map(Into::into);
                Ok(Effect::changed(vec![Change::Status(status)]))
            }
            Step::Adopt(object) => self.adopt(&object.id).await,
            Step::RetireOrphan(object) => self.retire_orphan(&object.id).await,
            Step::LoseCredential { message, retire } => Ok(self.lose_credential(message, retire)),
            Step::SealRecorded => Ok(self.seal_recorded()),
            Step::RetirePrevious { id } => self.retire_previous(&id).await,
            Step::Activate => self.set_active(true).await,
            Step::Deactivate => self.set_active(false).await,
            Step::ReportDeactivatedInDfns => Ok(self.report_deactivated_in_dfns()),
            Step::AcknowledgeDeactivation => {
                let mut status = self.facts.status.clone();
                status.deactivated_in_dfns_at = None;
                Ok(Effect::changed(vec![Change::Status(status)]))
            }
            Step::Rename { name } => self.rename(name).await,
            Step::RecordConnection => Ok(self.record_connection()),
            Step::DeactivateNotAllowed { message } => self.deactivate_not_allowed(message).await,
            Step::AssignPermission { permission_id } => self.assign(permission_id).await,
            Step::RevokeAssignment {
                permission_id,
                assignment_id,
            } => self.revoke(permission_id, assignment_id).await,
            Step::RecordAssignment {
                permission_id,
                assignment_id,
            } => {
                let mut status = self.facts.status.clone();
                status.assigned_permission_id = permission_id;
                status.permission_assignment_id = assignment_id;
                Ok(Effect::changed(vec![Change::Status(status)]))
            }
        }
    }

    pub(super) fn handle(&self) -> Result<Arc<ConnectionHandle>, Error> {
        self.handle
            .clone()
            .ok_or_else(|| Error::Connection("the connection is not usable".into()))
    }

    fn recorded_id(&self) -> String {
        self.facts
            .status
            .recorded_id()
            .unwrap_or_default()
            .to_string()
    }

    /// A Ready credential keeps its conditions while its connection is unavailable, so GitOps
    /// health does not flap with a Dfns outage.
    fn wait(&self, reason: ConditionReason, message: String) -> Effect {
        if self.facts.status.recorded_id().is_some() && self.was_ready() {
            tracing::info!(%message, "connection unavailable; keeping the last known state");
            return Effect::then(Then::Finish(Verdict::Unchanged));
        }
        Effect::then(Then::Finish(Verdict::Progressing { reason, message }))
    }

    fn steady_verdict(&self) -> Verdict {
        let facts = &self.facts;
        let id = facts.status.recorded_id().unwrap_or_default();
        let kind = K::DFNS_KIND;
        let active = facts.recorded().is_some_and(|identity| identity.is_active);
        match (facts.desired.active, active) {
            // The resource keeps working; the refusal shows until the spec changes.
            (true, true) if super::key_rotation::refused_now(&facts.view()) => Verdict::Ready {
                reason: ConditionReason::KeyRotationRefused,
                message: format!(
                    "{kind} {id} is active and Secret {} holds its token and key, but Dfns \
                     refused it a key rotation (see the KeyRotationRefused Event): set \
                     spec.rotation.onKeyRotationRefused to Renew, or remove \
                     spec.rotation.keyRotationInterval",
                    facts.desired.secret_name
                ),
            },
            (true, true) => Verdict::Ready {
                reason: ConditionReason::Ready,
                message: format!(
                    "{kind} {id} is active; Secret {} holds its token and key",
                    facts.desired.secret_name
                ),
            },
            (false, false) => Verdict::Ready {
                reason: ConditionReason::Inactive,
                message: format!("{kind} {id} is deactivated, as spec.active is false"),
            },
            _ => Verdict::NotReady {
                reason: ConditionReason::DeactivatedInDfns,
                message: format!(
                    "{kind} {id} was deactivated in Dfns by someone else; set spec.active to false, then back to true, \
                     to activate it again"
                ),
            },
        }
    }

    /// Deactivate, then archive; both tolerate an identity that is already gone.
    pub(super) async fn retire(&self, id: &str) -> Result<Change, Error> {
        let client = &self.handle()?.client;
        ignore_not_found(client.deactivate(K::DFNS_KIND, id).await)?;
        crash_point::reached(CrashPoint::RetireOrphanDeactivated);
        ignore_not_found(client.delete(K::DFNS_KIND, id).await)?;
        Ok(Change::Archived(id.to_string()))
    }

    async fn retire_orphan(&self, id: &str) -> Result<Effect, Error> {
        let archived = self.retire(id).await?;
        Ok(Effect::changed(vec![archived]).with_event(
            EventType::Normal,
            "OrphanRetired",
            format!(
                "deactivated and archived {} {id} whose token was lost during an interrupted create",
                K::DFNS_KIND
            ),
        ))
    }

    /// The recorded identity is gone or unusable: remember it for retirement (sealed, so it stays
    /// provable without its key), then mint anew.
    fn lose_credential(&self, message: String, retire: bool) -> Effect {
        let mut status = self.facts.status.clone();
        if retire {
            let id = self.recorded_id();
            status.retiring = Some(Box::new(RetiringCredential {
                seal: Some(self.facts.seal(Sealed::Retiring, &id)),
                id,
                public_key_sha256: status.public_key_sha256.clone(),
                retire_at: None,
            }));
        }
        clear_ids(&mut status);
        status.pending_create = None;
        let note = format!("{message}; minting a new credential");
        Effect::saved(
            vec![Change::Status(status), Change::Unknown],
            Verdict::Progressing {
                reason: ConditionReason::CredentialLost,
                message,
            },
        )
        .with_event(EventType::Warning, "CredentialLost", note)
    }

    /// The recorded id, proven by the key in the Secret, gets this operator's seal.
    fn seal_recorded(&self) -> Effect {
        let mut status = self.facts.status.clone();
        status.seal = Some(self.facts.seal(Sealed::Recorded, &self.recorded_id()));
        Effect::changed(vec![Change::Status(status)])
    }

    /// Retires the credential that was replaced. A lost one is deactivated; a renewal's previous
    /// one, once its grace period is over, per `deletionPolicy` as the connection allows it.
    async fn retire_previous(&self, id: &str) -> Result<Effect, Error> {
        let kind = K::DFNS_KIND;
        let renewed = self
            .facts
            .status
            .retiring
            .as_ref()
            .is_some_and(|r| r.retire_at.is_some());
        let policy = if renewed {
            rules::deletion_policy(&self.facts.view())
        } else {
            DeletionPolicy::Deactivate
        };
        let client = &self.handle()?.client;
        let note = match policy {
            DeletionPolicy::Retain => {
                self.ctx.metrics.left_active(&K::kind(&()), "Retain");
                format!(
                    "{kind} {id}, replaced by a renewal, is left active in Dfns (deletionPolicy Retain) \
                     until its token expires; deactivate it in Dfns when no workload needs it"
                )
            }
            DeletionPolicy::Deactivate | DeletionPolicy::Archive => {
                ignore_not_found(client.deactivate(kind, id).await)?;
                crash_point::reached(CrashPoint::RetirePreviousDeactivated);
                if policy == DeletionPolicy::Archive {
                    ignore_not_found(client.delete(kind, id).await)?;
                    format!("deactivated and archived {kind} {id}, which was replaced")
                } else {
                    format!("deactivated {kind} {id}, which was replaced")
                }
            }
        };
        let mut status = self.facts.status.clone();
        status.retiring = None;
        let (type_, reason) = if policy == DeletionPolicy::Retain {
            (EventType::Warning, "CredentialLeftActive")
        } else {
            (EventType::Normal, "Deactivated")
        };
        // A renewal's previous credential retires beside a working one: its conditions stand.
        let verdict = if renewed {
            Verdict::Unchanged
        } else {
            creating()
        };
        Ok(Effect::saved(vec![Change::Status(status)], verdict).with_event(type_, reason, note))
    }

    async fn set_active(&self, active: bool) -> Result<Effect, Error> {
        let (kind, id) = (K::DFNS_KIND, self.recorded_id());
        let client = &self.handle()?.client;
        let updated = if active {
            client.activate(kind, &id).await?
        } else {
            client.deactivate(kind, &id).await?
        };
        let mut status = self.facts.status.clone();
        status.active = Some(active);
        status.deactivated_in_dfns_at = None;
        let (reason, note) = if active {
            ("Activated", format!("activated {kind} {id}"))
        } else {
            (
                "Deactivated",
                format!("deactivated {kind} {id} (spec.active is false)"),
            )
        };
        Ok(Effect::changed(vec![
            Change::Status(status),
            Change::Recorded(Some(updated)),
        ])
        .with_event(EventType::Normal, reason, note))
    }

    /// The endpoint and organization the held ids belong to, from the connection as it is now
    /// (docs/architecture.md, "Connection rules": a resource from before they were recorded
    /// cannot know better).
    fn record_connection(&self) -> Effect {
        let mut status = self.facts.status.clone();
        if let Some(connection) = &self.facts.connection {
            status
                .api_url
                .get_or_insert_with(|| connection.api_url.clone());
            if status.org_id.is_none() {
                status.org_id = connection.org_id.clone();
            }
        }
        Effect::changed(vec![Change::Status(status)])
    }

    /// The connection's rules no longer allow the credential: deactivate it (reversible: it is
    /// activated again once they do), report it loudly, and stall until then.
    async fn deactivate_not_allowed(&self, message: String) -> Result<Effect, Error> {
        let (kind, id) = (K::DFNS_KIND, self.recorded_id());
        let updated = self.handle()?.client.deactivate(kind, &id).await?;
        let reason = ConditionReason::CredentialNoLongerAllowed;
        self.ctx
            .metrics
            .deactivated_by_rule(&K::kind(&()), reason.as_str());
        let mut status = self.facts.status.clone();
        // Ours, so that the rules allowing it again activate it again.
        status.active = Some(false);
        status.deactivated_in_dfns_at = None;
        Ok(Effect {
            changes: vec![Change::Status(status), Change::Recorded(Some(updated))],
            ..Effect::then(Then::Finish(Verdict::Stalled {
                reason,
                message: message.clone(),
            }))
        }
        .with_event(EventType::Warning, reason.as_str(), message))
    }

    /// Someone deactivated the credential in Dfns: report it, never undo it.
    fn report_deactivated_in_dfns(&self) -> Effect {
        let (kind, id) = (K::DFNS_KIND, self.recorded_id());
        let mut status = self.facts.status.clone();
        status.active = Some(false);
        status.deactivated_in_dfns_at = Some(jiff::Timestamp::now().into());
        let message = format!(
            "{kind} {id} was deactivated in Dfns by someone else; it stays deactivated until the spec \
             changes (set spec.active to false, then back to true, to activate it again)"
        );
        Effect {
            changes: vec![Change::Status(status)],
            ..Effect::then(Then::Finish(Verdict::NotReady {
                reason: ConditionReason::DeactivatedInDfns,
                message: message.clone(),
            }))
        }
        .with_event(EventType::Warning, "DeactivatedInDfns", message)
    }

    async fn rename(&self, name: String) -> Result<Effect, Error> {
        let (kind, id) = (K::DFNS_KIND, self.recorded_id());
        let updated = self
            .handle()?
            .client
            .update(kind, &id, Some(name.clone()), None)
            .await?;
        Ok(
            Effect::changed(vec![Change::Recorded(Some(updated))]).with_event(
                EventType::Normal,
                "Updated",
                format!("renamed {kind} {id} to {name}"),
            ),
        )
    }

    async fn assign(&self, permission_id: String) -> Result<Effect, Error> {
        let (kind, id) = (K::DFNS_KIND, self.recorded_id());
        let assignment = self
            .handle()?
            .client
            .assign_permission(&permission_id, &id)
            .await?;
        let note = format!("assigned {permission_id} to {kind} {id}");
        let changes = self.recorded_with(|identity| {
            identity
                .permission_assignments
                .push(PermissionAssignmentRef {
                    permission_id,
                    permission_name: None,
                    assignment_id: assignment.id,
                    operations: vec![],
                })
        });
        Ok(Effect::changed(changes).with_event(EventType::Normal, "PermissionAssigned", note))
    }

    async fn revoke(&self, permission_id: String, assignment_id: String) -> Result<Effect, Error> {
        let (kind, id) = (K::DFNS_KIND, self.recorded_id());
        ignore_not_found(
            self.handle()?
                .client
                .revoke_permission(&permission_id, &assignment_id)
                .await,
        )?;
        let changes = self.recorded_with(|identity| {
            identity
                .permission_assignments
                .retain(|a| a.assignment_id != assignment_id)
        });
        Ok(Effect::changed(changes).with_event(
            EventType::Normal,
            "PermissionRevoked",
            format!("revoked {permission_id} from {kind} {id}"),
        ))
    }

    /// Dfns answered 202: the write waits for an approver. Recorded (and saved with the reconcile's
    /// status) so that it is never sent again while pending.
    pub(super) fn held_for_approval(
        &self,
        operation: String,
        change_request_id: Option<String>,
        approval_id: Option<String>,
    ) -> Effect {
        let mut status = self.facts.status.clone();
        status.pending_approval = Some(Box::new(PendingApproval {
            operation: operation.clone(),
            approval_id,
            change_request_id,
            requested_at: jiff::Timestamp::now().into(),
            generation: self.facts.generation,
            outcome: None,
            reason: None,
            during_deletion: self.obj.meta().deletion_timestamp.is_some(),
        }));
        let message = format!(
            "Dfns holds \"{operation}\" for a policy approval; the request is not sent again while \
             the approval is pending (ids in status.pendingApproval)"
        );
        Effect {
            changes: vec![Change::Status(status)],
            ..Effect::then(Then::Finish(Verdict::Progressing {
                reason: ConditionReason::PendingApproval,
                message: message.clone(),
            }))
        }
        .with_event(EventType::Normal, "PendingApproval", message)
    }

    pub(super) fn record_approval_outcome(
        &self,
        outcome: String,
        reason: Option<String>,
    ) -> Effect {
        let mut status = self.facts.status.clone();
        let Some(pending) = status.pending_approval.as_mut() else {
            return Effect::then(Then::Continue);
        };
        let note = format!(
            "the Dfns policy approval of \"{}\" ended: {outcome}{}",
            pending.operation,
            reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        pending.outcome = Some(outcome);
        pending.reason = reason;
        Effect::changed(vec![Change::Status(status)]).with_event(
            EventType::Warning,
            "ApprovalDecided",
            note,
        )
    }

    /// Dfns did the approved write itself, so the inventory's copy of the identity predates it.
    pub(super) async fn approval_granted(&self) -> Result<Effect, Error> {
        let mut status = self.facts.status.clone();
        let operation = status
            .pending_approval
            .take()
            .map(|p| p.operation)
            .unwrap_or_default();
        let mut changes = vec![Change::Status(status)];
        if let Some(id) = self.facts.status.recorded_id() {
            let fresh = ignore_not_found(self.handle()?.client.get(K::DFNS_KIND, id).await)?;
            changes.push(Change::Recorded(fresh));
        }
        Ok(Effect::changed(changes).with_event(
            EventType::Normal,
            "ApprovalGranted",
            format!("a Dfns policy approver approved \"{operation}\""),
        ))
    }

    /// The spec changed while a write was held: plan for the new spec. A change request still
    /// pending stays in the approvers' queue, so the Event names it for them to deny.
    pub(super) fn forget_approval(&self) -> Effect {
        let mut status = self.facts.status.clone();
        let Some(pending) = status.pending_approval.take() else {
            return Effect::then(Then::Continue);
        };
        let effect = Effect::changed(vec![Change::Status(status)]);
        match (&pending.outcome, &pending.change_request_id) {
            (None, Some(id)) => effect.with_event(
                EventType::Warning,
                "ApprovalAbandoned",
                format!(
                    "the spec changed while \"{}\" waited for approval; change request {id} may \
                     still be pending in Dfns and should be denied",
                    pending.operation
                ),
            ),
            _ => effect,
        }
    }

    /// The recorded identity with an edit Dfns made but did not answer with.
    fn recorded_with(&self, edit: impl FnOnce(&mut Identity)) -> Vec<Change> {
        let Some(mut identity) = self.facts.recorded().cloned() else {
            return Vec::new();
        };
        edit(&mut identity);
        vec![Change::Recorded(Some(identity))]
    }
}

/// Something only a person can fix. An id that cannot be proven is also told as a Warning Event,
/// so that whoever watches Events sees which id was refused.
fn stall(reason: ConditionReason, message: String) -> Effect {
    let effect = Effect::then(Then::Finish(Verdict::Stalled {
        reason,
        message: message.clone(),
    }));
    match reason {
        ConditionReason::ForeignCredential => {
            effect.with_event(EventType::Warning, "ForeignCredential", message)
        }
        ConditionReason::Expired => effect.with_event(EventType::Warning, "Expired", message),
        _ => effect,
    }
}

pub(super) fn creating() -> Verdict {
    Verdict::Progressing {
        reason: ConditionReason::Creating,
        message: "creating the credential in Dfns".into(),
    }
}
