//! Gathering what a reconcile needs to decide: the connection and its rules, the Secret, and what
//! Dfns shows. Reads only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Api, ResourceExt};

use super::observed::{Desired, DfnsObject, DfnsView, Guard, Observed};
use super::resource::CredentialResource;
use crate::api::{ConditionReason, ConnectionKind};
use crate::controller::dfns_clients::{ConnectionHandle, ConnectionKey, ConnectionObject};
use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::guard::{ConnectionFacts, Request, judge};
use crate::controller::secret_layout::classify;
use dfns_client::Identity;

/// Everything one reconcile observed, with the objects behind it.
pub struct Observation {
    pub observed: Observed,
    pub connection: Option<ConnectionObject>,
    pub handle: Option<Arc<ConnectionHandle>>,
    pub secret: Option<Secret>,
    /// Full Dfns objects behind `observed.dfns`, by id.
    pub dfns_objects: HashMap<String, Identity>,
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
        display_name: spec
            .display_name
            .clone()
            .unwrap_or_else(|| format!("{namespace}-{name}")),
        permission_id: spec.permission_id.clone(),
        active: spec.active,
        deletion_policy: spec.deletion_policy,
        secret_name: spec
            .secret
            .as_ref()
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| name.clone()),
    };

    let reference = spec.connection_ref.clone().unwrap_or_default();
    let key = ConnectionKey {
        kind: reference.kind,
        namespace: (reference.kind == ConnectionKind::DfnsConnection).then(|| namespace.clone()),
        name: reference.name,
    };
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
    // The Dfns id of the recorded credential: a service account's id, or a PAT's token id.
    let recorded_id = status
        .service_account_id
        .clone()
        .or_else(|| status.token_id.clone());
    let facts = connection.as_ref().map(|c| ConnectionFacts {
        display: c.key.to_string(),
        spec: &c.spec,
        status: c.status.as_ref(),
        namespace_selector: c.namespace_selector.as_ref(),
    });
    let request = Request {
        namespace_labels: &namespace_labels,
        permission_id: desired.permission_id.as_deref(),
        is_pat: K::DFNS_KIND == dfns_client::IdentityKind::PersonalAccessToken,
        needs_create: recorded_id.is_none(),
    };
    let mut guard = judge(facts.as_ref(), &key.to_string(), &request);

    // Cleanup may use the connection even where the rules now refuse new requests.
    let may_call_dfns =
        matches!(guard, Guard::Allowed) || (deleting && matches!(guard, Guard::Refused { .. }));
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

    let secret = Api::<Secret>::namespaced(ctx.kube.clone(), &namespace)
        .get_opt(&desired.secret_name)
        .await?;
    let secret_state = classify(secret.as_ref(), &uid);

    let mut dfns_objects = HashMap::new();
    let dfns = match (&handle, &recorded_id, &status.pending_create) {
        (Some(h), Some(id), _) => {
            let found = ctx.inventory.recorded(h, K::DFNS_KIND, id).await?;
            DfnsView::Recorded(found.map(|c| keep(&mut dfns_objects, c)))
        }
        (Some(h), None, Some(pending)) => {
            let fingerprint = pending.public_key_sha256.clone();
            let found = ctx
                .inventory
                .candidates(h, K::DFNS_KIND, &uid, |c| {
                    c.public_key_sha256().as_deref() == Some(fingerprint.as_str())
                })
                .await?;
            DfnsView::Candidates(
                found
                    .into_iter()
                    .map(|c| keep(&mut dfns_objects, c))
                    .collect(),
            )
        }
        _ => DfnsView::NotAsked,
    };

    Ok(Observation {
        observed: Observed {
            generation: obj.meta().generation.unwrap_or_default(),
            uid,
            desired,
            status,
            secret: secret_state,
            dfns,
            guard,
        },
        connection,
        handle,
        secret,
        dfns_objects,
    })
}

fn keep(objects: &mut HashMap<String, Identity>, credential: Identity) -> DfnsObject {
    let view = view_of(&credential);
    objects.insert(credential.id.clone(), credential);
    view
}

/// The plan's view of a Dfns object.
pub fn view_of(c: &Identity) -> DfnsObject {
    DfnsObject {
        id: c.id.clone(),
        credential_id: c.cred_id.clone().unwrap_or_default(),
        name: c.name.clone().unwrap_or_default(),
        active: c.is_active,
        archived: false, // Dfns lists and GETs do not return archived objects
        key_fingerprint: c.public_key_sha256(),
        external_id: c.external_id.clone(),
        assignments: c
            .permission_assignments
            .iter()
            .map(|a| (a.permission_id.clone(), a.assignment_id.clone()))
            .collect(),
    }
}
