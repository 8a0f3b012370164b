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
use crate::state::model::{BoundRequest, ChallengePurpose, UserAction};
use crate::tokens::AUD_USER_ACTION;
use crate::user_actions::strip_query;
use crate::{clock, ids};

use super::challenges;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ActionInitBody {
    user_action_payload: String,
    user_action_http_method: String,
    user_action_http_path: String,
    #[serde(default)]
    user_action_server_kind: Option<String>,
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
    let mut state = app.store.lock();
    let challenge = challenges::issue_to_signer(
        &app,
        &mut state,
        &caller.identity,
        ChallengePurpose::Action {
            identity: caller.identity.clone(),
            request,
        },
        app.challenge_ttl_secs(),
        now,
    );
    drop(state);
    Ok(Json(challenge))
}

pub(crate) async fn complete(
    State(app): State<Shared>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let now = clock::unix_now();
    let request = challenges::redeem(
        &app,
        &body,
        now,
        |purpose| {
            let ChallengePurpose::Action { identity, request } = purpose else {
                return Err(ApiError::unauthorized(
                    "challenge was not issued for a user action",
                ));
            };
            if identity != caller.identity {
                return Err(ApiError::unauthorized(
                    "challenge was issued to another caller",
                ));
            }
            Ok((request, identity))
        },
        "credential is not an active credential of the caller",
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
