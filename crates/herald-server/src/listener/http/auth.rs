//! Authentication on the web port: `Authorization: Bearer <token>` or
//! `Basic` (user and password), or `?access_token=` for browsers'
//! `EventSource` and `WebSocket`, which cannot set headers. A page load
//! without credentials gets `401` with `WWW-Authenticate: Basic`, so the
//! browser asks for them once and sends them with every later request,
//! WebSocket and event stream included. `/healthz` and `/assets/` are
//! open, and `/nats`
//! authenticates inside the NATS protocol (CONNECT), as NATS clients do.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{HttpError, Web};
use crate::auth::{Credentials, Identity};

enum Presented {
    Password(String, String),
    Token(String),
}

fn presented(request: &Request) -> Option<Presented> {
    if let Some(value) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Some(Presented::Token(token.trim().to_owned()));
        }
        if let Some(encoded) = value.strip_prefix("Basic ") {
            let decoded = BASE64.decode(encoded.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            return Some(Presented::Password(user.to_owned(), password.to_owned()));
        }
    }
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("access_token=")?;
        Some(Presented::Token(percent_decode(value)))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"herald\", charset=\"UTF-8\""),
    );
    response
}

/// Puts the client's [`Identity`] into the request, or answers 401.
pub(crate) async fn require(State(web): State<Web>, mut request: Request, next: Next) -> Response {
    let users = web.shared.users();
    let path = request.uri().path();
    // Page assets hold no data; pages opened with `?access_token=` need them.
    if !users.required() || path == "/healthz" || path == "/nats" || path.starts_with("/assets/") {
        request.extensions_mut().insert(Identity::anonymous());
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<super::Peer>>()
        .map(|info| info.0.clone());
    let cert_name = peer.as_ref().and_then(|p| p.cert_name.clone());
    if let Some(identity) = cert_name.and_then(|name| users.by_certificate(&name)) {
        request.extensions_mut().insert(identity);
        return next.run(request).await;
    }
    let Some(credentials) = presented(&request) else {
        return unauthorized("authentication required: a Bearer token or Basic credentials");
    };
    let identity = tokio::task::spawn_blocking(move || match &credentials {
        Presented::Password(user, password) => {
            users.authenticate_cached(Credentials::Password { user, password })
        }
        Presented::Token(token) => users.authenticate_cached(Credentials::Token(token)),
    })
    .await
    .ok()
    .flatten();
    match identity {
        Some(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        None => {
            tracing::warn!(peer = ?peer.map(|p| p.addr), "web authentication failed");
            web.shared
                .stats
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            unauthorized("invalid credentials")
        }
    }
}

/// A 403 for what `identity` may not do.
pub(crate) fn forbidden(what: String) -> HttpError {
    HttpError::new(StatusCode::FORBIDDEN, "permission_denied", what)
}
