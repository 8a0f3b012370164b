//! `POST /auth/login/init` and `POST /auth/login`: an organization user signs a challenge with
//! a Key credential and receives a session token.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Shared;
use crate::error::{ApiError, ApiResult};
use crate::json::parse_body;
use crate::state::model::{ChallengePurpose, Identity};
use crate::tokens::{AUD_ACCESS, AccessClaims, AppMetadata, ISSUER, TokenKind};
use crate::{clock, ids};

use super::challenges;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoginInitBody {
    org_id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    login_code: Option<String>,
}

fn login_refused() -> ApiError {
    ApiError::unauthorized(
        "login failed: unknown organization or user, or user not allowed to log in",
    )
}

pub(crate) async fn init(State(app): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let body: LoginInitBody = parse_body(&body)?;
    if body.login_code.is_some() {
        return Err(ApiError::bad_request(
            "loginCode (PasswordProtectedKey) is not supported by the emulator",
        ));
    }
    let username = body
        .username
        .ok_or_else(|| ApiError::bad_request("username is required for Key credential login"))?;
    let now = clock::unix_now();
    let mut state = app.store.lock();
    if body.org_id != state.org_id {
        return Err(login_refused());
    }
    // Service accounts and archived users never log in; the emulator answers the same for all
    // refusals so that usernames cannot be probed.
    let user = state
        .users
        .values()
        .find(|u| u.username == username && !u.is_service_account && !u.archived && u.is_active)
        .ok_or_else(login_refused)?;
    let user_id = user.user_id.clone();
    let challenge = challenges::issue_to_signer(
        &app,
        &mut state,
        &Identity::User(user_id.clone()),
        ChallengePurpose::Login { user_id },
        app.login_challenge_ttl_secs(),
        now,
    );
    Ok(Json(challenge))
}

pub(crate) async fn complete(State(app): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let now = clock::unix_now();
    let user_id = challenges::redeem(
        &app,
        &body,
        now,
        |purpose| {
            let ChallengePurpose::Login { user_id } = purpose else {
                return Err(ApiError::unauthorized(
                    "challenge was not issued for a login",
                ));
            };
            let signer = Identity::User(user_id.clone());
            Ok((user_id, signer))
        },
        "credential is not an active credential of this user",
    )?;

    let state = app.store.lock();
    let user = state
        .users
        .get(&user_id)
        .filter(|u| u.is_active && !u.archived)
        .ok_or_else(login_refused)?;
    let claims = AccessClaims {
        iss: ISSUER.to_owned(),
        aud: AUD_ACCESS.to_owned(),
        sub: state.org_id.clone(),
        jti: ids::new_id("se"),
        iat: now,
        exp: Some(now + app.config.session_ttl.as_secs() as i64),
        username: user.username.clone(),
        app_metadata: AppMetadata {
            user_id: user.user_id.clone(),
            org_id: state.org_id.clone(),
            token_kind: TokenKind::Temp,
            token_id: None,
        },
    };
    drop(state);
    tracing::info!(%user_id, "user logged in");
    Ok(Json(json!({ "token": app.keys.sign(&claims) })))
}
