//! Request authentication: the bearer token (every Dfns call but login) and, for state-changing
//! calls, the single-use `X-DFNS-USERACTION` bound to this exact request.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::app::Shared;
use super::clock;
use super::error::ApiError;
use super::json::normalized_body;
use super::state::Caller;
use super::tokens::{AUD_USER_ACTION, TokenError};
use super::user_actions;

const USER_ACTION_HEADER: &str = "x-dfns-useraction";

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("Not Authorized: missing bearer token"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("Not Authorized: malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "Not Authorized: expected a Bearer token",
        ));
    }
    Ok(token.trim())
}

fn authenticate(parts: &Parts, app: &Shared) -> Result<Caller, ApiError> {
    let token = bearer(parts)?;
    let claims = app
        .keys
        .verify_access(token, clock::unix_now())
        .map_err(|e| match e {
            TokenError::Expired => ApiError::unauthorized("Not Authorized: the token has expired"),
            _ => ApiError::unauthorized("Not Authorized: the token is invalid"),
        })?;
    app.store.lock().authenticate(&claims)
}

/// A request with a valid bearer token.
pub(crate) struct Authenticated(pub Caller);

impl FromRequestParts<Shared> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Self::Rejection> {
        authenticate(parts, app).map(Self)
    }
}

/// A state-changing request: bearer token plus a user action signed for this method, path and
/// body. Extracting it consumes the user action.
pub(crate) struct Signed {
    pub caller: Caller,
    pub body: Bytes,
}

fn invalid_user_action(reason: &str) -> ApiError {
    ApiError::forbidden(format!(
        "user action signature is missing or invalid: {reason}"
    ))
}

impl FromRequest<Shared> for Signed {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Shared) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let caller = authenticate(&parts, app)?;
        let body = axum::body::to_bytes(body, 2 * 1024 * 1024)
            .await
            .map_err(|_| {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large")
            })?;

        let header = parts
            .headers
            .get(USER_ACTION_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| invalid_user_action("the X-DFNS-USERACTION header is missing"))?;
        let now = clock::unix_now();
        let handle = app
            .keys
            .verify_handle(header.trim(), AUD_USER_ACTION, now)
            .map_err(|e| match e {
                TokenError::Expired => invalid_user_action("the user action has expired"),
                _ => invalid_user_action("the user action token is not valid"),
            })?;
        let normalized = normalized_body(&body).map_err(ApiError::bad_request)?;

        let mut state = app.store.lock();
        let action = state
            .user_actions
            .get_mut(&handle.jti)
            .ok_or_else(|| invalid_user_action("unknown user action"))?;
        if action.used {
            return Err(ApiError::bad_request("user action has already been used"));
        }
        if action.expires_at <= now {
            return Err(invalid_user_action("the user action has expired"));
        }
        if action.identity != caller.identity {
            return Err(invalid_user_action(
                "the user action was signed for another caller",
            ));
        }
        if !user_actions::matches(
            &action.request,
            parts.method.as_str(),
            parts.uri.path(),
            &normalized,
        ) {
            return Err(invalid_user_action(
                "the user action was signed for a different method, path or body",
            ));
        }
        action.used = true;
        // Only the fact that it was used matters from now on.
        action.request.body = serde_json::Value::Null;
        drop(state);
        Ok(Self { caller, body })
    }
}
