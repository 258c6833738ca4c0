//! Pull requests: what a client asks for on `CONSUMER.MSG.NEXT`, and the
//! status messages that end or keep alive a request.

use std::time::Duration;

use bytes::Bytes;
use herald_core::{Headers, Message, Subject};
use serde::Deserialize;

/// One pull request as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullRequest {
    pub(crate) batch: u64,
    pub(crate) expires: Duration,
    pub(crate) max_bytes: u64,
    pub(crate) no_wait: bool,
    pub(crate) idle_heartbeat: Duration,
}

impl Default for PullRequest {
    fn default() -> Self {
        Self {
            batch: 1,
            expires: Duration::ZERO,
            max_bytes: 0,
            no_wait: false,
            idle_heartbeat: Duration::ZERO,
        }
    }
}

#[derive(Deserialize)]
struct PullJson {
    #[serde(default)]
    batch: Option<i64>,
    #[serde(default)]
    expires: Option<i64>,
    #[serde(default)]
    max_bytes: Option<i64>,
    #[serde(default)]
    no_wait: Option<bool>,
    #[serde(default)]
    idle_heartbeat: Option<i64>,
}

impl PullRequest {
    /// Parses a request body: empty (one message), a decimal batch size, or JSON.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(body)
            .map_err(|_| "request is not UTF-8".to_owned())?
            .trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Self {
                batch: n.max(1),
                ..Self::default()
            });
        }
        let json: PullJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let nanos =
            |v: Option<i64>| Duration::from_nanos(u64::try_from(v.unwrap_or(0)).unwrap_or(0));
        let request = Self {
            batch: u64::try_from(json.batch.unwrap_or(1)).unwrap_or(1).max(1),
            expires: nanos(json.expires),
            max_bytes: u64::try_from(json.max_bytes.unwrap_or(0)).unwrap_or(0),
            no_wait: json.no_wait.unwrap_or(false),
            idle_heartbeat: nanos(json.idle_heartbeat),
        };
        if !request.idle_heartbeat.is_zero()
            && (request.expires.is_zero() || request.idle_heartbeat * 2 > request.expires)
        {
            return Err("heartbeat value too large".to_owned());
        }
        Ok(request)
    }
}

/// A status message (`HMSG` with a status header and no payload) to `to`.
pub(crate) fn status(
    to: &Subject,
    code: u16,
    description: &str,
    extra: &[(&str, String)],
) -> Message {
    let mut builder = Headers::builder_with_status(code, description);
    for (name, value) in extra {
        builder = match builder.insert(name, value) {
            Ok(b) => b,
            Err(_) => unreachable!("status header names and values are fixed ASCII"),
        };
    }
    Message::new(to.clone(), Bytes::new()).with_headers(builder.build())
}

/// The pending headers 408/409 statuses carry, so clients can account.
pub(crate) fn pending_headers(messages: u64, bytes: u64) -> Vec<(&'static str, String)> {
    vec![
        ("Nats-Pending-Messages", messages.to_string()),
        ("Nats-Pending-Bytes", bytes.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_request_form() {
        assert_eq!(PullRequest::parse(b"").unwrap().batch, 1);
        assert_eq!(PullRequest::parse(b"10").unwrap().batch, 10);
        let r = PullRequest::parse(br#"{"batch":200,"expires":30000000000,"max_bytes":0,"idle_heartbeat":15000000000,"min_pending":null,"group":null}"#).unwrap();
        assert_eq!(
            (r.batch, r.expires, r.idle_heartbeat),
            (200, Duration::from_secs(30), Duration::from_secs(15))
        );
        let r = PullRequest::parse(br#"{"batch":5,"no_wait":true}"#).unwrap();
        assert!(r.no_wait);
        assert!(PullRequest::parse(br#"{"batch":5,"idle_heartbeat":1000}"#).is_err());
        assert!(PullRequest::parse(b"{nope").is_err());
    }
}
