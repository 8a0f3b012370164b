//! The generic reconciler: observe, ask the plan for the next step, execute it, and repeat until
//! the resource is up to date or must wait; then write status only if it changed (design §3, §4).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::cleanup_plan::{CleanupStep, next_cleanup_step};
use super::observe::{Observation, observe, view_of};
use super::observed::{DfnsView, SecretState};
use super::plan::{Step, next_step};
use super::resource::{CredentialResource, clear_ids, record_ids};
use crate::api::{ConditionReason, CredentialStatus, PendingCreate, RetiringCredential};
use crate::controller::conditions::{Health, conditions_for};
use crate::controller::context::Context;
use crate::controller::error::{Error, ignore_not_found};
use crate::controller::secret_layout::{self as secret, SecretLayout};
use dfns_client::keys::{PrivateKey, generate_p256};
use dfns_client::{Identity, NewIdentity, SecretString, decode_claims};

pub const FINALIZER: &str = "dfns.io/cleanup";
/// `"true"` releases a resource being deleted without touching Dfns.
pub const SKIP_CLEANUP_ANNOTATION: &str = "dfns.io/skip-cleanup";
const FIELD_MANAGER: &str = "dfns-operator";
/// Bound on steps per reconcile; a create takes about five.
const MAX_STEPS: usize = 24;

pub async fn reconcile<K: CredentialResource>(
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::Invalid("resource has no namespace".into()))?;
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &namespace);
    let object_ref = ObjectRef::from_obj(&*obj);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => match Run::start(obj.clone(), &ctx, false).await {
                Ok(run) => run.apply().await,
                Err(error) => Err(report_unobserved(&*obj, &ctx, error).await),
            },
            FinalizerEvent::Cleanup(obj) => match Run::start(obj.clone(), &ctx, true).await {
                Ok(run) => run.cleanup().await,
                Err(error) => Err(report_unobserved(&*obj, &ctx, error).await),
            },
        }
    })
    .await;
    match result {
        Ok(action) => {
            ctx.succeeded(&object_ref);
            Ok(action)
        }
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
}

/// After a failed reconcile: back off per object; wait for a person on errors only they can fix.
pub fn error_policy<K: CredentialResource>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let delay = if error.needs_a_person() {
        ctx.resync_delay().min(Duration::from_secs(300))
    } else {
        ctx.failure_delay(&ObjectRef::from_obj(&*obj))
    };
    let delay = error.retry_after().map_or(delay, |after| after.max(delay));
    tracing::warn!(
        kind = K::kind(&()).as_ref(),
        namespace = obj.namespace().unwrap_or_default(),
        name = obj.name_any(),
        category = error.category(),
        %error,
        retry_in_secs = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// A reconcile that could not even observe (e.g. RBAC refuses a read) still shows why in the
/// resource's conditions. Only the conditions are patched (a merge patch), so recorded ids can
/// never be lost to a decision made without seeing them.
async fn report_unobserved<K: CredentialResource>(obj: &K, ctx: &Context, error: Error) -> Error {
    let previous = obj
        .credential_status()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let generation = obj.meta().generation.unwrap_or_default();
    let conditions = conditions_for(
        &error.health(),
        generation,
        &previous,
        jiff::Timestamp::now().into(),
    );
    if conditions != previous {
        let api: Api<K> = Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default());
        let patch = json!({ "status": { "conditions": conditions } });
        if let Err(patch_error) = api
            .patch_status(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(error = %patch_error, "could not record the failure in status");
        }
    }
    ctx.publish(
        &obj.object_ref(&()),
        EventType::Warning,
        "Failed",
        error.to_string(),
    )
    .await;
    error
}

enum Flow {
    Continue,
    Done(Health),
}

struct Run<'c, K: CredentialResource> {
    ctx: &'c Context,
    obj: Arc<K>,
    deleting: bool,
    /// Read straight from the API server in this reconcile (not from the watch cache).
    fresh: bool,
    seen: Observation,
    /// The status as last read or written; a write happens only when the new one differs.
    saved: CredentialStatus,
}

