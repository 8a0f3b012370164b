//! Gathering the facts a reconcile decides on: the connection and its rules, the Secret, and what
//! Dfns shows. Reads only.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Api, ResourceExt};

use super::facts::{Candidate, DfnsFacts, Facts};
use super::observed::{ConnectionView, Desired, Guard};
use super::renewal::{self, RenewalPolicy};
use super::resource::{CredentialResource, display_name};
use super::rules;
use crate::api::{
    ConditionReason, ConnectionKind, PendingCreate, RENEW_ANNOTATION, ROTATE_KEY_ANNOTATION,
    Rotation,
};
use crate::controller::context::Context;
use crate::controller::dfns_clients::{ConnectionHandle, ConnectionKey, ConnectionObject};
use crate::controller::error::Error;
use crate::controller::guard::{ConnectionFacts, Request, judge, selector_matches};
use crate::controller::secret_layout;
use dfns_client::{Identity, IdentityKind};

/// The facts of one reconcile, and the connection they were read through.
pub struct Observation {
    pub facts: Facts,
    pub connection: Option<ConnectionObject>,
    /// A client for the connection, where its rules allow calling Dfns.
    pub handle: Option<Arc<ConnectionHandle>>,
}

/// The connection a resource names.
pub fn connection_key<K: CredentialResource>(obj: &K) -> ConnectionKey {
    let reference = obj
        .credential_spec()
        .connection_ref
        .clone()
        .unwrap_or_default();
    ConnectionKey {
        kind: reference.kind,
        namespace: (reference.kind == ConnectionKind::DfnsConnection)
            .then(|| obj.namespace().unwrap_or_default()),
        name: reference.name,
    }
}

pub async fn observe<K: CredentialResource>(
    obj: &K,
    ctx: &Context,
    deleting: bool,
) -> Result<Observation, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let uid = obj.uid().unwrap_or_default();
    let spec = obj.credential_spec();
    let status = obj.credential_status().cloned().unwrap_or_default();
    let desired = Desired {
        display_name: display_name(obj),
        permission_id: spec.permission_id.clone(),
        active: spec.active,
        deletion_policy: spec.deletion_policy,
        secret_name: spec
            .secret
            .as_ref()
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| name.clone()),
    };

    let key = connection_key(obj);
    let connection = ctx.dfns_clients.fetch(&key).await?;
    let namespace_labels = match connection
        .as_ref()
        .and_then(|c| c.namespace_selector.as_ref())
    {
        Some(_) => Api::<Namespace>::all(ctx.kube.clone())
            .get(&namespace)
            .await?
            .labels()
            .clone(),
        None => BTreeMap::new(),
    };
    let recorded_id = status.recorded_id().map(str::to_string);
    let facts = connection.as_ref().map(|c| ConnectionFacts {
        display: c.key.to_string(),
        spec: &c.spec,
        status: c.status.as_ref(),
        namespace_selector: c.namespace_selector.as_ref(),
    });
    let is_pat = K::DFNS_KIND == dfns_client::IdentityKind::PersonalAccessToken;
    let request = Request {
        namespace_labels: &namespace_labels,
        permission_id: desired.permission_id.as_deref(),
        is_pat,
        needs_create: recorded_id.is_none(),
        deletion_policy: desired.deletion_policy,
        lifetime_secs: lifetime_secs(spec.days_valid, obj.seconds_valid()),
    };
    let mut guard = judge(facts.as_ref(), &key.to_string(), &request);
    // A connection moved to a host that is not allowed stalls its credentials at once, whatever
    // its (possibly stale) Ready says: a credential kept Ready would hide that its connection is
    // now unusable, and nothing may be sent there.
    if let Some(c) = &connection
        && !matches!(guard, Guard::Refused { .. })
        && let Err(e) = ctx.dfns_clients.check_api_host(c)
    {
        guard = Guard::Refused {
            reason: ConditionReason::ApiHostNotAllowed,
            message: e.to_string(),
        };
    }
    let view = connection.as_ref().map(|c| ConnectionView {
        display: c.key.to_string(),
        api_url: c.spec.api_url.clone(),
        org_id: c.org_id(),
        namespace_allowed: c
            .namespace_selector
            .as_ref()
            .is_none_or(|s| selector_matches(s, &namespace_labels)),
        allowed_permission_ids: c.spec.allowed_permission_ids.clone(),
        roleless_allowed: !is_pat || c.spec.allow_unscoped_tokens == Some(true),
        limits: c.spec.credential_limits.clone().unwrap_or_default(),
    });

    // Cleanup, and the enforcement of narrowed rules on a credential already held, may use the
    // connection even where the rules now refuse new requests; a connection that moved to another
    // endpoint or organization is never sent this resource's ids, and a host outside
    // `--allowed-api-hosts` is sent nothing at all.
    let moved = view
        .as_ref()
        .and_then(|v| rules::moved(&status, v))
        .is_some();
    let host_refused = matches!(
        guard,
        Guard::Refused {
            reason: ConditionReason::ApiHostNotAllowed,
            ..
        }
    );
    let may_call_dfns = !moved
        && !host_refused
        && (matches!(guard, Guard::Allowed)
            || ((deleting || recorded_id.is_some()) && matches!(guard, Guard::Refused { .. })));
    let mut handle = None;
    if may_call_dfns && let Some(c) = &connection {
        match ctx.dfns_clients.client_for(c).await {
            Ok(h) => handle = Some(h),
            Err(e) => {
                guard = Guard::ConnectionUnavailable {
                    reason: ConditionReason::ConnectionNotReady,
                    message: e.to_string(),
                }
            }
        }
    }

    let secrets = Api::<Secret>::namespaced(ctx.kube.clone(), &namespace);
    // Not read where the owned-Secret watch shows none (`owned_secrets.rs`): a create that meets
    // one after all is refused and decides again on a fresh read.
    let read = |name: String| {
        let secrets = secrets.clone();
        let absent = ctx.owned_secrets.known_absent(&namespace, &name);
        async move {
            match absent {
                true => Ok(None),
                false => secrets.get_opt(&name).await,
            }
        }
    };
    let secret = read(desired.secret_name.clone()).await?;
    // A staging Secret exists only while a renewal or key rotation is under way.
    let staging = if status.pending_renewal.is_some() || status.pending_key_rotation.is_some() {
        read(secret_layout::staging_name(&uid)).await?
    } else {
        None
    };
    let renewal_candidates = match (
        &handle,
        status
            .pending_renewal
            .as_ref()
            .and_then(|r| r.pending_create.as_ref()),
    ) {
        (Some(h), Some(pending)) => {
            find_candidates(ctx, h, K::DFNS_KIND, &uid, &desired, pending).await?
        }
        _ => Vec::new(),
    };
    let dfns = match (&handle, &recorded_id, &status.pending_create) {
        (Some(h), Some(id), _) => {
            DfnsFacts::Recorded(ctx.inventory.recorded(h, K::DFNS_KIND, id).await?)
        }
        (Some(h), None, Some(pending)) => DfnsFacts::Candidates(
            find_candidates(ctx, h, K::DFNS_KIND, &uid, &desired, pending).await?,
        ),
        _ => DfnsFacts::NotAsked,
    };
    // The approval of a held write, while undecided and for the spec it was sent for; one read
    // per reconcile, and a pending one requeues at `approval_check_interval`.
    let generation = obj.meta().generation.unwrap_or_default();
    let approval = match (&handle, &status.pending_approval) {
        (Some(h), Some(pending))
            if pending.outcome.is_none() && pending.generation == generation =>
        {
            match &pending.approval_id {
                Some(id) => Some(h.client.approval(id).await?),
                None => None,
            }
        }
        _ => None,
    };

    Ok(Observation {
        facts: Facts {
            kind: K::DFNS_KIND,
            generation,
            uid,
            desired,
            guard,
            status,
            secret,
            dfns,
            approval,
            sealer: ctx.sealer.clone(),
            connection: view,
            now: jiff::Timestamp::now(),
            staging,
            renewal_candidates,
            renew_request: obj.annotations().get(RENEW_ANNOTATION).cloned(),
            rotate_key_request: obj.annotations().get(ROTATE_KEY_ANNOTATION).cloned(),
            renewal_policy: renewal_policy(spec.rotation.as_ref())?,
        },
        connection,
        handle,
    })
}

