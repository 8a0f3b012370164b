//! `/auth/service-accounts`: list, create, get, update, activate, deactivate, delete (archive).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{AppState, Shared};
use crate::auth::{Authenticated, Signed};
use crate::error::{ApiError, ApiResult};
use crate::json::parse_body;
use crate::operations as ops;
use crate::profile::ApprovalOperation;
use crate::state::model::{AccessToken, Identity, User};
use crate::state::{Caller, State as Store, not_found};
use crate::tokens::TokenKind;
use crate::{clock, ids};

use super::approvals::{self, Written};
use super::minting::{self, TokenSubject};
use super::views;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    name: String,
    public_key: String,
    #[serde(default)]
    permission_id: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    days_valid: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
}

impl UpdateBody {
    /// Sets the name and external id this update gives, and leaves the others as they are.
    pub fn apply(&self, name: &mut String, external_id: &mut Option<String>) {
        if let Some(new_name) = &self.name {
            name.clone_from(new_name);
        }
        if let Some(new_external_id) = &self.external_id {
            *external_id = Some(new_external_id.clone());
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DeactivateBody {
    #[serde(default)]
    #[allow(dead_code)] // Approval policies do not cover deactivation: force changes nothing.
    pub force: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmptyBody {}

fn live_sa<'a>(state: &'a Store, id: &str) -> ApiResult<&'a User> {
    state
        .users
        .get(id)
        .filter(|u| u.is_service_account && !u.archived)
        .ok_or_else(|| not_found("service account", id))
}

fn live_sa_mut<'a>(state: &'a mut Store, id: &str) -> ApiResult<&'a mut User> {
    state
        .users
        .get_mut(id)
        .filter(|u| u.is_service_account && !u.archived)
        .ok_or_else(|| not_found("service account", id))
}

fn set_sa_flags(state: &mut Store, id: &str, active: bool, archive: bool) -> ApiResult<()> {
    let user = live_sa_mut(state, id)?;
    user.is_active = active;
    user.archived |= archive;
    let token_id = user.token_id.clone();
    if let Some(token) = token_id.and_then(|t| state.tokens.get_mut(&t)) {
        token.is_active = active;
        token.archived |= archive;
    }
    Ok(())
}