impl<'c, K: CredentialResource> Run<'c, K> {
    async fn start(obj: Arc<K>, ctx: &'c Context, deleting: bool) -> Result<Self, Error> {
        let seen = observe(&*obj, ctx, deleting).await?;
        let saved = seen.observed.status.clone();
        Ok(Self {
            ctx,
            obj,
            deleting,
            fresh: false,
            seen,
            saved,
        })
    }

    fn api(&self) -> Api<K> {
        Api::namespaced(
            self.ctx.kube.clone(),
            &self.obj.namespace().unwrap_or_default(),
        )
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(
            self.ctx.kube.clone(),
            &self.obj.namespace().unwrap_or_default(),
        )
    }

    /// The watch cache may lag behind our own last write; anything that writes decides on a
    /// fresh read of the resource, so a stale status can never cause a second create.
    /// The Secret and Dfns were read fresh already; only the resource itself came from the cache,
    /// so the whole observation is repeated only when the resource really changed.
    async fn refresh(&mut self) -> Result<(), Error> {
        let fresh = self.api().get(&self.obj.name_any()).await?;
        if fresh.resource_version().is_none()
            || fresh.resource_version() != self.obj.resource_version()
        {
            *self = Self::start(Arc::new(fresh), self.ctx, self.deleting).await?;
        }
        self.fresh = true;
        Ok(())
    }

    async fn apply(mut self) -> Result<Action, Error> {
        loop {
            let health = match self.converge().await {
                Ok(health) => health,
                Err(error) => return Err(self.fail(error).await),
            };
            // A status decided on the watch cache is written only after a fresh read agrees.
            if !self.fresh && self.status_for(&health) != self.saved {
                self.refresh().await?;
                continue;
            }
            if matches!(health, Health::Ready { .. })
                && let Err(error) = self.sync_secret_layout().await
            {
                return Err(self.fail(error).await);
            }
            let requeue = self.requeue_after(&health);
            self.save(health).await?;
            return Ok(Action::requeue(requeue));
        }
    }

    /// Executes plan steps until the plan is satisfied or must wait.
    async fn converge(&mut self) -> Result<Health, Error> {
        for _ in 0..MAX_STEPS {
            let step = next_step(&self.seen.observed);
            if !self.fresh
                && !matches!(
                    step,
                    Step::UpToDate | Step::Wait { .. } | Step::Stall { .. }
                )
            {
                self.refresh().await?;
                continue;
            }
            if let Flow::Done(health) = self.execute(step).await? {
                return Ok(health);
            }
        }
        Ok(Health::Progressing {
            reason: ConditionReason::Progressing,
            message: "still converging; continuing shortly".into(),
        })
    }

    fn requeue_after(&self, health: &Health) -> Duration {
        match health {
            Health::Ready { .. } | Health::Stalled { .. } | Health::NotReady { .. } => {
                self.ctx.resync_delay()
            }
            Health::Progressing {
                reason: ConditionReason::PendingApproval,
                ..
            } => Duration::from_secs(60),
            Health::Progressing { .. } => Duration::from_secs(15),
            Health::Unchanged => Duration::from_secs(30),
        }
    }

    /// Shows the failure in status (when decided on a fresh read) and as an Event, then hands it
    /// to the error policy.
    async fn fail(&mut self, error: Error) -> Error {
        if self.fresh
            && let Err(save_error) = self.save(error.health()).await
        {
            tracing::warn!(error = %save_error, "could not record the failure in status");
        }
        self.event(EventType::Warning, "Failed", error.to_string())
            .await;
        error
    }

