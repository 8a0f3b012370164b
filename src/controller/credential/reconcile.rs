//! The generic reconciler: read the facts, ask the plan for the next step, perform it, apply what
//! it changed, and repeat until the resource is up to date or must wait; then write status only
//! if it changed (docs/architecture.md, "A reconcile").

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;

use super::drift;
use super::facts::{Change, Effect, Facts, Note, Then};
use super::freshness::{safe_on_cached_copy, status_only};
use super::observe::{Observation, connection_key, observe};
use super::observed::SecretState;
use super::plan::{Step, held_operation, next_step, written_id};
use super::renewal;
use super::resource::CredentialResource;
use crate::api::{ConditionReason, CredentialStatus};
use crate::controller::conditions::Verdict;
use crate::controller::connection_slots::ConnectionSlots;
use crate::controller::context::Context;
use crate::controller::dfns_clients::{ConnectionHandle, ConnectionObject};
use crate::controller::error::Error;
use crate::controller::own_writes::OwnWrites;
use crate::controller::restart_targets::{Owner, restart_targets};
use crate::controller::status::StatusWriter;
use dfns_client::DfnsClient;

pub const FINALIZER: &str = "dfns.io/cleanup";
/// `"true"` releases a resource being deleted without touching Dfns.
pub const SKIP_CLEANUP_ANNOTATION: &str = "dfns.io/skip-cleanup";
/// Bound on steps per reconcile; a create takes about five.
pub(super) const MAX_STEPS: usize = 24;
/// Bound on fresh reads after refused (409) status writes per reconcile; past it, the reconcile
/// fails and is retried with backoff.
const MAX_REREADS: usize = 3;
/// How long a reconcile on a copy our own write replaced waits for the watch to catch up.
const CACHE_CATCH_UP: Duration = Duration::from_millis(500);

pub async fn reconcile<K: CredentialResource>(
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = obj
        .namespace()
        .ok_or_else(|| Error::InvalidSpec("resource has no namespace".into()))?;
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &namespace);
    let object_ref = ObjectRef::from_obj(&*obj);
    let connection = connection_key(&*obj);
    // A copy that one of our own status writes has replaced since: the watch brings the current
    // one in a moment, and deciding on it needs no read (own_writes.rs).
    if ctx
        .own_writes
        .cache_is_behind(&OwnWrites::key_of(&*obj), obj.resource_version().as_deref())
    {
        return Err(Error::CacheBehind {
            retry_in: CACHE_CATCH_UP,
        });
    }
    // Held until this reconcile ends.
    let Some(_slot) = ctx.connection_slots.try_take(&connection) else {
        return Err(Error::ConnectionBusy {
            connection: connection.to_string(),
            retry_in: ConnectionSlots::retry_in(),
        });
    };
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        let (obj, deleting) = match event {
            FinalizerEvent::Apply(obj) => (obj, false),
            FinalizerEvent::Cleanup(obj) => (obj, true),
        };
        match Run::start(obj.clone(), &ctx, deleting).await {
            Ok(run) if deleting => run.cleanup().await,
            Ok(run) => run.apply().await,
            Err(error) => Err(report_unobserved(&*obj, &ctx, error).await),
        }
    })
    .await;
    match result {
        Ok(action) => {
            ctx.succeeded(&object_ref);
            Ok(action)
        }
        Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
        Err(e) => Err(Error::Finalizer(Box::new(e))),
    }
}

