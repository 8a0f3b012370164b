//! Restarting a credential resource's `rolloutRestartTargets` once its Secret switched
//! (docs/architecture.md, "Workload restarts"): the reads and patches around the pure decision
//! in `restart.rs`. It never fails the credential: a missing target or a refused patch is a
//! Warning Event, and nothing is retried sooner than [`RETRY_AFTER_ERROR`].

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use super::context::Context;
use super::restart::{self, Decision, Due, RESTARTED_AT_ANNOTATION, Target};
use super::status::FIELD_MANAGER;
use crate::api::{RolloutRestartKind, RolloutRestartTarget};

/// Whether and when targets are restarted (`--rollout-restarts`, `--restart-debounce`).
#[derive(Clone, Copy, Debug)]
pub struct RolloutRestarts {
    /// Off when the operator may not patch workloads (the chart's `rbac.rolloutRestart: false`):
    /// resources naming targets are then told so with a Warning Event.
    pub enabled: bool,
    /// Switches within this window after the first make one restart per target.
    pub debounce: Duration,
}

impl Default for RolloutRestarts {
    fn default() -> Self {
        Self {
            enabled: true,
            debounce: Duration::from_secs(10),
        }
    }
}

/// Reads and patches per target: another resource restarting the same target at once makes the
/// patch conflict, and the next read shows its restart.
const ATTEMPTS: usize = 3;
/// After an error that may pass (a timeout, a server error, conflicts every time).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(30);

/// A credential resource whose targets may be owed a restart.
pub struct Owner<'a> {
    /// Where the Events go.
    pub reference: ObjectReference,
    pub namespace: &'a str,
    pub targets: &'a [RolloutRestartTarget],
    /// `status.switchedAt`: when the Secret last switched to another token or key.
    pub switched_at: Option<Timestamp>,
}

/// Restarts the targets that are owed a restart; when to look again, if before the resync: the
/// end of the debounce window, or a while after an error that may pass.
pub async fn restart_targets(ctx: &Context, owner: &Owner<'_>) -> Option<Duration> {
    if owner.targets.is_empty() {
        return None;
    }
    let settings = ctx.config.rollout_restarts;
    if !settings.enabled {
        let note = format!(
            "rolloutRestartTargets ({}) are not restarted: this operator runs with rollout \
             restarts disabled (--rollout-restarts=false; Helm: rbac.rolloutRestart=false); \
             restart them yourself after the Secret switches, or enable restarts",
            names(owner.targets)
        );
        ctx.publish(
            &owner.reference,
            EventType::Warning,
            "RolloutRestartDisabled",
            note,
        )
        .await;
        return None;
    }
    let switched_at = owner.switched_at?;
    let now = Timestamp::now();
    if let Due::At(end) = restart::due(switched_at, now, settings.debounce) {
        return Some(Duration::try_from(end.duration_since(now)).unwrap_or_default());
    }
    let mut again: Option<Duration> = None;
    for target in owner.targets {
        if let Some(after) = restart_one(ctx, owner, target, switched_at).await {
            again = Some(again.map_or(after, |a| a.min(after)));
        }
    }
    again
}

async fn restart_one(
    ctx: &Context,
    owner: &Owner<'_>,
    target: &RolloutRestartTarget,
    switched_at: Timestamp,
) -> Option<Duration> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.kube.clone(),
        owner.namespace,
        &api_resource(target.kind),
    );
    for _ in 0..ATTEMPTS {
        let read = match api.get_opt(&target.name).await {
            Ok(read) => read,
            Err(error) => return report_error(ctx, owner, target, "get", &error).await,
        };
        let observed = match &read {
            None => Target::Missing,
            Some(object) => Target::Found {
                restarted_at: template_annotation(object),
                created_at: object.metadata.creation_timestamp.as_ref().map(|t| t.0),
            },
        };
        let restarted_at = match restart::decide(switched_at, Timestamp::now(), &observed) {
            Decision::Covered => return None,
            Decision::Missing => {
                report_missing(ctx, owner, target, switched_at).await;
                return None;
            }
            Decision::Restart { restarted_at } => restarted_at,
        };
        // The resourceVersion makes the patch conditional: of two resources restarting the same
        // target at once, one wins, and the other reads its value on the next attempt.
        let patch = json!({
            "metadata": { "resourceVersion": read.as_ref().and_then(|o| o.resource_version()) },
            "spec": { "template": { "metadata": { "annotations": {
                RESTARTED_AT_ANNOTATION: restarted_at
            } } } },
        });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match api
            .patch(&target.name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                report_restarted(ctx, owner, target, switched_at, &restarted_at).await;
                return None;
            }
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => continue,
            Err(error) => return report_error(ctx, owner, target, "patch", &error).await,
        }
    }
    let note = format!(
        "{} {} changed at every attempt to restart it; trying again in {} s",
        kind_name(target.kind),
        target.name,
        RETRY_AFTER_ERROR.as_secs()
    );
    ctx.publish(
        &owner.reference,
        EventType::Warning,
        "RolloutRestartFailed",
        note,
    )
    .await;
    Some(RETRY_AFTER_ERROR)
}

