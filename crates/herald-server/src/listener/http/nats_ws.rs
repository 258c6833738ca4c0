//! `GET /nats`: the NATS protocol over WebSocket, as nats.ws and nats.js
//! speak it. Each WebSocket is bridged byte for byte to a connection of
//! herald's own NATS listener on loopback, so the protocol has exactly one
//! implementation; frame boundaries mean nothing (one frame may carry many
//! operations, one operation may span frames).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{HttpError, Web};

pub(crate) async fn upgrade(State(web): State<Web>, ws: WebSocketUpgrade) -> Response {
    let Some(addr) = web.nats_addr else {
        return HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "nats_off",
            "the NATS listener is off",
        )
        .into_response();
    };
    let limit = web.shared.limits.max_payload + web.shared.limits.max_control_line + 1024;
    ws.max_message_size(limit.max(1 << 20))
        .protocols(["nats"])
        .on_upgrade(move |socket| async move {
            web.shared
                .stats
                .websocket_connections
                .fetch_add(1, Ordering::Relaxed);
            match TcpStream::connect(addr).await {
                Ok(tcp) => bridge(socket, tcp, &web).await,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the NATS listener for a WebSocket client")
                }
            }
            web.shared
                .stats
                .websocket_connections
                .fetch_sub(1, Ordering::Relaxed);
        })
}

async fn bridge(mut socket: WebSocket, tcp: TcpStream, web: &Web) {
    let _ = tcp.set_nodelay(true);
    let (mut from_nats, mut to_nats) = tcp.into_split();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        tokio::select! {
            () = web.shared.shutdown.cancelled() => break,
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    if to_nats.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Text(text))) => {
                    if to_nats.write_all(text.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            read = from_nats.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let chunk = buf.split().freeze();
                    if socket.send(WsMessage::Binary(chunk)).await.is_err() {
                        break;
                    }
                    if buf.capacity() < 16 * 1024 {
                        buf.reserve(64 * 1024);
                    }
                }
            },
        }
    }
    let _ = socket.send(WsMessage::Close(None)).await;
}