/// After a failed reconcile: back off per object; wait for a person on errors only they can fix.
pub fn error_policy<K: CredentialResource>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    // Waiting is not failing: no backoff growth, no warning.
    if let Error::DeletionWaits { retry_in, .. } = error {
        return Action::requeue(*retry_in);
    }
    if let Some(retry_in) = error.waiting() {
        tracing::debug!(
            kind = K::kind(&()).as_ref(),
            namespace = obj.namespace().unwrap_or_default(),
            name = obj.name_any(),
            %error,
            retry_in_ms = retry_in.as_millis() as u64,
            "reconcile gave its worker back"
        );
        return Action::requeue(retry_in);
    }
    let delay = if error.needs_a_person() {
        ctx.resync_delay().min(Duration::from_secs(300))
    } else {
        ctx.failure_delay(&ObjectRef::from_obj(&*obj))
    };
    let delay = error.retry_after().map_or(delay, |after| after.max(delay));
    // A backoff never sleeps through the token's expiry: `Expired` is told when it happens.
    let expires_at = obj
        .credential_status()
        .and_then(|s| s.expires_at.as_ref())
        .map(|t| t.0);
    let delay =
        until_expiry(jiff::Timestamp::now(), expires_at).map_or(delay, |until| delay.min(until));
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
/// resource's conditions, without touching the fields it never saw.
async fn report_unobserved<K: CredentialResource>(obj: &K, ctx: &Context, error: Error) -> Error {
    if error.waiting().is_some() {
        return error;
    }
    let persisted = obj.credential_status().cloned().unwrap_or_default();
    let left = renewal::failure_note(
        &persisted,
        persisted.secret_name.as_deref().unwrap_or_default(),
        jiff::Timestamp::now(),
    );
    let mut writer = StatusWriter::new(api_for(ctx, obj), obj, persisted);
    let verdict = if obj.meta().deletion_timestamp.is_some() {
        error.verdict().during_cleanup()
    } else {
        let verdict = error.verdict();
        match &left {
            Some(left) => verdict.with_message_suffix(left),
            None => verdict,
        }
    };
    if let Err(write_error) = writer.save_conditions_only(&verdict).await {
        tracing::warn!(error = %write_error, "could not record the failure in status");
    }
    ctx.publish(
        &obj.object_ref(&()),
        EventType::Warning,
        "Failed",
        error.to_string() + left.as_deref().unwrap_or_default(),
    )
    .await;
    error
}

fn api_for<K: CredentialResource>(ctx: &Context, obj: &K) -> Api<K> {
    Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default())
}

/// One reconcile of one resource.
pub(super) struct Run<'c, K: CredentialResource> {
    pub ctx: &'c Context,
    pub obj: Arc<K>,
    deleting: bool,
    /// The API server confirmed the version the facts rest on: the resource was read from it in
    /// this reconcile, or a status write conditional on that version succeeded (`freshness.rs`).
    fresh: bool,
    /// Fresh reads so far after refused writes (bounded by [`MAX_REREADS`]).
    rereads: usize,
    /// A step asked for the status to be saved before the next step; it is, before the next
    /// step that does more than change status, or with the reconcile's final status.
    save_owed: Option<Verdict>,
    /// Events about changes whose status is not saved yet: published once it is, dropped if
    /// the save is refused (the reconcile decides again and tells its own).
    notes_owed: Vec<Note>,
    pub facts: Facts,
    pub connection: Option<ConnectionObject>,
    pub handle: Option<Arc<ConnectionHandle>>,
    status: StatusWriter<K, CredentialStatus>,
}

impl<'c, K: CredentialResource> Run<'c, K> {
    async fn start(obj: Arc<K>, ctx: &'c Context, deleting: bool) -> Result<Self, Error> {
        let Observation {
            facts,
            connection,
            handle,
        } = observe(&*obj, ctx, deleting).await?;
        let own_writes = ctx.own_writes.clone();
        let key = OwnWrites::key_of(&*obj);
        let status = StatusWriter::new(api_for(ctx, &*obj), &*obj, facts.status.clone())
            .reporting_to(Box::new(move |replaced, written| {
                own_writes.wrote(key.clone(), replaced, written)
            }));
        Ok(Self {
            ctx,
            obj,
            deleting,
            fresh: false,
            rereads: 0,
            save_owed: None,
            notes_owed: Vec::new(),
            facts,
            connection,
            handle,
            status,
        })
    }

    /// The watch cache may lag behind our own last write (or another replica's): a step that
    /// writes to Dfns decides on a version the API server confirmed, so a stale status can never
    /// cause a second create. The Secret and Dfns were read fresh already; only the resource came
    /// from the cache, so the facts are read again only when the resource really changed.
    async fn refresh(&mut self) -> Result<(), Error> {
        let fresh = api_for(self.ctx, &*self.obj)
            .get(&self.obj.name_any())
            .await?;
        if fresh.resource_version().is_none()
            || fresh.resource_version() != self.obj.resource_version()
        {
            *self = Self::start(Arc::new(fresh), self.ctx, self.deleting).await?;
        }
        self.fresh = true;
        Ok(())
    }

