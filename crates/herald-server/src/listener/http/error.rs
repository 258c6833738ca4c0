//! Errors as the web API reports them: a status and a JSON body
//! `{"error": "...", "code": "..."}` (plus JetStream's codes for stream calls).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A refused request.
#[derive(Debug)]
pub(crate) struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// JetStream's code, for stream calls.
    err_code: Option<u16>,
}

impl HttpError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            err_code: None,
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<herald_store::ApiError> for HttpError {
    fn from(e: herald_store::ApiError) -> Self {
        let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match e.code {
            404 => "not_found",
            400 => "bad_request",
            409 => "conflict",
            503 => "unavailable",
            _ => "stream_error",
        };
        Self {
            status,
            code,
            message: e.description,
            err_code: (e.err_code != 0).then_some(e.err_code),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message, "code": self.code });
        if let Some(err_code) = self.err_code {
            body["err_code"] = err_code.into();
        }
        (self.status, Json(body)).into_response()
    }
}

/// Any route not listed.
pub(crate) async fn not_found() -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}
