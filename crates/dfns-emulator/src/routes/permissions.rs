//! `/permissions`: list, get, create; assign, revoke and list assignments.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{AppState, Shared};
use crate::auth::{Authenticated, Signed};
use crate::error::{ApiError, ApiResult};
use crate::json::parse_body;
use crate::operations as ops;
use crate::profile::ApprovalOperation;
use crate::state::model::Permission;
use crate::state::{Caller, not_found};
use crate::{clock, ids};

use super::approvals::{self, Written};
use super::{minting, views};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PageQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    pagination_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    name: String,
    operations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AssignBody {
    identity_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForceQuery {
    /// Documented as "skip approval"; the reference does not say who may, so the emulator
    /// lets no one: a revoke under an approval policy is held whatever `force` says.
    #[serde(default)]
    #[allow(dead_code)]
    force: Option<bool>,
}

pub(crate) async fn list(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    state.require(&caller, ops::PERMISSIONS_READ)?;
    let mut perms: Vec<&Permission> = state.permissions.values().collect();
    perms.sort_by_key(|p| p.seq);
    let items = perms.into_iter().map(views::permission).collect();
    Ok(Json(views::page(
        items,
        q.limit,
        q.pagination_token.as_deref(),
    )))
}

pub(crate) async fn get(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    state.require(&caller, ops::PERMISSIONS_READ)?;
    let p = state
        .permissions
        .get(&id)
        .ok_or_else(|| not_found("permission", &id))?;
    Ok(Json(views::permission(p)))
}

pub(crate) async fn create(State(app): State<Shared>, signed: Signed) -> ApiResult<Json<Value>> {
    let body: CreateBody = parse_body(&signed.body)?;
    if body.name.trim().is_empty() || body.name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    if body.operations.is_empty() {
        return Err(ApiError::bad_request(
            "operations must list at least one operation",
        ));
    }
    if let Some(unknown) = body.operations.iter().find(|op| !ops::is_known(op)) {
        return Err(
            ApiError::bad_request(format!("unknown operation {unknown:?}"))
                .with_details(json!({ "knownOperations": ops::ALL })),
        );
    }
    let mut state = app.store.lock();
    state.require(&signed.caller, ops::PERMISSIONS_CREATE)?;
    let id = ids::new_id("pm");
    let now = clock::iso_now();
    let seq = state.next_seq();
    let mut operations = body.operations;
    operations.dedup();
    let permission = Permission {
        seq,
        id: id.clone(),
        name: body.name,
        operations,
        is_immutable: false,
        is_archived: false,
        date_created: now.clone(),
        date_updated: now,
    };
    let view = views::permission(&permission);
    state.permissions.insert(id, permission);
    Ok(Json(view))
}

pub(crate) async fn assign(
    State(app): State<Shared>,
    Path(permission_id): Path<String>,
    signed: Signed,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok(write_assign(&app, &signed.caller, &permission_id, &signed.body, true)?.reply())
}

/// Assigns `permission_id` to the body's identity; `may_hold`: an approval policy may hold it
/// back (not when it runs because its change request was approved).
pub(crate) fn write_assign(
    app: &AppState,
    caller: &Caller,
    permission_id: &str,
    raw: &[u8],
    may_hold: bool,
) -> ApiResult<Written> {
    let body: AssignBody = parse_body(raw)?;
    let mut state = app.store.lock();
    state.require(caller, ops::PERMISSIONS_ASSIGN)?;
    let identity_exists = state
        .users
        .get(&body.identity_id)
        .is_some_and(|u| !u.archived)
        || state
            .tokens
            .get(&body.identity_id)
            .is_some_and(|t| !t.archived);
    if !identity_exists {
        return Err(not_found("identity", &body.identity_id));
    }
    minting::check_permission(&state, permission_id)?;
    if may_hold
        && state
            .profile
            .requires_approval(ApprovalOperation::Assignment)
    {
        let request = approvals::hold(
            &mut state,
            caller,
            ApprovalOperation::Assignment,
            vec![permission_id.to_owned()],
            raw,
            None,
        );
        return Ok(Written::Held(request));
    }
    let id = state.assign(permission_id, &body.identity_id, false)?;
    let a = state
        .assignments
        .get(&id)
        .ok_or_else(|| not_found("assignment", &id))?;
    tracing::info!(permission = %permission_id, identity = %body.identity_id, "permission assigned");
    Ok(Written::Done(views::assignment(a)))
}

pub(crate) async fn revoke(
    State(app): State<Shared>,
    Path((permission_id, assignment_id)): Path<(String, String)>,
    Query(_force): Query<ForceQuery>,
    signed: Signed,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let written = write_revoke(
        &app,
        &signed.caller,
        &permission_id,
        &assignment_id,
        &signed.body,
        true,
    )?;
    Ok(written.reply())
}

/// Revokes one assignment of `permission_id`; `may_hold` as for [`write_assign`].
pub(crate) fn write_revoke(
    app: &AppState,
    caller: &Caller,
    permission_id: &str,
    assignment_id: &str,
    raw: &[u8],
    may_hold: bool,
) -> ApiResult<Written> {
    let mut state = app.store.lock();
    state.require(caller, ops::PERMISSIONS_REVOKE)?;
    let a = state
        .assignments
        .get(assignment_id)
        .filter(|a| a.permission_id == permission_id)
        .ok_or_else(|| not_found("assignment", assignment_id))?;
    if a.is_immutable {
        return Err(ApiError::forbidden(
            "this assignment is immutable and cannot be revoked",
        ));
    }
    if may_hold && state.profile.requires_approval(ApprovalOperation::Revoke) {
        let request = approvals::hold(
            &mut state,
            caller,
            ApprovalOperation::Revoke,
            vec![permission_id.to_owned(), assignment_id.to_owned()],
            raw,
            Some(assignment_id.to_owned()),
        );
        return Ok(Written::Held(request));
    }
    state.assignments.remove(assignment_id);
    tracing::info!(permission = %permission_id, assignment = %assignment_id, "assignment revoked");
    Ok(Written::Done(json!({})))
}

pub(crate) async fn list_assignments(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    Path(permission_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    state.require(&caller, ops::PERMISSIONS_ASSIGNMENTS_READ)?;
    if !state.permissions.contains_key(&permission_id) {
        return Err(not_found("permission", &permission_id));
    }
    let mut assignments: Vec<_> = state
        .assignments
        .values()
        .filter(|a| a.permission_id == permission_id)
        .collect();
    assignments.sort_by_key(|a| a.seq);
    let items = assignments.into_iter().map(views::assignment).collect();
    Ok(Json(views::page(
        items,
        q.limit,
        q.pagination_token.as_deref(),
    )))
}