    /// After a status write was refused for a stale version: read the resource afresh so that
    /// the caller decides again; the refusal itself once the bound is reached.
    async fn reread_after(&mut self, error: Error) -> Result<(), Error> {
        if !matches!(error, Error::StaleResource) || self.rereads >= MAX_REREADS {
            return Err(error);
        }
        tracing::debug!(
            namespace = self.obj.namespace().unwrap_or_default(),
            name = self.obj.name_any(),
            "a write was refused for a stale read; deciding again on a fresh read"
        );
        let fresh = api_for(self.ctx, &*self.obj)
            .get(&self.obj.name_any())
            .await?;
        let rereads = self.rereads + 1;
        *self = Self::start(Arc::new(fresh), self.ctx, self.deleting).await?;
        self.rereads = rereads;
        self.fresh = true;
        Ok(())
    }

    /// Before a step that cannot be undone by a refused status write, the facts must rest on a
    /// confirmed version; `false` when they did not yet (then they do now, and the caller
    /// decides again).
    pub(super) async fn ensure_fresh(&mut self, before: &impl Debug) -> Result<bool, Error> {
        if self.fresh {
            return Ok(true);
        }
        tracing::debug!(
            namespace = self.obj.namespace().unwrap_or_default(),
            name = self.obj.name_any(),
            step = variant_name(before),
            cached_version = self.obj.resource_version().unwrap_or_default(),
            "reading the resource: the next step needs a confirmed version"
        );
        self.refresh().await?;
        Ok(false)
    }

    async fn apply(mut self) -> Result<Action, Error> {
        loop {
            let verdict = match self.converge().await {
                Ok(verdict) => verdict,
                Err(error) => return Err(self.fail(error).await),
            };
            if matches!(verdict, Verdict::Ready { .. })
                && let Err(error) = self.sync_secret_layout().await
            {
                return Err(self.fail(error).await);
            }
            let requeue = self.requeue_after(&verdict);
            // A status decided on a stale cached copy is refused (its version precondition), and
            // the reconcile decides again on a fresh read.
            if let Err(error) = self.save(verdict).await {
                self.reread_after(error).await?;
                continue;
            }
            let restarts = restart_targets(self.ctx, &self.restart_owner()).await;
            return Ok(requeue
                .into_iter()
                .chain(restarts)
                .min()
                .map_or_else(Action::await_change, Action::requeue));
        }
    }

    /// Performs plan steps until the plan is satisfied or must wait.
    async fn converge(&mut self) -> Result<Verdict, Error> {
        for _ in 0..MAX_STEPS {
            let step = next_step(&self.facts.view());
            let client = self.dfns_write_after_save(&step);
            // Boxed: a step's future is large, and the reconcile's own stays small.
            let step = Box::pin(self.step(step));
            let finished = match client {
                // The write's first rate-limit token is taken before the save that precedes it:
                // a reconcile Dfns' limit turns away then leaves nothing saved, and the next one
                // starts where this one did instead of resuming a saved `pendingCreate` (a fresh
                // candidate listing, and a read to confirm the version: `freshness.rs`).
                Some(client) => client.admitted_before(step).await?,
                None => step.await?,
            };
            if let Some(verdict) = finished {
                return Ok(verdict);
            }
        }
        Ok(Verdict::Progressing {
            reason: ConditionReason::Progressing,
            message: "still converging; continuing shortly".into(),
        })
    }

    /// The connection's client, when `step` writes to Dfns right after saving what an earlier
    /// step owes to status.
    fn dfns_write_after_save(&self, step: &Step) -> Option<DfnsClient> {
        if self.save_owed.is_none() || status_only(step) {
            return None;
        }
        held_operation(step, K::DFNS_KIND, None)?;
        Some(self.handle.as_ref()?.client.clone())
    }

    /// Performs one plan step, after saving what is owed and confirming the version where the
    /// step needs it; the verdict when the step ends the reconcile, `None` to decide again.
    async fn step(&mut self, step: Step) -> Result<Option<Verdict>, Error> {
        if !status_only(&step)
            && let Some(verdict) = self.save_owed.take()
            && let Err(error) = self.save(verdict).await
        {
            self.reread_after(error).await?;
            return Ok(None);
        }
        if !safe_on_cached_copy(&step) && !self.ensure_fresh(&step).await? {
            return Ok(None);
        }
        let operation = held_operation(&step, K::DFNS_KIND, self.facts.status.recorded_id());
        let written = written_id(&step, self.facts.status.recorded_id());
        let effect = match self.perform(step).await {
            Ok(effect) => effect,
            // A 202: Dfns holds the write for an approver; never send it again while pending.
            Err(Error::Dfns(ref e))
                if let Some((change_request, approval)) = e.pending_approval() =>
            {
                self.held_for_approval(
                    operation.unwrap_or_else(|| "a write".into()),
                    change_request.map(str::to_owned),
                    approval.map(str::to_owned),
                )
            }
            Err(error) => {
                self.forget_if_outcome_unknown(written.as_deref(), &error)
                    .await;
                self.reread_after(error).await?;
                return Ok(None);
            }
        };
        match self.take(effect).await {
            Ok(finished) => Ok(finished),
            Err(error) => {
                self.reread_after(error).await?;
                Ok(None)
            }
        }
    }

