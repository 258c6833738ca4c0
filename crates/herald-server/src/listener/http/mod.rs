//! The web listener (axum): publish over HTTP, subscribe over Server-Sent
//! Events or WebSocket (a small JSON protocol, and the NATS protocol itself
//! for nats.ws clients), streams over REST, metrics, and the chat and
//! dashboard pages, all on one port.
//!
//! | route | module |
//! | --- | --- |
//! | `POST /v1/publish/{subject}` | [`publish`] |
//! | `GET /v1/subscribe/{pattern}` (SSE) | [`sse`] |
//! | `GET /v1/ws` (JSON over WebSocket) | [`ws`] |
//! | `GET /nats`, `GET /mqtt` (NATS, MQTT over WebSocket) | [`protocol_ws`] |
//! | `/v1/streams…` | [`streams`] |
//! | `GET /metrics`, `/v1/stats`, `/v1/stats/live` | [`stats`] |
//! | `GET /varz`, `/connz`, `/subsz`, `/jsz`, `/healthz` (nats-server's) | [`monitor`] |
//! | `GET /`, `/chat`, `/assets/{file}` | [`pages`] |

mod auth;
mod error;
mod incoming;
mod monitor;
mod pages;
mod protocol_ws;
mod publish;
mod sse;
mod starting;
mod stats;
mod streams;
mod wire;
mod ws;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tracing::warn;

use crate::shared::Shared;

pub(crate) use error::HttpError;
pub(crate) use incoming::Peer;
pub(crate) use starting::Starting;

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct Web {
    pub(crate) shared: Arc<Shared>,
    /// Whether the NATS listener is on (`/nats` serves NATS only then).
    pub(crate) nats: bool,
    /// The MQTT server, which `/mqtt` WebSocket connections are served by.
    pub(crate) mqtt: Option<Arc<crate::listener::mqtt::MqttServer>>,
}

/// A client has this long to send a request's headers once the connection
/// is ready for a request: after it connects, and again after each response
/// on a kept-alive connection, so a connection idle between requests is
/// closed too. A client that opens connections and never finishes a request
/// would otherwise hold them (and their place under the connection limits)
/// for good.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the web listener until shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    nats: bool,
    mqtt: Option<Arc<crate::listener::mqtt::MqttServer>>,
) {
    let web = Web {
        shared: shared.clone(),
        nats,
        mqtt,
    };
    serve_app(listener, shared, router(web)).await;
}

/// Serves the monitoring listener (`--monitor`) until shutdown: nats-server's
/// endpoints only, without authentication, as nats-server's port 8222.
pub(crate) async fn serve_monitor(listener: TcpListener, shared: Arc<Shared>) {
    let web = Web {
        shared: shared.clone(),
        nats: false,
        mqtt: None,
    };
    serve_app(listener, shared, monitor::router(web)).await;
}

async fn serve_app(listener: TcpListener, shared: Arc<Shared>, app: Router) {
    let shutdown = shared.shutdown.clone();
    let mut incoming = match incoming::Incoming::start(listener, shared.clone()) {
        Ok(incoming) => incoming,
        Err(error) => {
            warn!(%error, "web listener failed to start");
            return;
        }
    };
    let tracker = shared.tracker.clone();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (io, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            next = incoming.next() => match next {
                Some(pair) => pair,
                None => return,
            },
        };
        let service = connection_service(app.clone(), peer);
        let connection = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    // Finish the request in progress, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "web connection ended");
            }
        });
    }
}

/// The router as hyper calls it for one connection: every request carries
/// the peer (`ConnectInfo<Peer>`), as `axum::serve` would add it.
fn connection_service(
    app: Router,
    peer: Peer,
) -> TowerToHyperService<
    impl tower::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone,
> {
    use tower::ServiceExt;
    let service = app.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer.clone()));
        request
    });
    TowerToHyperService::new(service)
}

fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/chat", get(pages::chat))
        .route("/assets/{file}", get(pages::asset))
        .route("/metrics", get(stats::metrics))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/stats/live", get(stats::live))
        .route("/v1/publish/{subject}", post(publish::publish))
        .route("/v1/subscribe/{pattern}", get(sse::subscribe))
        .route("/v1/ws", get(ws::upgrade))
        .route("/nats", get(protocol_ws::nats))
        .route("/mqtt", get(protocol_ws::mqtt))
        .route("/v1/streams", get(streams::list).post(streams::create))
        .route(
            "/v1/streams/{name}",
            get(streams::info)
                .put(streams::update)
                .delete(streams::delete),
        )
        .route("/v1/streams/{name}/messages", get(streams::messages))
        .route(
            "/v1/streams/{name}/messages/{seq}",
            get(streams::message).delete(streams::delete_message),
        )
        .route("/v1/streams/{name}/purge", post(streams::purge))
        .merge(monitor::routes())
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            auth::require,
        ))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            monitor::count,
        ))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            count_request,
        ))
        .with_state(web)
}

async fn count_request(State(web): State<Web>, request: Request, next: Next) -> Response {
    web.shared
        .stats
        .http_requests
        .fetch_add(1, Ordering::Relaxed);
    next.run(request).await
}