    async fn execute(&mut self, step: Step) -> Result<Flow, Error> {
        let kind = K::DFNS_KIND;
        match step {
            Step::Wait { reason, message } => {
                let was_ready = self
                    .saved
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if self.seen.observed.recorded_id().is_some() && was_ready {
                    tracing::info!(%message, "connection unavailable; keeping the last known state");
                    return Ok(Flow::Done(Health::Unchanged));
                }
                Ok(Flow::Done(Health::Progressing { reason, message }))
            }
            Step::Stall { reason, message } => Ok(Flow::Done(Health::Stalled { reason, message })),
            Step::UpToDate => Ok(Flow::Done(self.steady_health())),
            Step::GenerateKey => {
                let key = generate_p256()
                    .map_err(|e| Error::Invalid(format!("generating a key: {e}")))?;
                let next = secret::with_new_key(self.seen.secret.as_ref(), &self.layout()?, &key);
                self.write_secret(next).await?;
                Ok(Flow::Continue)
            }
            Step::MarkPendingCreate { key_fingerprint } => {
                let status = &mut self.seen.observed.status;
                status.pending_create = Some(PendingCreate {
                    started_at: jiff::Timestamp::now().into(),
                    public_key_sha256: key_fingerprint,
                });
                self.save(creating()).await?;
                Ok(Flow::Continue)
            }
            Step::Create => self.create().await,
            Step::Adopt(object) => {
                let credential = self.full(&object.id)?;
                self.record_created(&credential, None).await?;
                self.event(
                    EventType::Normal,
                    "Created",
                    format!(
                        "recorded {kind} {} created before an interruption",
                        credential.id
                    ),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::RetireOrphan(object) => {
                self.retire(&object.id).await?;
                self.event(
                    EventType::Normal,
                    "OrphanRetired",
                    format!("deactivated and archived {kind} {} whose token was lost during an interrupted create", object.id),
                )
                .await;
                if let DfnsView::Candidates(candidates) = &mut self.seen.observed.dfns {
                    candidates
                        .iter_mut()
                        .filter(|c| c.id == object.id)
                        .for_each(|c| {
                            c.active = false;
                            c.archived = true;
                        });
                }
                Ok(Flow::Continue)
            }
            Step::LoseCredential { message } => {
                let status = &mut self.seen.observed.status;
                let id = status
                    .service_account_id
                    .clone()
                    .or(status.token_id.clone())
                    .unwrap_or_default();
                status.retiring = Some(RetiringCredential {
                    id,
                    public_key_sha256: status.public_key_sha256.clone(),
                });
                clear_ids(status);
                status.pending_create = None;
                self.seen.observed.dfns = DfnsView::NotAsked;
                self.save(Health::Progressing {
                    reason: ConditionReason::CredentialLost,
                    message: message.clone(),
                })
                .await?;
                self.event(
                    EventType::Warning,
                    "CredentialLost",
                    format!("{message}; minting a new credential"),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::RetirePrevious { id } => {
                ignore_not_found(self.handle()?.client.deactivate(kind, &id).await)?;
                self.seen.observed.status.retiring = None;
                self.save(creating()).await?;
                self.event(
                    EventType::Normal,
                    "Deactivated",
                    format!("deactivated {kind} {id}, which was replaced"),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::Activate => {
                let id = self.recorded_id();
                let updated = self.handle()?.client.activate(kind, &id).await?;
                self.seen.observed.status.active = Some(true);
                self.seen.observed.status.deactivated_in_dfns_at = None;
                self.update_recorded(updated).await;
                self.event(
                    EventType::Normal,
                    "Activated",
                    format!("activated {kind} {id}"),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::Deactivate => {
                let id = self.recorded_id();
                let updated = self.handle()?.client.deactivate(kind, &id).await?;
                self.seen.observed.status.active = Some(false);
                self.seen.observed.status.deactivated_in_dfns_at = None;
                self.update_recorded(updated).await;
                self.event(
                    EventType::Normal,
                    "Deactivated",
                    format!("deactivated {kind} {id} (spec.active is false)"),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::ReportDeactivatedInDfns => {
                let id = self.recorded_id();
                self.seen.observed.status.active = Some(false);
                self.seen.observed.status.deactivated_in_dfns_at =
                    Some(jiff::Timestamp::now().into());
                let message = format!(
                    "{kind} {id} was deactivated in Dfns by someone else; it stays deactivated until the spec \
                     changes (set spec.active to false, then back to true, to activate it again)"
                );
                self.event(EventType::Warning, "DeactivatedInDfns", message.clone())
                    .await;
                Ok(Flow::Done(Health::NotReady {
                    reason: ConditionReason::DeactivatedInDfns,
                    message,
                }))
            }
            Step::AcknowledgeDeactivation => {
                self.seen.observed.status.deactivated_in_dfns_at = None;
                Ok(Flow::Continue)
            }
            Step::Rename { name } => {
                let id = self.recorded_id();
                let updated = self
                    .handle()?
                    .client
                    .update(kind, &id, Some(name.clone()), None)
                    .await?;
                self.update_recorded(updated).await;
                self.event(
                    EventType::Normal,
                    "Updated",
                    format!("renamed {kind} {id} to {name}"),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::AssignPermission { permission_id } => {
                let id = self.recorded_id();
                let assignment = self
                    .handle()?
                    .client
                    .assign_permission(&permission_id, &id)
                    .await?;
                if let Some(mut credential) = self.seen.dfns_objects.get(&id).cloned() {
                    credential.permission_assignments.push(
                        dfns_client::types::PermissionAssignmentRef {
                            permission_id: permission_id.clone(),
                            permission_name: None,
                            assignment_id: assignment.id.clone(),
                            operations: vec![],
                        },
                    );
                    self.update_recorded(credential).await;
                }
                self.event(
                    EventType::Normal,
                    "PermissionAssigned",
                    format!("assigned {permission_id} to {kind} {id}"),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::RevokeAssignment {
                permission_id,
                assignment_id,
            } => {
                let id = self.recorded_id();
                ignore_not_found(
                    self.handle()?
                        .client
                        .revoke_permission(&permission_id, &assignment_id)
                        .await,
                )?;
                if let Some(mut credential) = self.seen.dfns_objects.get(&id).cloned() {
                    credential
                        .permission_assignments
                        .retain(|a| a.assignment_id != assignment_id);
                    self.update_recorded(credential).await;
                }
                self.event(
                    EventType::Normal,
                    "PermissionRevoked",
                    format!("revoked {permission_id} from {kind} {id}"),
                )
                .await;
                Ok(Flow::Continue)
            }
            Step::RecordAssignment {
                permission_id,
                assignment_id,
            } => {
                let status = &mut self.seen.observed.status;
                status.assigned_permission_id = permission_id;
                status.permission_assignment_id = assignment_id;
                Ok(Flow::Continue)
            }
        }
    }

    /// Design §3 steps 3–5: create in Dfns, write the token into the Secret at once, record ids.
    async fn create(&mut self) -> Result<Flow, Error> {
        let handle = self.handle()?;
        let public_key_pem = self.secret_public_key()?;
        let o = &self.seen.observed;
        let new = NewIdentity {
            name: o.desired.display_name.clone(),
            public_key_pem,
            permission_id: o.desired.permission_id.clone(),
            external_id: Some(o.uid.clone()),
            days_valid: self.obj.credential_spec().days_valid,
            seconds_valid: self.obj.seconds_valid(),
        };
        let created = handle.client.create(K::DFNS_KIND, &new).await?;
        let credential = created.identity;
        let credential_id = credential.cred_id.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "Dfns created {} without a credential id",
                credential.id
            ))
        })?;
        self.write_token(&created.access_token, &credential.id, &credential_id)
            .await?;
        self.record_created(&credential, Some(&created.access_token))
            .await?;
        let kind = K::DFNS_KIND;
        let secret_name = self.seen.observed.desired.secret_name.clone();
        self.event(
            EventType::Normal,
            "Created",
            format!(
                "created {kind} {} and wrote Secret {secret_name}",
                credential.id
            ),
        )
        .await;
        Ok(Flow::Continue)
    }

    /// Step 5 (or recovery): ids into status, `pendingCreate` cleared, saved at once.
    async fn record_created(
        &mut self,
        credential: &Identity,
        token: Option<&SecretString>,
    ) -> Result<(), Error> {
        let expires_at = match token {
            Some(token) => decode_claims(token.expose())
                .ok()
                .and_then(|c| c.expires_at),
            None => self
                .secret_token()
                .and_then(|t| decode_claims(t.expose()).ok())
                .and_then(|c| c.expires_at),
        };
        let key_fingerprint = match &self.seen.observed.secret {
            SecretState::Owned(m) => m.key_fingerprint.clone(),
            _ => None,
        };
        let desired_permission = self.seen.observed.desired.permission_id.clone();
        let status = &mut self.seen.observed.status;
        record_ids(status, credential);
        status.expires_at = expires_at.map(Into::into);
        status.public_key_sha256 = key_fingerprint;
        status.pending_create = None;
        status.secret_name = Some(self.seen.observed.desired.secret_name.clone());
        if let Some(p) = desired_permission
            && let Some(assignment) = credential.assignment_of(&p)
        {
            status.assigned_permission_id = Some(p);
            status.permission_assignment_id = Some(assignment.assignment_id.clone());
        }
        self.save(creating()).await?;
        self.update_recorded(credential.clone()).await;
        Ok(())
    }

    /// Step 4: the token exists only in this process now, so retry the write in-process; if it
    /// cannot be written, the pending-create recovery retires the credential later.
    async fn write_token(
        &mut self,
        token: &SecretString,
        dfns_id: &str,
        credential_id: &str,
    ) -> Result<(), Error> {
        let layout = self.layout()?;
        let name = self.seen.observed.desired.secret_name.clone();
        let mut last_error = None;
        for attempt in 0..6u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            }
            let current = match self.secrets().get_opt(&name).await {
                Ok(Some(s)) if secret::is_owned_by(&s, &self.seen.observed.uid) => s,
                Ok(_) => {
                    return Err(Error::Invalid(format!(
                        "Secret {name} vanished or changed owner during create"
                    )));
                }
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            let next = secret::with_token(&current, &layout, token, dfns_id, credential_id);
            match self
                .secrets()
                .replace(&name, &PostParams::default(), &next)
                .await
            {
                Ok(written) => {
                    self.set_secret(Some(written));
                    return Ok(());
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .map(Error::Kube)
            .unwrap_or_else(|| Error::Invalid("could not write the token".into())))
    }

    async fn cleanup(mut self) -> Result<Action, Error> {
        let skip = self
            .obj
            .annotations()
            .get(SKIP_CLEANUP_ANNOTATION)
            .is_some_and(|v| v == "true");
        let kind = K::DFNS_KIND;
        for _ in 0..MAX_STEPS {
            let step = next_cleanup_step(&self.seen.observed, skip);
            if !self.fresh && step != CleanupStep::RemoveFinalizer {
                self.refresh().await?;
                continue;
            }
            let result: Result<(), Error> = async {
                match &step {
                    CleanupStep::Blocked { message } => Err(Error::Connection(message.clone())),
                    CleanupStep::RetirePrevious { id } => {
                        ignore_not_found(self.handle()?.client.deactivate(kind, id).await)?;
                        self.seen.observed.status.retiring = None;
                        Ok(())
                    }
                    CleanupStep::RetireOrphan { id } => {
                        self.retire(id).await?;
                        if let DfnsView::Candidates(c) = &mut self.seen.observed.dfns {
                            c.retain(|c| &c.id != id);
                        }
                        Ok(())
                    }
                    CleanupStep::Deactivate { id } => {
                        let updated =
                            ignore_not_found(self.handle()?.client.deactivate(kind, id).await)?;
                        self.event(
                            EventType::Normal,
                            "Deactivated",
                            format!("deactivated {kind} {id} (deletionPolicy)"),
                        )
                        .await;
                        match updated {
                            Some(c) => self.update_recorded(c).await,
                            None => self.seen.observed.dfns = DfnsView::Recorded(None),
                        }
                        Ok(())
                    }
                    CleanupStep::Archive { id } => {
                        self.archive(id).await?;
                        self.event(
                            EventType::Normal,
                            "Archived",
                            format!("archived {kind} {id} (deletionPolicy)"),
                        )
                        .await;
                        self.seen.observed.dfns = DfnsView::Recorded(None);
                        Ok(())
                    }
                    CleanupStep::ReleaseSecret => {
                        let current = self.seen.secret.clone().expect("owned Secret present");
                        let released = secret::released(&current, &self.seen.observed.uid);
                        self.write_secret(released).await
                    }
                    CleanupStep::DeleteSecret => {
                        let current = self.seen.secret.clone().expect("owned Secret present");
                        let params = DeleteParams {
                            preconditions: Some(Preconditions {
                                uid: current.uid(),
                                resource_version: None,
                            }),
                            ..Default::default()
                        };
                        match self.secrets().delete(&current.name_any(), &params).await {
                            Ok(_) => {}
                            Err(kube::Error::Api(s)) if s.code == 404 => {}
                            Err(e) => return Err(e.into()),
                        }
                        self.set_secret(None);
                        Ok(())
                    }
                    CleanupStep::RemoveFinalizer => Ok(()),
                }
            }
            .await;
            match result {
                Ok(()) if step == CleanupStep::RemoveFinalizer => return Ok(Action::await_change()),
                Ok(()) => {}
                Err(error) => {
                    let health = match &step {
                        CleanupStep::Blocked { message } => Health::NotReady {
                            reason: ConditionReason::CleanupBlocked,
                            message: message.clone(),
                        },
                        _ => error.health(),
                    };
                    if let Err(save_error) = self.save(health).await {
                        tracing::warn!(error = %save_error, "could not record the cleanup failure in status");
                    }
                    return Err(error);
                }
            }
        }
        Ok(Action::requeue(Duration::from_secs(5)))
    }

    // ---- helpers ----

    fn handle(&self) -> Result<Arc<crate::controller::dfns_clients::ConnectionHandle>, Error> {
        self.seen
            .handle
            .clone()
            .ok_or_else(|| Error::Connection("the connection is not usable".into()))
    }

    fn recorded_id(&self) -> String {
        self.seen
            .observed
            .recorded_id()
            .unwrap_or_default()
            .to_string()
    }

    fn full(&self, id: &str) -> Result<Identity, Error> {
        self.seen
            .dfns_objects
            .get(id)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("no Dfns object {id} in view")))
    }

    /// Deactivate, then archive; both tolerate an object that is already gone.
    async fn retire(&mut self, id: &str) -> Result<(), Error> {
        ignore_not_found(self.handle()?.client.deactivate(K::DFNS_KIND, id).await)?;
        self.archive(id).await
    }

    async fn archive(&mut self, id: &str) -> Result<(), Error> {
        let handle = self.handle()?;
        ignore_not_found(handle.client.delete(K::DFNS_KIND, id).await)?;
        self.ctx
            .inventory
            .forget(&handle.key, K::DFNS_KIND, id)
            .await;
        Ok(())
    }

    async fn update_recorded(&mut self, credential: Identity) {
        if let Some(handle) = &self.seen.handle {
            self.ctx
                .inventory
                .remember(&handle.key, credential.clone())
                .await;
        }
        self.seen.observed.dfns = DfnsView::Recorded(Some(view_of(&credential)));
        self.seen
            .dfns_objects
            .insert(credential.id.clone(), credential);
    }

    fn steady_health(&self) -> Health {
        let o = &self.seen.observed;
        let id = o.recorded_id().unwrap_or_default();
        let active = matches!(&o.dfns, DfnsView::Recorded(Some(obj)) if obj.active);
        match (o.desired.active, active) {
            (true, true) => Health::Ready {
                reason: ConditionReason::Ready,
                message: format!(
                    "{} {id} is active; Secret {} holds its token and key",
                    K::DFNS_KIND,
                    o.desired.secret_name
                ),
            },
            (false, false) => Health::Ready {
                reason: ConditionReason::Inactive,
                message: format!(
                    "{} {id} is deactivated, as spec.active is false",
                    K::DFNS_KIND
                ),
            },
            _ => Health::NotReady {
                reason: ConditionReason::DeactivatedInDfns,
                message: format!(
                    "{} {id} was deactivated in Dfns by someone else; set spec.active to false, then back to true, \
                     to activate it again",
                    K::DFNS_KIND
                ),
            },
        }
    }

    fn layout(&self) -> Result<SecretLayout, Error> {
        let connection = self
            .seen
            .connection
            .as_ref()
            .ok_or_else(|| Error::Connection("the connection is not available".into()))?;
        let template = self
            .obj
            .credential_spec()
            .secret
            .clone()
            .unwrap_or_default();
        let org_id = connection.spec.org_id.clone().or_else(|| {
            connection
                .status
                .as_ref()?
                .identity
                .as_ref()?
                .org_id
                .clone()
        });
        Ok(SecretLayout {
            name: self.seen.observed.desired.secret_name.clone(),
            namespace: self.obj.namespace().unwrap_or_default(),
            owner: self
                .obj
                .controller_owner_ref(&())
                .ok_or_else(|| Error::Invalid("resource has no uid".into()))?,
            labels: template.labels,
            annotations: template.annotations,
            api_url: connection.spec.api_url.clone(),
            org_id,
        })
    }

    /// Creates or replaces (optimistically, by resourceVersion) the Secret; no write if unchanged.
    async fn write_secret(&mut self, next: Secret) -> Result<(), Error> {
        if self.seen.secret.as_ref() == Some(&next) {
            return Ok(());
        }
        let written = match next.resource_version() {
            None => self.secrets().create(&PostParams::default(), &next).await?,
            Some(_) => {
                self.secrets()
                    .replace(&next.name_any(), &PostParams::default(), &next)
                    .await?
            }
        };
        self.set_secret(Some(written));
        Ok(())
    }

    fn set_secret(&mut self, secret: Option<Secret>) {
        self.seen.observed.secret = secret::classify(secret.as_ref(), &self.seen.observed.uid);
        self.seen.secret = secret;
    }

    async fn sync_secret_layout(&mut self) -> Result<(), Error> {
        let Some(current) = self.seen.secret.clone() else {
            return Ok(());
        };
        if !secret::is_owned_by(&current, &self.seen.observed.uid) {
            return Ok(());
        }
        let next = secret::with_layout(&current, &self.layout()?);
        self.write_secret(next).await
    }

    fn secret_text(&self, key: &str) -> Option<String> {
        let bytes = self.seen.secret.as_ref()?.data.as_ref()?.get(key)?;
        String::from_utf8(bytes.0.clone()).ok()
    }

    fn secret_token(&self) -> Option<SecretString> {
        self.secret_text(secret::AUTH_TOKEN).map(SecretString::new)
    }

    /// The SPKI PEM of the Secret's key, derived from the private key so the two always match.
    fn secret_public_key(&self) -> Result<String, Error> {
        let pem = self.secret_text(secret::PRIVATE_KEY).ok_or_else(|| {
            Error::Invalid("the Secret lost its private key during create".into())
        })?;
        let key = PrivateKey::from_pem(&pem)
            .map_err(|e| Error::Invalid(format!("Secret private key: {e}")))?;
        key.public_key_pem()
            .map_err(|e| Error::Invalid(format!("Secret private key: {e}")))
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        self.ctx
            .publish(&self.obj.object_ref(&()), type_, reason, note)
            .await;
    }

    /// The status this health implies; transition times of unchanged conditions are kept.
    fn status_for(&self, health: &Health) -> CredentialStatus {
        let generation = self.seen.observed.generation;
        let mut status = self.seen.observed.status.clone();
        // Unchanged health has not acted on this generation: leave observedGeneration as it was.
        status.observed_generation = match health {
            Health::Unchanged => self.saved.observed_generation,
            _ => Some(generation),
        };
        status.conditions = conditions_for(
            health,
            generation,
            &self.saved.conditions,
            jiff::Timestamp::now().into(),
        );
        status
    }

    /// Writes status (server-side apply) if it differs from what was last read or written.
    async fn save(&mut self, health: Health) -> Result<(), Error> {
        let status = self.status_for(&health);
        if status == self.saved {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api()
            .patch_status(&self.obj.name_any(), &params, &Patch::Apply(&patch))
            .await?;
        self.seen.observed.status = status.clone();
        self.saved = status;
        Ok(())
    }
}

fn creating() -> Health {
    Health::Progressing {
        reason: ConditionReason::Creating,
        message: "creating the credential in Dfns".into(),
    }
}
