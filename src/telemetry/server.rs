//! The HTTP endpoints: `/metrics` (Prometheus text format), `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use super::{Health, Metrics};

/// OpenMetrics text, which Prometheus negotiates; plain text clients read it as well.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address} for metrics and probes: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics and probes server failed: {0}")]
    Serve(std::io::Error),
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Binds first, so that a taken port fails start-up with a clear message, and so that callers
/// (tests) can ask for port 0 and learn the real one.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind { address, source })
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_handler))
        .with_state(Shared { metrics, health });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)
}

async fn metrics_handler(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        shared.metrics.encode(),
    )
}

async fn readyz_handler(State(shared): State<Shared>) -> impl IntoResponse {
    let (ready, text) = shared.health.readiness();
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        text,
    )
}
