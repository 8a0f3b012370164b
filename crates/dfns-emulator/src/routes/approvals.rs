//! Approval policies: a write the profile's `requireApproval` names answers 202 with a change
//! request instead of being done; a human decides through `/_emulator/change-requests/{id}/
//! approve|deny` (service accounts cannot approve in Dfns, and the emulator has no approver
//! users). Clients follow the decision with `GET /v2/policy-approvals/{approvalId}` (the change
//! request's `approvalId`) or `GET /v2/policy-approvals[?status=]`. Shapes follow the official
//! TS SDK's types for `Permissions:Assign` approvals.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{AppState, Shared};
use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult};
use crate::json::{normalized_body, parse_body};
use crate::operations as ops;
use crate::profile::ApprovalOperation;
use crate::state::model::{ChangeRequest, ChangeStatus, Identity};
use crate::state::{Caller, State as Store, not_found};
use crate::{clock, ids};

use super::{pats, permissions, service_accounts};

/// What a write that an approval policy may hold did.
pub(crate) enum Written {
    /// Done: the usual reply body.
    Done(Value),
    /// Held: the change request.
    Held(Value),
}

impl Written {
    pub fn reply(self) -> (StatusCode, Json<Value>) {
        match self {
            Self::Done(v) => (StatusCode::OK, Json(v)),
            Self::Held(v) => (StatusCode::ACCEPTED, Json(v)),
        }
    }
}

/// Records a change request for a write that passed every check, and returns its body.
pub(crate) fn hold(
    state: &mut Store,
    caller: &Caller,
    operation: ApprovalOperation,
    path_ids: Vec<String>,
    raw_body: &[u8],
    entity_id: Option<String>,
) -> Value {
    let seq = state.next_seq();
    let request = ChangeRequest {
        seq,
        id: ids::new_id("cr"),
        approval_id: ids::new_id("ap"),
        operation,
        requester: caller.clone(),
        path_ids,
        raw_body: raw_body.to_vec(),
        entity_id,
        status: ChangeStatus::Pending,
        date_created: clock::iso_now(),
        date_resolved: None,
        reason: None,
    };
    let view = change_request(state, &request);
    tracing::info!(change_request = %request.id, operation = operation.name(), "write held for approval");
    state.change_requests.insert(request.id.clone(), request);
    view
}

/// `kind` and `operationKind` of a change request.
fn kinds(operation: ApprovalOperation) -> (&'static str, &'static str) {
    match operation {
        ApprovalOperation::Assignment => ("Assignment", "Create"),
        ApprovalOperation::Revoke => ("Assignment", "Delete"),
        ApprovalOperation::ServiceAccountCreate => ("ServiceAccount", "Create"),
        ApprovalOperation::PatCreate => ("PersonalAccessToken", "Create"),
        ApprovalOperation::ServiceAccountDeactivate => ("ServiceAccount", "Update"),
    }
}

/// The operation name a policy approval's `activity.kind` carries.
fn activity_kind(operation: ApprovalOperation) -> &'static str {
    match operation {
        ApprovalOperation::Assignment => ops::PERMISSIONS_ASSIGN,
        ApprovalOperation::Revoke => ops::PERMISSIONS_REVOKE,
        ApprovalOperation::ServiceAccountCreate => ops::SA_CREATE,
        ApprovalOperation::PatCreate => ops::PATS_CREATE,
        ApprovalOperation::ServiceAccountDeactivate => ops::SA_DEACTIVATE,
    }
}

fn requester(state: &Store, caller: &Caller) -> Value {
    let token_id = match &caller.identity {
        Identity::Token(id) => Some(id.clone()),
        Identity::User(id) => state.users.get(id).and_then(|u| u.token_id.clone()),
    };
    let mut v = json!({ "userId": caller.user_id });
    if let Some(token_id) = token_id {
        v["tokenId"] = Value::String(token_id);
    }
    v
}

/// The documented change-request body: `{id, kind, operationKind, status, entityId, requester,
/// body, dateCreated, dateResolved?, approvalId}`. `entityId` is left out while unknown (a create
/// not yet applied); `body` is the request body as sent.
fn change_request(state: &Store, c: &ChangeRequest) -> Value {
    let (kind, operation_kind) = kinds(c.operation);
    let mut v = json!({
        "id": c.id,
        "kind": kind,
        "operationKind": operation_kind,
        "status": c.status.as_str(),
        "requester": requester(state, &c.requester),
        "body": normalized_body(&c.raw_body).unwrap_or(Value::Null),
        "dateCreated": c.date_created,
        "approvalId": c.approval_id,
    });
    if let Some(entity_id) = &c.entity_id {
        v["entityId"] = Value::String(entity_id.clone());
    }
    if let Some(date) = &c.date_resolved {
        v["dateResolved"] = Value::String(date.clone());
    }
    v
}

/// A policy approval: `status` `Pending`, `Approved` or `Denied`, the approver's decision with
/// its reason, and the change request it decides (`activity.changeRequest`).
fn approval(state: &Store, c: &ChangeRequest) -> Value {
    let status = match c.status {
        ChangeStatus::Pending => "Pending",
        ChangeStatus::Applied | ChangeStatus::Failed => "Approved",
        ChangeStatus::Rejected => "Denied",
    };
    let decisions: Vec<Value> = match (&c.date_resolved, c.status) {
        (Some(date), ChangeStatus::Rejected) => {
            vec![json!({ "userId": APPROVER, "date": date, "value": "Denied", "reason": c.reason })]
        }
        (Some(date), _) => vec![json!({ "userId": APPROVER, "date": date, "value": "Approved" })],
        (None, _) => Vec::new(),
    };
    let mut v = json!({
        "id": c.approval_id,
        "activity": {
            "kind": activity_kind(c.operation),
            "changeRequest": change_request(state, c),
        },
        "status": status,
        "initiatorId": c.requester.user_id,
        "dateCreated": c.date_created,
        "dateUpdated": c.date_resolved.as_ref().unwrap_or(&c.date_created),
        "policyEvaluations": [{
            "policyId": POLICY_ID,
            "triggered": true,
            "reason": format!("{} requires approval", c.operation.name()),
        }],
        "decisions": decisions,
    });
    if let Some(date) = &c.date_resolved {
        v["dateResolved"] = Value::String(date.clone());
    }
    v
}

