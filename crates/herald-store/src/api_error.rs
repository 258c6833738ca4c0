//! Errors a stream operation reports to its caller, in JetStream's terms.
//!
//! Every refusal carries an HTTP-like `code`, JetStream's numeric `err_code`
//! and a description, because that is what NATS clients branch on (async-nats
//! creates a stream only when an info call fails with `code == 404`). The
//! HTTP API reuses the same triple.

use serde::{Deserialize, Serialize};

/// A refused stream or consumer operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{description} (code {code}, err_code {err_code})")]
pub struct ApiError {
    /// HTTP-like status.
    pub code: u16,
    /// JetStream error code (0 = none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub err_code: u16,
    /// What went wrong.
    pub description: String,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

impl ApiError {
    /// An error with all three parts.
    pub fn new(code: u16, err_code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            err_code,
            description: description.into(),
        }
    }

    /// 400/10003 bad request.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(400, 10003, description)
    }

    /// 400/10025 invalid JSON.
    pub fn invalid_json(err: impl std::fmt::Display) -> Self {
        Self::new(400, 10025, format!("invalid JSON: {err}"))
    }

    /// 500/10074: a single node (or a cluster without JetStream) asked for
    /// a stream with several replicas.
    pub fn not_clustered() -> Self {
        Self::new(
            500,
            10074,
            "replicas > 1 not supported in non-clustered mode",
        )
    }

    /// 404/10059 stream not found.
    pub fn stream_not_found() -> Self {
        Self::new(404, 10059, "stream not found")
    }

    /// 404/10014 consumer not found.
    pub fn consumer_not_found() -> Self {
        Self::new(404, 10014, "consumer not found")
    }

    /// 404/10037 no message found.
    pub fn no_message_found() -> Self {
        Self::new(404, 10037, "no message found")
    }

    /// 500/10052 invalid stream configuration.
    pub fn stream_config(description: impl Into<String>) -> Self {
        Self::new(500, 10052, description)
    }

    /// 500/10012 consumer create failed.
    pub fn consumer_create(description: impl Into<String>) -> Self {
        Self::new(500, 10012, description)
    }

    /// 403/19001 (herald's own code; nats-server has no read permissions
    /// on stored messages): the requester may not read what it asked for.
    pub fn not_permitted(description: impl Into<String>) -> Self {
        Self::new(403, 19001, description)
    }

    /// 500 with the store's own error (I/O on the data directory).
    pub fn storage(err: &crate::StoreError) -> Self {
        Self::new(500, 10049, format!("storage failure: {err}"))
    }
}

impl From<crate::StoreError> for ApiError {
    fn from(err: crate::StoreError) -> Self {
        Self::storage(&err)
    }
}