/// The pod template's `dfns.io/restartedAt`, if any.
fn template_annotation(object: &DynamicObject) -> Option<&str> {
    object.data["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION].as_str()
}

async fn report_restarted(
    ctx: &Context,
    owner: &Owner<'_>,
    target: &RolloutRestartTarget,
    switched_at: Timestamp,
    restarted_at: &str,
) {
    let kind = kind_name(target.kind);
    tracing::info!(
        namespace = owner.namespace,
        target_kind = kind,
        target = target.name,
        %switched_at,
        restarted_at,
        "restarted a rollout restart target"
    );
    ctx.metrics.rollout_restarted(kind);
    let note = format!(
        "restarted {kind} {} ({RESTARTED_AT_ANNOTATION}={restarted_at}) after the Secret switched \
         at {switched_at}",
        target.name
    );
    ctx.publish(
        &owner.reference,
        EventType::Normal,
        "RolloutRestarted",
        note,
    )
    .await;
}

async fn report_missing(
    ctx: &Context,
    owner: &Owner<'_>,
    target: &RolloutRestartTarget,
    switched_at: Timestamp,
) {
    let note = format!(
        "{} {} (rolloutRestartTargets) does not exist in namespace {}, so it was not restarted \
         after the Secret switched at {switched_at}; correct the name or remove it from \
         spec.rolloutRestartTargets",
        kind_name(target.kind),
        target.name,
        owner.namespace
    );
    ctx.publish(
        &owner.reference,
        EventType::Warning,
        "RolloutRestartTargetMissing",
        note,
    )
    .await;
}

/// A refusal (RBAC, an admission webhook) waits for a person: the next reconcile tries again. An
/// error that may pass is tried again after [`RETRY_AFTER_ERROR`].
async fn report_error(
    ctx: &Context,
    owner: &Owner<'_>,
    target: &RolloutRestartTarget,
    verb: &str,
    error: &kube::Error,
) -> Option<Duration> {
    let kind = kind_name(target.kind);
    let refused = matches!(error, kube::Error::Api(status) if status.code == 403);
    let (reason, advice, again) = if refused {
        let resource = api_resource(target.kind).plural;
        (
            "RolloutRestartRefused",
            format!(
                "grant the operator get and patch on apps {resource} in namespace {} (Helm: \
                 rbac.rolloutRestart=true), or restart it yourself",
                owner.namespace
            ),
            None,
        )
    } else {
        (
            "RolloutRestartFailed",
            format!("trying again in {} s", RETRY_AFTER_ERROR.as_secs()),
            Some(RETRY_AFTER_ERROR),
        )
    };
    tracing::warn!(
        namespace = owner.namespace,
        target_kind = kind,
        target = target.name,
        %error,
        "could not restart a rollout restart target"
    );
    let note = format!(
        "could not {verb} {kind} {} to restart it after the Secret switched: {error}; {advice}",
        target.name
    );
    ctx.publish(&owner.reference, EventType::Warning, reason, note)
        .await;
    again
}

fn api_resource(kind: RolloutRestartKind) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind_name(kind)))
}

fn kind_name(kind: RolloutRestartKind) -> &'static str {
    match kind {
        RolloutRestartKind::Deployment => "Deployment",
        RolloutRestartKind::StatefulSet => "StatefulSet",
        RolloutRestartKind::DaemonSet => "DaemonSet",
    }
}

fn names(targets: &[RolloutRestartTarget]) -> String {
    targets
        .iter()
        .map(|t| format!("{} {}", kind_name(t.kind), t.name))
        .collect::<Vec<_>>()
        .join(", ")
}