/// Identities that may stem from a pending create: its key, this resource's `externalId`, or
/// nothing to tell (`may_stem_from`).
async fn find_candidates(
    ctx: &Context,
    handle: &ConnectionHandle,
    kind: IdentityKind,
    uid: &str,
    desired: &Desired,
    pending: &PendingCreate,
) -> Result<Vec<Candidate>, Error> {
    let fingerprint = pending.public_key_sha256.as_str();
    let found = ctx
        .inventory
        .candidates(handle, kind, uid, |c| {
            c.public_key_sha256().as_deref() == Some(fingerprint)
                || may_stem_from(c, &desired.display_name, pending)
        })
        .await?;
    Ok(found
        .into_iter()
        .map(|identity| Candidate {
            identity,
            archived: false,
        })
        .collect())
}

/// `spec.rotation`, parsed; the schema admits only durations this parses.
fn renewal_policy(rotation: Option<&Rotation>) -> Result<RenewalPolicy, Error> {
    let parse = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(renewal::parse_duration)
            .transpose()
            .map_err(|e| Error::InvalidSpec(format!("spec.rotation.{field}: {e}")))
    };
    let defaults = RenewalPolicy::default();
    let Some(rotation) = rotation else {
        return Ok(defaults);
    };
    Ok(RenewalPolicy {
        renew_before: parse("renewBefore", &rotation.renew_before)?,
        grace_period: parse("gracePeriod", &rotation.grace_period)?
            .unwrap_or(defaults.grace_period),
        key_rotation_interval: parse("keyRotationInterval", &rotation.key_rotation_interval)?,
        on_key_rotation_refused: rotation.on_key_rotation_refused,
    })
}

/// An identity Dfns shows without its key (some revisions answer `publicKey: ""`) and without
/// `externalId` that has this resource's display name and was created since the pending create
/// began: it may be that create's result, but nothing proves it. The planner reports such
/// identities instead of retiring or ignoring them.
fn may_stem_from(identity: &Identity, display_name: &str, pending: &PendingCreate) -> bool {
    // Clock skew between Dfns and the cluster.
    const SKEW: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);
    identity.public_key_sha256().is_none()
        && identity.external_id.is_none()
        && !pending.preexisting.contains(&identity.id)
        && identity.name.as_deref() == Some(display_name)
        && identity
            .date_created
            .is_none_or(|created| created >= pending.started_at.0 - SKEW)
}

/// The validity a resource asks for, in seconds.
fn lifetime_secs(days_valid: Option<u32>, seconds_valid: Option<u64>) -> Option<u64> {
    seconds_valid.or(days_valid.map(|d| u64::from(d) * 86_400))
}
