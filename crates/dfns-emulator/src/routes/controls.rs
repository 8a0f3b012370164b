//! Test controls under `/_emulator/` — never mixed with Dfns paths, never rate limited or
//! fault-injected, and unauthenticated: the emulator is a local development tool.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Shared;
use crate::config::{Faults, FaultsWire};
use crate::counters::RequestCounts;
use crate::error::{ApiError, ApiResult};
use crate::json::parse_body;
use crate::profile::{ApprovalOperation, Profile};
use crate::state::model::{Identity, User};
use crate::state::snapshot::StateSnapshot;
use crate::{clock, ids};

use super::minting;

pub(crate) async fn get_faults(State(app): State<Shared>) -> Json<FaultsWire> {
    Json(FaultsWire::from(&app.faults()))
}

pub(crate) async fn set_faults(
    State(app): State<Shared>,
    body: Bytes,
) -> ApiResult<Json<FaultsWire>> {
    let wire: FaultsWire = parse_body(&body)?;
    let faults = Faults::from(wire);
    faults.validate().map_err(ApiError::bad_request)?;
    tracing::info!(?faults, "faults changed");
    app.set_faults(faults.clone());
    Ok(Json(FaultsWire::from(&faults)))
}

pub(crate) async fn get_profile(State(app): State<Shared>) -> Json<Profile> {
    Json(app.store.lock().profile.clone())
}

/// Replaces the profile; fields left out take their strict value.
pub(crate) async fn set_profile(
    State(app): State<Shared>,
    body: Bytes,
) -> ApiResult<Json<Profile>> {
    let profile: Profile = parse_body(&body)?;
    profile.validate().map_err(ApiError::bad_request)?;
    tracing::info!(?profile, "profile changed");
    app.store.lock().profile = profile.clone();
    Ok(Json(profile))
}

/// `{"operations": [...]}`: the writes held for approval (`requireApproval` of the profile).
#[derive(serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Approvals {
    operations: std::collections::BTreeSet<ApprovalOperation>,
}

pub(crate) async fn get_approvals(State(app): State<Shared>) -> Json<Approvals> {
    let operations = app.store.lock().profile.require_approval.clone();
    Json(Approvals { operations })
}

/// Replaces the set of writes held for approval; the rest of the profile stays. Change
/// requests already pending stay pending.
pub(crate) async fn set_approvals(
    State(app): State<Shared>,
    body: Bytes,
) -> ApiResult<Json<Approvals>> {
    let approvals: Approvals = parse_body(&body)?;
    tracing::info!(operations = ?approvals.operations, "approval policy changed");
    app.store.lock().profile.require_approval = approvals.operations.clone();
    Ok(Json(approvals))
}

pub(crate) async fn state(State(app): State<Shared>) -> Json<StateSnapshot> {
    Json(app.store.lock().snapshot())
}

/// Back to the start: only the bootstrap admin, start-up faults and profile, zeroed counters.
pub(crate) async fn reset(State(app): State<Shared>) -> Json<Value> {
    app.store.reset();
    app.set_faults(app.config.faults.clone());
    app.counters.reset();
    tracing::info!("emulator reset");
    Json(json!({ "message": "reset" }))
}

pub(crate) async fn requests(State(app): State<Shared>) -> Json<RequestCounts> {
    Json(app.counters.snapshot())
}

pub(crate) async fn reset_requests(State(app): State<Shared>) -> Json<RequestCounts> {
    app.counters.reset();
    Json(app.counters.snapshot())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUser {
    username: String,
    public_key: String,
    #[serde(default)]
    permission_ids: Vec<String>,
}

/// Adds an organization user with one Key credential (Dfns' real user registration involves
/// e-mail flows the emulator does not model). Returns ids only; the caller holds the key.
pub(crate) async fn create_user(State(app): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let body: NewUser = parse_body(&body)?;
    minting::require_name(&body.username)?;
    let key = minting::parse_public_key(&body.public_key)?;
    let mut state = app.store.lock();
    if state
        .users
        .values()
        .any(|u| u.username == body.username && !u.archived)
    {
        return Err(ApiError::conflict(format!(
            "username {:?} is taken",
            body.username
        )));
    }
    for permission_id in &body.permission_ids {
        minting::check_permission(&state, permission_id)?;
    }
    let user_id = ids::new_id("us");
    let seq = state.next_seq();
    state.users.insert(
        user_id.clone(),
        User {
            seq,
            user_id: user_id.clone(),
            username: body.username.clone(),
            name: body.username.clone(),
            is_active: true,
            is_service_account: false,
            archived: false,
            external_id: None,
            date_created: clock::iso_now(),
            token_id: None,
        },
    );
    let cred_uuid = state.new_key_credential(
        Identity::User(user_id.clone()),
        "login key",
        &body.public_key,
        key,
    );
    for permission_id in &body.permission_ids {
        state.assign(permission_id, &user_id, false)?;
    }
    let cred_id = state
        .credentials
        .get(&cred_uuid)
        .map(|c| c.cred_id.clone())
        .unwrap_or_default();
    Ok(Json(json!({
        "userId": user_id,
        "username": body.username,
        "orgId": state.org_id,
        "credId": cred_id,
        "credentialUuid": cred_uuid,
    })))
}