    /// Applies a step's changes to the facts (and the shared Dfns inventory), saves status when
    /// the step says so, then publishes its Events; returns the verdict when the step ends the
    /// reconcile.
    pub(super) async fn take(&mut self, effect: Effect) -> Result<Option<Verdict>, Error> {
        for change in effect.changes {
            self.remember_in_inventory(&change).await;
            self.facts.apply(change);
        }
        let finished = match effect.then {
            Then::Continue => None,
            // Saved before the next step that does more than change status (`converge`).
            Then::SaveThenContinue(verdict) if !self.deleting => {
                self.save_owed = Some(verdict);
                None
            }
            Then::SaveThenContinue(verdict) => {
                self.save(verdict).await?;
                None
            }
            Then::Finish(verdict) => Some(verdict),
        };
        if self.save_owed.is_some() {
            self.notes_owed.extend(effect.events);
        } else {
            for note in effect.events {
                self.event(note.type_, note.reason, note.text).await;
            }
        }
        Ok(finished)
    }

    /// The inventory shares what Dfns holds across reconciles; what a write returned saves the
    /// next reconcile a list call.
    async fn remember_in_inventory(&self, change: &Change) {
        let Some(handle) = &self.handle else { return };
        match change {
            Change::Recorded(Some(identity)) => {
                self.ctx
                    .inventory
                    .remember(&handle.key, identity.clone())
                    .await
            }
            Change::Archived(id) => {
                self.ctx
                    .inventory
                    .forget(&handle.key, K::DFNS_KIND, id)
                    .await
            }
            _ => {}
        }
    }

    /// A write whose answer never came may have been done: the shared listing's copy of that
    /// identity is dropped, so the next reconcile reads it from Dfns instead of repeating the
    /// write against a stale copy (and meeting a 409 for a change that did happen).
    pub(super) async fn forget_if_outcome_unknown(&self, written: Option<&str>, error: &Error) {
        let (Some(id), Some(handle)) = (written, &self.handle) else {
            return;
        };
        if error.outcome_unknown() {
            self.ctx
                .inventory
                .forget(&handle.key, K::DFNS_KIND, id)
                .await;
        }
    }

    /// When to look again: where the token expires, is due for renewal, or the previous
    /// credential's grace period ends, each when it happens; sooner while work is under way.
    /// `None`: only a change wakes it (its spec, Secret, connection or namespace, or the drift
    /// watch finding its Dfns state changed).
    pub(super) fn requeue_after(&self, verdict: &Verdict) -> Option<Duration> {
        let view = self.facts.view();
        let expires_at = match &view.secret {
            SecretState::Owned(material) => material.token_expires_at,
            _ => None,
        };
        let retire_at = view
            .status
            .retiring
            .as_ref()
            .and_then(|r| r.retire_at.as_ref())
            .map(|t| t.0);
        let retire_key_at = view.status.retiring_key.as_ref().map(|r| r.retire_at.0);
        let now = jiff::Timestamp::now();
        [
            expires_at,
            renewal::next_renewal(&view),
            retire_at,
            super::key_rotation::next_time(&view),
            retire_key_at,
        ]
        .into_iter()
        .filter_map(|at| until_expiry(now, at))
        .chain(self.requeue_for(verdict))
        .min()
    }

    /// Settled resources have no timed look of their own (docs/architecture.md, "Cost rules"),
    /// except stalls whose cure nothing watched announces.
    fn requeue_for(&self, verdict: &Verdict) -> Option<Duration> {
        match verdict {
            Verdict::Ready { .. } => None,
            Verdict::Stalled { reason, .. } | Verdict::NotReady { reason, .. } => {
                (!drift::woken_by_watches(*reason)).then(|| self.ctx.resync_delay())
            }
            Verdict::Progressing {
                reason: ConditionReason::PendingApproval,
                ..
            } => Some(self.ctx.config.approval_check_interval),
            Verdict::Progressing { .. } => Some(Duration::from_secs(15)),
            Verdict::Unchanged => Some(Duration::from_secs(30)),
        }
    }

