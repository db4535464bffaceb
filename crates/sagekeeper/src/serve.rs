//! The health and metrics server (`/healthz`, `/readyz`, `/metrics`) and the shutdown signals.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use sagekeeper_controller::Health;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Shared {
    registry: Registry,
    health: Arc<Health>,
}

/// Binds `addr` and serves until `shutdown`; returns the bound address.
pub(crate) async fn start(
    addr: SocketAddr,
    registry: Registry,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Shared { registry, health });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = served.await {
            tracing::error!(error = %e, "health server failed");
        }
    });
    Ok(bound)
}

async fn readyz(State(shared): State<Shared>) -> (StatusCode, String) {
    match (shared.health.ready(), shared.health.leading(), shared.health.problem()) {
        (true, true, _) => (StatusCode::OK, "ok: leader, watches synced".into()),
        (true, false, _) => (StatusCode::OK, "ok: standby".into()),
        (false, _, Some(problem)) => (StatusCode::SERVICE_UNAVAILABLE, problem),
        (false, _, None) => (StatusCode::SERVICE_UNAVAILABLE, "watches not synced".into()),
    }
}

async fn metrics(State(shared): State<Shared>) -> (StatusCode, String) {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&shared.registry.gather(), &mut body) {
        Ok(()) => (StatusCode::OK, String::from_utf8_lossy(&body).into_owned()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
pub(crate) async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                ctrl_c.await.ok();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
}