/// Who decides in the emulator: the test control, standing for a human approver.
const APPROVER: &str = "emulator-approver";
/// The one policy the emulator models: the profile's `requireApproval`.
const POLICY_ID: &str = "po-emula-torpo-licyrequireappr";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ApprovalQuery {
    #[serde(default)]
    status: Option<String>,
}

/// `GET /v2/policy-approvals[?status=Pending|Approved|Denied]`, oldest first.
pub(crate) async fn list(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    Query(q): Query<ApprovalQuery>,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    state.require(&caller, ops::POLICIES_APPROVALS_READ)?;
    let mut requests: Vec<&ChangeRequest> = state.change_requests.values().collect();
    requests.sort_by_key(|c| c.seq);
    let items: Vec<Value> = requests
        .into_iter()
        .map(|c| approval(&state, c))
        .filter(|a| q.status.as_deref().is_none_or(|s| a["status"] == s))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET /v2/policy-approvals/{approvalId}`.
pub(crate) async fn get(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    state.require(&caller, ops::POLICIES_APPROVALS_READ)?;
    let c = state
        .change_requests
        .values()
        .find(|c| c.approval_id == id)
        .ok_or_else(|| not_found("policy approval", &id))?;
    Ok(Json(approval(&state, c)))
}

/// Marks a pending change request decided; a second decision is a 409.
fn decide(
    app: &AppState,
    id: &str,
    status: ChangeStatus,
    reason: Option<String>,
) -> ApiResult<ChangeRequest> {
    let mut state = app.store.lock();
    let c = state
        .change_requests
        .get_mut(id)
        .ok_or_else(|| not_found("change request", id))?;
    if c.status != ChangeStatus::Pending {
        return Err(ApiError::conflict(format!(
            "change request {id} is already {}",
            c.status.as_str()
        )));
    }
    c.status = status;
    c.reason = reason;
    c.date_resolved = Some(clock::iso_now());
    Ok(c.clone())
}

/// Does an approved write as its requester; returns the id of the entity it created or changed.
fn perform(app: &AppState, c: &ChangeRequest) -> ApiResult<String> {
    let who = &c.requester;
    let done = |written: Written| match written {
        Written::Done(v) => Ok(v),
        Written::Held(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "an approved write was held again",
        )),
    };
    let id_at = |v: &Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match c.operation {
        ApprovalOperation::ServiceAccountCreate => {
            let v = done(service_accounts::write_create(
                app,
                who,
                &c.raw_body,
                false,
            )?)?;
            Ok(id_at(&v, "/userInfo/userId"))
        }
        ApprovalOperation::PatCreate => {
            let v = done(pats::write_create(app, who, &c.raw_body, false)?)?;
            Ok(id_at(&v, "/tokenId"))
        }
        ApprovalOperation::Assignment => {
            let permission_id = c.path_ids.first().map(String::as_str).unwrap_or_default();
            let v = done(permissions::write_assign(
                app,
                who,
                permission_id,
                &c.raw_body,
                false,
            )?)?;
            Ok(id_at(&v, "/id"))
        }
        ApprovalOperation::ServiceAccountDeactivate => {
            let id = c.path_ids.first().cloned().unwrap_or_default();
            service_accounts::write_activation(app, who, &id, false, false)?;
            Ok(id)
        }
        ApprovalOperation::Revoke => {
            let [permission_id, assignment_id] = c.path_ids.as_slice() else {
                return Err(ApiError::bad_request("revoke change request lacks its ids"));
            };
            done(permissions::write_revoke(
                app,
                who,
                permission_id,
                assignment_id,
                &c.raw_body,
                false,
            )?)?;
            Ok(assignment_id.clone())
        }
    }
}

/// `POST /_emulator/change-requests/{id}/approve`: does the write as the requester would have.
/// An approved create's access token is signed but shown to no one: Dfns keeps no copy of
/// tokens, and the requester's call ended with the 202.
pub(crate) async fn approve(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let request = decide(&app, &id, ChangeStatus::Applied, None)?;
    let outcome = perform(&app, &request);
    let mut state = app.store.lock();
    let c = state
        .change_requests
        .get_mut(&id)
        .ok_or_else(|| not_found("change request", &id))?;
    match outcome {
        Ok(entity_id) => c.entity_id = Some(entity_id),
        Err(e) => {
            tracing::info!(change_request = %id, error = %e, "approved write failed");
            c.status = ChangeStatus::Failed;
            c.reason = Some(e.message);
        }
    }
    let c = c.clone();
    Ok(Json(change_request(&state, &c)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct DenyBody {
    reason: Option<String>,
}

/// `POST /_emulator/change-requests/{id}/deny` with an optional `{"reason"}`.
pub(crate) async fn deny(
    State(app): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: DenyBody = parse_body(&body)?;
    let request = decide(&app, &id, ChangeStatus::Rejected, body.reason)?;
    tracing::info!(change_request = %id, "change request denied");
    let state = app.store.lock();
    Ok(Json(change_request(&state, &request)))
}
