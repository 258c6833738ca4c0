//! The pages, embedded in the binary: the dashboard at `/`, the chat room
//! at `/chat`, and their assets under `/assets/`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::HttpError;

const DASHBOARD: &str = include_str!("../../../assets/dashboard.html");
const CHAT: &str = include_str!("../../../assets/chat.html");

/// Every asset: name, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "herald.css",
        "text/css; charset=utf-8",
        include_str!("../../../assets/herald.css"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../assets/chat.js"),
    ),
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../assets/dashboard.js"),
    ),
];

pub(crate) async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

pub(crate) async fn chat() -> Html<&'static str> {
    Html(CHAT)
}

pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no asset {file:?}"),
        )
        .into_response(),
    }
}
