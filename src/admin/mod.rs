//! The admin endpoints, on `[admin] listen`: what Kubernetes probes and Prometheus scrape.
//!
//! | path       | answers                                                                  |
//! |------------|--------------------------------------------------------------------------|
//! | `/health`  | 200 while the process runs, lameduck included: liveness, so a restart is |
//! |            | only ever for a process that stopped answering HTTP at all               |
//! | `/ready`   | 503 until every source has loaded, and again from SIGTERM on (lameduck); |
//! |            | 200 otherwise. The body says what is missing                             |
//! | `/metrics` | Prometheus text 0.0.4, or OpenMetrics when the `Accept` header asks for  |
//! |            | it ([`text_format`]); Hearth's names or CoreDNS's (`admin.metrics`)      |
//!
//! Why `/health` stays 200 in lameduck, as CoreDNS's `health` plugin does: a failing liveness
//! probe makes the kubelet kill the container, which would cut the lameduck short and drop
//! the queries it exists to finish.
//!
//! The server is axum over hyper's HTTP/1: three routes, no TLS (the port is meant for the
//! pod network or loopback, as CoreDNS's `:8080` and `:9153`).
//!
//! What it serves it reads through [`Status`], which the running server (`app`) implements:
//! this module sits above everything it reports on and imports none of it.

mod scrape;
pub mod text_format;

pub use scrape::{render, render_as, METRICS};
pub use text_format::Format;

use std::sync::Arc;

use axum::extract::State as Extract;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use prometheus_client::encoding::DescriptorEncoder;

use crate::config::MetricNames;

/// What the admin endpoints ask of the running server.
pub trait Status: Send + Sync + 'static {
    /// Whether every source has loaded, and if not, what is missing; an error from lameduck on.
    fn readiness(&self) -> Result<(), Vec<String>>;

    /// Encodes every metric of the server (the per-query ones, the fast table's, each
    /// source's), without the namespace and without `ready` (which this module adds).
    fn encode_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result;

    /// Encodes every metric under CoreDNS's names and labels (`admin.metrics = "coredns"`),
    /// without the `coredns_` prefix.
    fn encode_coredns_metrics(&self, encoder: &mut DescriptorEncoder<'_>) -> std::fmt::Result;
}

struct Admin {
    state: Arc<dyn Status>,
    namespace: String,
    names: MetricNames,
}

/// Serves the admin endpoints on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<dyn Status>,
    namespace: String,
    names: MetricNames,
    shutdown: CancellationToken,
) {
    let admin = Arc::new(Admin {
        state,
        namespace,
        names,
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(admin);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(%error, "the admin endpoint stopped");
    }
}

async fn health() -> &'static str {
    "OK\n"
}

async fn ready(Extract(admin): Extract<Arc<Admin>>) -> Response {
    match admin.state.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(waiting) => {
            let mut body = String::from("not ready:\n");
            for reason in waiting {
                body.push_str("- ");
                body.push_str(&reason);
                body.push('\n');
            }
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

async fn metrics(Extract(admin): Extract<Arc<Admin>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::from_accept(accept);
    let text = render_as(&admin.state, &admin.namespace, admin.names, format);
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}