    /// Shows the failure in status (when decided on a fresh read) and as an Event, then hands it
    /// to the error policy.
    pub(super) async fn fail(&mut self, error: Error) -> Error {
        // A wait for the rate limit (or a stop) keeps the conditions as they are: writing them
        // at every throttled attempt would churn status for nothing.
        if error.waiting().is_some() {
            return error;
        }
        let verdict = self.with_time_left(error.verdict());
        // Conditional on the version the facts rest on, like every status write.
        if let Err(save_error) = self.save(verdict).await {
            tracing::warn!(error = %save_error, "could not record the failure in status");
        }
        let mut note = error.to_string();
        if let Some(left) = self.renewal_time_left() {
            note.push_str(&left);
        }
        self.event(EventType::Warning, "Failed", note).await;
        error
    }

    /// While a renewal is due or under way, how long the token still works.
    fn renewal_time_left(&self) -> Option<String> {
        renewal::failure_note(
            &self.facts.status,
            &self.facts.desired.secret_name,
            jiff::Timestamp::now(),
        )
    }

    fn with_time_left(&self, verdict: Verdict) -> Verdict {
        let Some(left) = self.renewal_time_left() else {
            return verdict;
        };
        verdict.with_message_suffix(&left)
    }

    pub(super) async fn event(&self, type_: EventType, reason: &str, note: String) {
        self.ctx
            .publish(&self.obj.object_ref(&()), type_, reason, note)
            .await;
    }

    /// The status this verdict implies for the facts.
    fn status_for(&self, verdict: &Verdict) -> CredentialStatus {
        self.status.with_verdict(self.facts.status.clone(), verdict)
    }

    /// Records the facts' status with this verdict, if the API server does not hold it already.
    /// The write carries the version the facts rest on; once the API server accepted it, that
    /// version is confirmed (`fresh`).
    pub(super) async fn save(&mut self, verdict: Verdict) -> Result<(), Error> {
        let status = self.status_for(&verdict);
        let writes = &status != self.status.persisted();
        self.status
            .save(status.clone())
            .await
            .map_err(|error| match error {
                // The resource changed since this reconcile read it (a lagging cache, another
                // writer such as a replica that leads now): nothing is recorded.
                kube::Error::Api(status) if status.code == 409 => Error::StaleResource,
                other => Error::Kube(other),
            })?;
        self.facts.status = status;
        self.fresh |= writes;
        for note in std::mem::take(&mut self.notes_owed) {
            self.event(note.type_, note.reason, note.text).await;
        }
        Ok(())
    }

    /// This resource as the owner of `rolloutRestartTargets`, as far as its saved status goes.
    fn restart_owner(&self) -> Owner<'_> {
        Owner {
            reference: self.obj.object_ref(&()),
            namespace: self.obj.meta().namespace.as_deref().unwrap_or_default(),
            targets: &self.obj.credential_spec().rollout_restart_targets,
            switched_at: self.facts.status.switched_at.as_ref().map(|t| t.0),
        }
    }

    /// Whether the last recorded verdict was Ready.
    pub(super) fn was_ready(&self) -> bool {
        self.status
            .persisted()
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    }
}

/// How long until a token that still works expires, with a second's margin so that the reconcile
/// at that moment sees it expired; `None` without an expiry or once it passed (no hot loop).
pub(super) fn until_expiry(
    now: jiff::Timestamp,
    expires_at: Option<jiff::Timestamp>,
) -> Option<Duration> {
    let left = expires_at?.duration_since(now);
    if left.is_negative() || left.is_zero() {
        return None;
    }
    Duration::try_from(left)
        .ok()
        .map(|d| d + Duration::from_secs(1))
}

/// A step's variant name, for logs: its fields may name what logs need not show.
fn variant_name(step: &impl Debug) -> String {
    let text = format!("{step:?}");
    text.split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_live_token_is_looked_at_again_just_after_it_expires() {
        assert_eq!(
            until_expiry(at(1_000), Some(at(1_090))),
            Some(Duration::from_secs(91))
        );
    }

    #[test]
    fn an_expired_or_unexpiring_token_sets_no_expiry_requeue() {
        assert_eq!(until_expiry(at(1_000), Some(at(1_000))), None);
        assert_eq!(until_expiry(at(1_000), Some(at(10))), None);
        assert_eq!(until_expiry(at(1_000), None), None);
    }
}
