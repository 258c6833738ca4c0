//! The error type of `herald-core`.

use std::sync::Arc;
use std::time::Duration;

use crate::subject::SubjectError;

/// What can go wrong in a broker call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A subject, pattern or queue name that does not follow the rules.
    #[error(transparent)]
    InvalidSubject(#[from] SubjectError),
    /// A request found nobody subscribed to its subject.
    #[error("no responders for request on {subject:?}")]
    NoResponders {
        /// The subject the request was published on.
        subject: String,
    },
    /// A request got no reply in time.
    #[error("request on {subject:?} timed out after {timeout:?}")]
    Timeout {
        /// The subject the request was published on.
        subject: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The subscription was closed before a message arrived.
    #[error("subscription closed")]
    Closed,
    /// A payload that could not be encoded or decoded as JSON.
    #[error("JSON payload on {subject:?}: {source}")]
    Json {
        /// The message's subject.
        subject: String,
        /// The serde error.
        source: Arc<serde_json::Error>,
    },
    /// An invalid header name or value.
    #[error(transparent)]
    Header(#[from] crate::message::HeaderError),
}

impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
