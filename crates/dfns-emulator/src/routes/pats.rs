//! `/auth/pats`: personal access tokens of the calling user. Create is for organization users
//! only; the other operations need no permission but see only the caller's user's PATs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{AppState, Shared};
use crate::auth::{Authenticated, Signed};
use crate::error::ApiResult;
use crate::json::parse_body;
use crate::operations as ops;
use crate::profile::ApprovalOperation;
use crate::state::model::{AccessToken, Identity};
use crate::state::{Caller, State as Store, not_found};
use crate::tokens::TokenKind;
use crate::{clock, ids};

use super::approvals::{self, Written};
use super::minting::{self, TokenSubject};
use super::service_accounts::{DeactivateBody, EmptyBody, UpdateBody};
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
    #[serde(default)]
    seconds_valid: Option<i64>,
}

/// A live PAT owned by the caller's user (another user's PAT is reported as not found).
fn own_pat_mut<'a>(
    state: &'a mut Store,
    caller: &Caller,
    id: &str,
) -> ApiResult<&'a mut AccessToken> {
    state
        .tokens
        .get_mut(id)
        .filter(|t| t.kind == TokenKind::Pat && !t.archived && t.linked_user_id == caller.user_id)
        .ok_or_else(|| not_found("personal access token", id))
}

fn view(state: &Store, id: &str) -> ApiResult<Value> {
    let token = state
        .tokens
        .get(id)
        .ok_or_else(|| not_found("personal access token", id))?;
    Ok(views::token(state, token, None))
}

pub(crate) async fn list(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<Value>> {
    let state = app.store.lock();
    let mut pats: Vec<&AccessToken> = state
        .tokens
        .values()
        .filter(|t| t.kind == TokenKind::Pat && !t.archived && t.linked_user_id == caller.user_id)
        .collect();
    pats.sort_by_key(|t| t.seq);
    let items: Vec<Value> = pats
        .into_iter()
        .map(|t| views::token(&state, t, None))
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn get(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut state = app.store.lock();
    own_pat_mut(&mut state, &caller, &id)?;
    Ok(Json(view(&state, &id)?))
}

pub(crate) async fn create(
    State(app): State<Shared>,
    signed: Signed,
) -> ApiResult<(StatusCode, Json<Value>)> {
    Ok(write_create(&app, &signed.caller, &signed.body, true)?.reply())
}

/// Creates a PAT for the caller's user from a create body as sent; `may_hold`: an approval
/// policy may hold it back (not when it runs because its change request was approved).
pub(crate) fn write_create(
    app: &AppState,
    caller: &Caller,
    raw: &[u8],
    may_hold: bool,
) -> ApiResult<Written> {
    minting::only_org_users(caller, "personal access tokens")?;
    let body: CreateBody = parse_body(raw)?;
    minting::require_name(&body.name)?;
    let key = minting::parse_public_key(&body.public_key)?;
    let fingerprint = minting::fingerprint(&key)?;

    let now = clock::unix_now();
    let mut state = app.store.lock();
    let validity = minting::validity_secs(
        body.days_valid,
        body.seconds_valid,
        state.profile.default_days_valid,
        app.valid_day_secs(),
    )?;
    let expires_at = validity.map(|v| now + v);
    state.require(caller, ops::PATS_CREATE)?;
    if let Some(permission_id) = &body.permission_id {
        minting::check_permission(&state, permission_id)?;
    }
    if may_hold
        && state
            .profile
            .requires_approval(ApprovalOperation::PatCreate)
    {
        let request = approvals::hold(
            &mut state,
            caller,
            ApprovalOperation::PatCreate,
            Vec::new(),
            raw,
            None,
        );
        return Ok(Written::Held(request));
    }
    let token_id = ids::new_id("to");
    let cred_uuid = state.new_key_credential(
        Identity::Token(token_id.clone()),
        &body.name,
        &body.public_key,
        key,
    );
    let seq = state.next_seq();
    state.tokens.insert(
        token_id.clone(),
        AccessToken {
            seq,
            token_id: token_id.clone(),
            kind: TokenKind::Pat,
            linked_user_id: caller.user_id.clone(),
            name: body.name.clone(),
            external_id: body.external_id.clone(),
            is_active: true,
            archived: false,
            date_created: clock::iso_now(),
            expires_at,
            cred_uuid,
            public_key_pem: body.public_key.clone(),
            public_key_fingerprint: fingerprint,
            inherits_user_permissions: body.permission_id.is_none(),
        },
    );
    if let Some(permission_id) = &body.permission_id {
        state.assign(permission_id, &token_id, false)?;
    }
    let org_id = state.org_id.clone();
    let username = state
        .users
        .get(&caller.user_id)
        .map(|u| u.username.clone())
        .unwrap_or_default();
    let access_token = minting::sign_access_token(
        app,
        &org_id,
        TokenSubject {
            kind: TokenKind::Pat,
            user_id: &caller.user_id,
            username: &username,
            token_id: &token_id,
            issued_at: now,
            expires_at,
        },
    );
    let token = state
        .tokens
        .get(&token_id)
        .ok_or_else(|| not_found("personal access token", &token_id))?;
    let view = views::token(&state, token, Some(&access_token));
    drop(state);
    tracing::info!(pat = %token_id, "personal access token created");
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
    let token = own_pat_mut(&mut state, &signed.caller, &id)?;
    body.apply(&mut token.name, &mut token.external_id);
    Ok(Json(view(&state, &id)?))
}

pub(crate) async fn activate(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let _: EmptyBody = parse_body(&signed.body)?;
    set_flags(&app, &signed.caller, &id, true, false)
}

pub(crate) async fn deactivate(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let _: DeactivateBody = parse_body(&signed.body)?;
    set_flags(&app, &signed.caller, &id, false, false)
}

pub(crate) async fn delete(
    State(app): State<Shared>,
    Path(id): Path<String>,
    signed: Signed,
) -> ApiResult<Json<Value>> {
    let _: EmptyBody = parse_body(&signed.body)?;
    set_flags(&app, &signed.caller, &id, false, true)
}

fn set_flags(
    app: &Shared,
    caller: &Caller,
    id: &str,
    active: bool,
    archive: bool,
) -> ApiResult<Json<Value>> {
    let mut state = app.store.lock();
    let token = own_pat_mut(&mut state, caller, id)?;
    token.is_active = active;
    token.archived |= archive;
    tracing::info!(pat = %id, active, archived = archive, "personal access token changed");
    Ok(Json(view(&state, id)?))
}