pub(crate) async fn list(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    state.require(&caller, ops::SA_READ)?;
    let mut sas: Vec<&User> = state
        .users
        .values()
        .filter(|u| u.is_service_account && !u.archived)
        .collect();
    sas.sort_by_key(|u| u.seq);
    let items: Vec<Value> = sas
        .into_iter()
        .map(|u| views::service_account(&state, u, None))
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn get(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    state.require(&caller, ops::SA_READ)?;
    let user = live_sa(&state, &id)?;
    Ok(Json(views::service_account(&state, user, None)))
}

pub(crate) async fn create(
    State(app): State<Shared>,
    signed: Signed,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok(write_create(&app, &signed.caller, &signed.body, true)?.reply())
}

/// Creates a service account from a create body as sent; `may_hold`: an approval policy may
/// hold it back (not when it runs because its change request was approved).
pub(crate) fn write_create(
    app: &AppState,
    caller: &Caller,
    raw: &[u8],
    may_hold: bool,
) -> ApiResult<Written> {
    minting::only_org_users(caller, "service accounts")?;
    let body: CreateBody = parse_body(raw)?;
    minting::require_name(&body.name)?;
    let key = minting::parse_public_key(&body.public_key)?;
    let fingerprint = minting::fingerprint(&key)?;

    let now = clock::unix_now();
    let mut state = app.store.lock();
    let validity = minting::validity_secs(
        body.days_valid,
        None,
        state.profile.default_days_valid,
        app.valid_day_secs(),
    )?;
    let expires_at = validity.map(|v| now + v);
    state.require(caller, ops::SA_CREATE)?;
    if let Some(permission_id) = &body.permission_id {
        // Assigning a role at creation is an assignment: the caller needs that right too.
        state.require(caller, ops::PERMISSIONS_ASSIGN)?;
        minting::check_permission(&state, permission_id)?;
    }
    if may_hold
        && state
            .profile
            .requires_approval(ApprovalOperation::ServiceAccountCreate)
    {
        let request = approvals::hold(
            &mut state,
            caller,
            ApprovalOperation::ServiceAccountCreate,
            Vec::new(),
            raw,
            None,
        );
        return Ok(Written::Held(request));
    }
    let user_id = ids::new_id("us");
    let token_id = ids::new_id("to");
    let cred_uuid = state.new_key_credential(
        Identity::User(user_id.clone()),
        &body.name,
        &body.public_key,
        key,
    );
    let date_created = clock::iso_now();
    let seq = state.next_seq();
    state.users.insert(
        user_id.clone(),
        User {
            seq,
            user_id: user_id.clone(),
            username: body.name.clone(),
            name: body.name.clone(),
            is_active: true,
            is_service_account: true,
            archived: false,
            external_id: body.external_id.clone(),
            date_created: date_created.clone(),
            token_id: Some(token_id.clone()),
        },
    );
    let seq = state.next_seq();
    state.tokens.insert(
        token_id.clone(),
        AccessToken {
            seq,
            token_id: token_id.clone(),
            kind: TokenKind::ServiceAccount,
            linked_user_id: user_id.clone(),
            name: body.name.clone(),
            external_id: body.external_id.clone(),
            is_active: true,
            archived: false,
            date_created,
            expires_at,
            cred_uuid,
            public_key_pem: body.public_key.clone(),
            public_key_fingerprint: fingerprint,
            inherits_user_permissions: false,
        },
    );
    if let Some(permission_id) = &body.permission_id {
        state.assign(permission_id, &user_id, false)?;
    } else if state.profile.service_accounts_inherit_creator_permissions {
        // Older pages: "inherits all permissions from the user who creates it".
        let inherited: Vec<String> = state
            .assignments_of(&caller.user_id)
            .into_iter()
            .map(|(assignment, _)| assignment.permission_id.clone())
            .collect();
        for permission_id in inherited {
            state.assign(&permission_id, &user_id, false)?;
        }
    }
    let org_id = state.org_id.clone();
    let access_token = minting::sign_access_token(
        app,
        &org_id,
        TokenSubject {
            kind: TokenKind::ServiceAccount,
            user_id: &user_id,
            username: &body.name,
            token_id: &token_id,
            issued_at: now,
            expires_at,
        },
    );
    let view = views::service_account(&state, live_sa(&state, &user_id)?, Some(&access_token));
    drop(state);
    tracing::info!(service_account = %user_id, "service account created");
    Ok(Written::Done(view))
}

pub(crate) async fn update(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let body: UpdateBody = parse_body(&signed.body)?;
    if let Some(name) = &body.name {
        minting::require_name(name)?;
    }
    let mut state = app.store.lock();
    state.require(&signed.caller, ops::SA_UPDATE)?;
    let user = live_sa_mut(&mut state, &id)?;
    body.apply(&mut user.name, &mut user.external_id);
    let token_id = user.token_id.clone();
    if let Some(token) = token_id.and_then(|t| state.tokens.get_mut(&t)) {
        body.apply(&mut token.name, &mut token.external_id);
    }
    Ok(Json(views::service_account(
        &state,
        live_sa(&state, &id)?,
        None,
    )))
}

pub(crate) async fn activate(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let _: EmptyBody = parse_body(&signed.body)?;
    change_activation(&app, &signed.caller, &id, true)
}

pub(crate) async fn deactivate(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let _: DeactivateBody = parse_body(&signed.body)?;
    Ok(write_activation(&app, &signed.caller, &id, false, true)?.reply())
}

/// Deactivates (or activates) a service account; `may_hold`: an approval policy may hold a
/// deactivation back (not when it runs because its change request was approved).
pub(crate) fn write_activation(
    app: &AppState,
    caller: &Caller,
    id: &str,
    active: bool,
    may_hold: bool,
) -> ApiResult<Written> {
    if !active
        && may_hold
        && app
            .store
            .lock()
            .profile
            .requires_approval(ApprovalOperation::ServiceAccountDeactivate)
    {
        let mut state = app.store.lock();
        state.require(caller, ops::SA_DEACTIVATE)?;
        live_sa(&state, id)?;
        let held = approvals::hold(
            &mut state,
            caller,
            ApprovalOperation::ServiceAccountDeactivate,
            vec![id.to_owned()],
            b"",
            Some(id.to_owned()),
        );
        return Ok(Written::Held(held));
    }
    change_activation(app, caller, id, active).map(|Json(v)| Written::Done(v))
}

fn change_activation(
    app: &AppState,
    caller: &Caller,
    id: &str,
    active: bool,
) -> ApiResult<Json<Value>> {
    let mut state = app.store.lock();
    state.require(
        caller,
        if active {
            ops::SA_ACTIVATE
        } else {
            ops::SA_DEACTIVATE
        },
    )?;
    set_sa_flags(&mut state, id, active, false)?;
    tracing::info!(service_account = %id, active, "service account activation changed");
    Ok(Json(views::service_account(
        &state,
        live_sa(&state, id)?,
        None,
    )))
}

pub(crate) async fn delete(
    State(app): State<Shared>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "force") {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {unknown:?}"
        )));
    }
    let _: EmptyBody = parse_body(&signed.body)?;
    let mut state = app.store.lock();
    state.require(&signed.caller, ops::SA_DELETE)?;
    set_sa_flags(&mut state, &id, false, true)?;
    tracing::info!(service_account = %id, "service account archived");
    let user = state
        .users
        .get(&id)
        .ok_or_else(|| not_found("service account", &id))?;
    let view = views::service_account(&state, user, None);
    Ok(Json(view))
}
