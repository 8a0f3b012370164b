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
use crate::state::model::{Challenge, ChallengePurpose, Identity};
use crate::tokens::{AUD_ACCESS, AUD_CHALLENGE, AccessClaims, AppMetadata, ISSUER, TokenKind};
use crate::user_actions::{Factor, verify_assertion};
use crate::{clock, ids};

use super::views;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoginInitBody {
    org_id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    login_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoginBody {
    challenge_identifier: String,
    first_factor: Factor,
    #[serde(default)]
    second_factor: Option<Value>,
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
    let cred_ids: Vec<String> = state
        .active_credentials(&Identity::User(user_id.clone()))
        .into_iter()
        .map(|c| c.cred_id.clone())
        .collect();
    let challenge = ids::new_challenge();
    let jti = ids::new_id("ch");
    let identifier = app
        .keys
        .handle(AUD_CHALLENGE, &jti, now, app.login_challenge_ttl_secs());
    state.insert_challenge(
        jti,
        Challenge {
            purpose: ChallengePurpose::Login { user_id },
            challenge: challenge.clone(),
            expires_at: now + app.login_challenge_ttl_secs(),
        },
        now,
    );
    Ok(Json(views::challenge_body(
        &challenge,
        &identifier,
        &cred_ids,
    )))
}

pub(crate) async fn complete(State(app): State<Shared>, body: Bytes) -> ApiResult<Json<Value>> {
    let body: LoginBody = parse_body(&body)?;
    if body.second_factor.is_some() {
        return Err(ApiError::bad_request(
            "secondFactor is not supported by the emulator",
        ));
    }
    let assertion = body.first_factor.require_key()?;
    let now = clock::unix_now();
    let handle = app
        .keys
        .verify_handle(&body.challenge_identifier, AUD_CHALLENGE, now)
        .map_err(|_| ApiError::unauthorized("challengeIdentifier is invalid or expired"))?;

    // Take the challenge out first: it is single-use whatever the outcome.
    let (user_id, challenge, key) = {
        let mut state = app.store.lock();
        let challenge = state.challenges.remove(&handle.jti).ok_or_else(|| {
            ApiError::unauthorized("challenge is unknown or has already been used")
        })?;
        let ChallengePurpose::Login { user_id } = challenge.purpose else {
            return Err(ApiError::unauthorized(
                "challenge was not issued for a login",
            ));
        };
        if challenge.expires_at <= now {
            return Err(ApiError::unauthorized("challenge has expired"));
        }
        let cred = state
            .credential_by_cred_id(&assertion.cred_id)
            .filter(|c| c.is_active && c.owner == Identity::User(user_id.clone()))
            .ok_or_else(|| {
                ApiError::unauthorized("credential is not an active credential of this user")
            })?;
        (user_id, challenge.challenge, cred.key.clone())
    };
    verify_assertion(
        &key,
        &assertion.client_data,
        &assertion.signature,
        assertion.algorithm.as_deref(),
        "key.get",
        &challenge,
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
        exp: now + app.config.session_ttl.as_secs() as i64,
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
