//! A protocol over WebSocket, served by that protocol's own listener code
//! over the WebSocket read and written as bytes (`listener::ws_bytes`):
//! the browser's real address, the same limits and sessions, `wss://`
//! where the web port has TLS. Frame boundaries mean nothing, as nats.ws and
//! MQTT.js split and join operations across frames.
//!
//! - `GET /nats`: NATS, as nats.ws, nats.js and async-nats `ws://` speak it.
//! - `GET /mqtt`: MQTT 3.1.1 / 5 (subprotocol `mqtt`, binary frames), as
//!   Mosquitto's websockets listener and EMQX's port 8083 serve MQTT.js and
//!   paho-mqtt.

use std::future::Future;
use std::sync::atomic::Ordering;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{HttpError, Peer, Web};

/// Room for a protocol's framing (beyond the control line) around the
/// largest payload allowed.
const FRAMING: usize = 64 * 1024;

pub(crate) async fn nats(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ws: WebSocketUpgrade,
) -> Response {
    if !web.nats {
        return off("nats_off", "the NATS listener is off");
    }
    let shared = web.shared.clone();
    serve(&web, peer, ws, "nats", move |socket, peer| {
        crate::listener::nats::serve_websocket(shared, socket, peer)
    })
}

pub(crate) async fn mqtt(
    State(web): State<Web>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(mqtt) = web.mqtt.clone() else {
        return off("mqtt_off", "the MQTT listener is off");
    };
    serve(&web, peer, ws, "mqtt", move |socket, peer| {
        mqtt.serve_websocket(socket, peer)
    })
}

fn off(code: &'static str, text: &'static str) -> Response {
    HttpError::new(StatusCode::SERVICE_UNAVAILABLE, code, text).into_response()
}

/// Upgrades to a WebSocket offering `protocol` and runs `connection` on it,
/// counted among the WebSocket connections. The web connection it upgraded
/// holds the client's place under the connection limits.
fn serve<F, C>(
    web: &Web,
    peer: Peer,
    ws: WebSocketUpgrade,
    protocol: &'static str,
    connection: C,
) -> Response
where
    C: FnOnce(WebSocket, Peer) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = web.shared.limits.max_payload + web.shared.limits.max_control_line + FRAMING;
    let shared = web.shared.clone();
    ws.max_message_size(limit.max(1 << 20))
        .protocols([protocol])
        .on_upgrade(move |socket| async move {
            let count = &shared.stats.websocket_connections;
            count.fetch_add(1, Ordering::Relaxed);
            connection(socket, peer).await;
            count.fetch_sub(1, Ordering::Relaxed);
        })
}
