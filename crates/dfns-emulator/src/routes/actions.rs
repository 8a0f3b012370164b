//! `POST /auth/action/init` and `POST /auth/action`: sign a challenge bound to one request and
//! receive a single-use user action token for it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::Shared;
use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult};
use crate::json::{normalized_body, parse_body};
use crate::state::model::{BoundRequest, Challenge, ChallengePurpose, UserAction};
use crate::tokens::{AUD_CHALLENGE, AUD_USER_ACTION};
use crate::user_actions::{Factor, strip_query, verify_assertion};
use crate::{clock, ids};

use super::views;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActionInitBody {
    user_action_payload: String,
    user_action_http_method: String,
    user_action_http_path: String,
    #[serde(default)]
    user_action_server_kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActionBody {
    challenge_identifier: String,
    first_factor: Factor,
    #[serde(default)]
    second_factor: Option<Value>,
}

pub(crate) async fn init(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: ActionInitBody = parse_body(&body)?;
    let method = body.user_action_http_method.to_ascii_uppercase();
    if !matches!(method.as_str(), "POST" | "PUT" | "DELETE" | "GET") {
        return Err(ApiError::bad_request(
            "userActionHttpMethod must be POST, PUT, DELETE or GET",
        ));
    }
    if let Some(kind) = body.user_action_server_kind.as_deref()
        && kind != "Api"
    {
        return Err(ApiError::bad_request(
            "userActionServerKind must be \"Api\"",
        ));
    }
    if !body.user_action_http_path.starts_with('/') {
        return Err(ApiError::bad_request(
            "userActionHttpPath must be an absolute path",
        ));
    }
    let payload = normalized_body(body.user_action_payload.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("userActionPayload: {e}")))?;
    let request = BoundRequest {
        method,
        path: strip_query(&body.user_action_http_path).to_owned(),
        body: payload,
    };

    let now = clock::unix_now();
    let challenge = ids::new_challenge();
    let jti = ids::new_id("ch");
    let identifier = app
        .keys
        .handle(AUD_CHALLENGE, &jti, now, app.challenge_ttl_secs());
    let mut state = app.store.lock();
    let cred_ids: Vec<String> = state
        .active_credentials(&caller.identity)
        .into_iter()
        .map(|c| c.cred_id.clone())
        .collect();
    state.insert_challenge(
        jti,
        Challenge {
            purpose: ChallengePurpose::Action {
                identity: caller.identity.clone(),
                request,
            },
            challenge: challenge.clone(),
            expires_at: now + app.challenge_ttl_secs(),
        },
        now,
    );
    drop(state);
    Ok(Json(views::challenge_body(
        &challenge,
        &identifier,
        &cred_ids,
    )))
}

pub(crate) async fn complete(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: ActionBody = parse_body(&body)?;
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

    let (request, challenge, key) = {
        let mut state = app.store.lock();
        let challenge = state.challenges.remove(&handle.jti).ok_or_else(|| {
            ApiError::unauthorized("challenge is unknown or has already been used")
        })?;
        let ChallengePurpose::Action { identity, request } = challenge.purpose else {
            return Err(ApiError::unauthorized(
                "challenge was not issued for a user action",
            ));
        };
        if identity != caller.identity {
            return Err(ApiError::unauthorized(
                "challenge was issued to another caller",
            ));
        }
        if challenge.expires_at <= now {
            return Err(ApiError::unauthorized("challenge has expired"));
        }
        let cred = state
            .credential_by_cred_id(&assertion.cred_id)
            .filter(|c| c.is_active && c.owner == caller.identity)
            .ok_or_else(|| {
                ApiError::unauthorized("credential is not an active credential of the caller")
            })?;
        (request, challenge.challenge, cred.key.clone())
    };
    // Signature checks run outside the lock: they are the expensive part.
    verify_assertion(
        &key,
        &assertion.client_data,
        &assertion.signature,
        assertion.algorithm.as_deref(),
        "key.get",
        &challenge,
    )?;

    let jti = ids::new_id("ua");
    let token = app
        .keys
        .handle(AUD_USER_ACTION, &jti, now, app.user_action_ttl_secs());
    app.store.lock().insert_user_action(
        jti,
        UserAction {
            identity: caller.identity,
            request,
            expires_at: now + app.user_action_ttl_secs(),
            used: false,
        },
        now,
    );
    Ok(Json(json!({ "userAction": token })))
}
