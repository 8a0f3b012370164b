//! HTTP routes: Dfns API paths (behind fault injection) and `/_emulator/` controls.

mod actions;
mod approvals;
mod challenges;
mod controls;
mod credentials;
mod login;
pub(crate) mod minting;
mod pats;
mod permissions;
mod service_accounts;
mod users;
mod views;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::app::Shared;
use super::error::ApiError;
use super::faults;

pub(crate) fn router(app: Shared) -> Router {
    let dfns = Router::new()
        .route("/auth/login/init", post(login::init))
        .route("/auth/login", post(login::complete))
        .route("/auth/action/init", post(actions::init))
        .route("/auth/action", post(actions::complete))
        .route(
            "/auth/service-accounts",
            get(service_accounts::list).post(service_accounts::create),
        )
        .route(
            "/auth/service-accounts/{id}",
            get(service_accounts::get)
                .put(service_accounts::update)
                .delete(service_accounts::delete),
        )
        .route(
            "/auth/service-accounts/{id}/activate",
            put(service_accounts::activate),
        )
        .route(
            "/auth/service-accounts/{id}/deactivate",
            put(service_accounts::deactivate),
        )
        .route("/auth/pats", get(pats::list).post(pats::create))
        .route(
            "/auth/pats/{id}",
            get(pats::get).put(pats::update).delete(pats::delete),
        )
        .route("/auth/pats/{id}/activate", put(pats::activate))
        .route("/auth/pats/{id}/deactivate", put(pats::deactivate))
        .route("/auth/users/{id}/activate", put(users::activate))
        .route("/auth/users/{id}/deactivate", put(users::deactivate))
        .route(
            "/auth/credentials",
            get(credentials::list).post(credentials::create),
        )
        .route("/auth/credentials/init", post(credentials::init))
        .route(
            "/auth/credentials/{credential_uuid}",
            axum::routing::delete(credentials::delete),
        )
        .route("/auth/credentials/activate", put(credentials::activate))
        .route("/auth/credentials/deactivate", put(credentials::deactivate))
        .route(
            "/permissions",
            get(permissions::list).post(permissions::create),
        )
        .route("/permissions/{id}", get(permissions::get))
        .route(
            "/permissions/{id}/assignments",
            get(permissions::list_assignments).post(permissions::assign),
        )
        .route(
            "/permissions/{id}/assignments/{assignment_id}",
            axum::routing::delete(permissions::revoke),
        )
        .route("/v2/policy-approvals", get(approvals::list))
        .route("/v2/policy-approvals/{id}", get(approvals::get))
        .route_layer(middleware::from_fn_with_state(app.clone(), faults::apply));

    let controls = Router::new()
        .route(
            "/_emulator/faults",
            get(controls::get_faults)
                .put(controls::set_faults)
                .post(controls::set_faults),
        )
        .route("/_emulator/state", get(controls::state))
        .route(
            "/_emulator/profile",
            get(controls::get_profile).put(controls::set_profile),
        )
        .route(
            "/_emulator/approvals",
            get(controls::get_approvals).put(controls::set_approvals),
        )
        .route(
            "/_emulator/change-requests/{id}/approve",
            post(approvals::approve),
        )
        .route(
            "/_emulator/change-requests/{id}/deny",
            post(approvals::deny),
        )
        .route("/_emulator/reset", post(controls::reset))
        .route(
            "/_emulator/requests",
            get(controls::requests).delete(controls::reset_requests),
        )
        .route("/_emulator/users", post(controls::create_user));

    dfns.merge(controls)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(middleware::from_fn(errors_as_json))
        .with_state(app)
}

/// Framework rejections (bad path or query parameters, …) are plain text; Dfns clients expect
/// every error as `{"error": {...}}`, so wrap them.
async fn errors_as_json(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&bytes).trim().to_owned();
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        message
    };
    ApiError::new(status, message).into_response()
}
