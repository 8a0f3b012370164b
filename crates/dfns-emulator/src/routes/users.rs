//! `PUT /auth/users/{userId}/activate|deactivate`: organization users. Deactivating a user
//! stops its PATs (they authenticate only while their user is active).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use crate::app::Shared;
use crate::auth::Signed;
use crate::error::{ApiError, ApiResult};
use crate::json::parse_body;
use crate::operations as ops;
use crate::state::not_found;

use super::service_accounts::{DeactivateBody, EmptyBody};
use super::views;

pub(crate) async fn activate(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let _: EmptyBody = parse_body(&signed.body)?;
    set_active(&app, &signed, &id, true)
}

pub(crate) async fn deactivate(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let _: DeactivateBody = parse_body(&signed.body)?;
    set_active(&app, &signed, &id, false)
}

fn set_active(app: &Shared, signed: &Signed, id: &str, active: bool) -> ApiResult<Json<Value>> {
    let mut state = app.store.lock();
    state.require(
        &signed.caller,
        if active {
            ops::USERS_ACTIVATE
        } else {
            ops::USERS_DEACTIVATE
        },
    )?;
    if !active && signed.caller.user_id == id {
        return Err(ApiError::bad_request("a user cannot deactivate itself"));
    }
    let user = state
        .users
        .get_mut(id)
        .filter(|u| !u.is_service_account && !u.archived)
        .ok_or_else(|| not_found("user", id))?;
    user.is_active = active;
    tracing::info!(user = %id, active, "user activation changed");
    let user = state.users.get(id).ok_or_else(|| not_found("user", id))?;
    Ok(Json(views::user_info(&state, user)))
}
