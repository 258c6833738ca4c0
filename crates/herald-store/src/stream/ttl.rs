//! Per-message TTL (`Nats-TTL`, streams with `allow_msg_ttl`) and the
//! subject delete markers a stream leaves when a subject's last message
//! ages out (`subject_delete_marker_ttl`), as nats-server 2.11 does them.
//!
//! Expiries are kept in time order, so the writer's rounds remove what is
//! due without looking at anything else; messages that must never expire
//! are remembered so the `max_age` sweep steps over them.

use std::collections::BTreeSet;
use std::time::Duration;

use ahash::AHashSet;
use herald_core::Headers;

use crate::api_error::ApiError;

/// The header giving a message its own time to live.
pub(crate) const TTL_HEADER: &str = "Nats-TTL";
/// The header naming why a marker was written.
pub(crate) const MARKER_REASON: &str = "Nats-Marker-Reason";

/// A message's own time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageTtl {
    /// Expires this long after it is stored.
    After(Duration),
    /// Never expires, not even by the stream's `max_age`.
    Never,
}

/// Parses a `Nats-TTL` value as nats-server does: `never`, a Go duration
/// of at least a second (`90s`, `1h30m`; truncated to whole seconds), or a
/// positive number of seconds. An empty value is no TTL (`Ok(None)`).
pub(crate) fn parse(raw: &str) -> Result<Option<MessageTtl>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.eq_ignore_ascii_case("never") {
        return Ok(Some(MessageTtl::Never));
    }
    if let Some(d) = go_duration(raw) {
        if d < Duration::from_secs(1) {
            return Err(invalid());
        }
        return Ok(Some(MessageTtl::After(Duration::from_secs(d.as_secs()))));
    }
    match raw.parse::<i64>() {
        Ok(n) if n > 0 && raw.as_bytes()[0].is_ascii_digit() => {
            Ok(Some(MessageTtl::After(Duration::from_secs(n as u64))))
        }
        _ => Err(invalid()),
    }
}

/// The TTL a stored message asks for, if its headers carry a valid one.
pub(crate) fn of_headers(headers: Option<&Headers>) -> Option<MessageTtl> {
    parse(headers?.get(TTL_HEADER)?).ok().flatten()
}

fn invalid() -> ApiError {
    ApiError::new(400, 10165, "invalid per-message TTL")
}

/// nats-server's `JSMessageTTLDisabledErr`.
pub(crate) fn disabled() -> ApiError {
    ApiError::new(400, 10166, "per-message TTL is disabled")
}

/// A Go duration string (`300ms`, `1.5h`, `2h45m`): a sequence of decimal
/// numbers, each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`).
pub(crate) fn go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return None;
        }
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    if negative {
        // Valid, but below a second.
        return Some(Duration::ZERO);
    }
    (total.is_finite() && total < u64::MAX as f64).then(|| Duration::from_nanos(total as u64))
}

/// Formats whole seconds of `d` as Go's `Duration.String()` does (`5s`,
/// `1m30s`, `1h0m0s`): how nats-server writes a marker's `Nats-TTL`.
pub(crate) fn go_seconds(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Whether a stored message is a marker of a subject's end (its own
/// expiry leaves no marker): a subject delete marker, or a KV purge.
pub(crate) fn is_marker(headers: Option<&Headers>) -> bool {
    headers.is_some_and(|h| {
        h.get(MARKER_REASON).is_some_and(|v| !v.is_empty()) || h.get(KV_OPERATION) == Some("PURGE")
    })
}

/// `headers` without their `Nats-TTL` lines and with `Nats-TTL: <seconds>` last.
pub(crate) fn with_ttl(headers: &Headers, seconds: u64) -> Option<Headers> {
    let mut builder = Headers::builder();
    for (name, value) in headers.iter().filter(|(n, _)| *n != TTL_HEADER) {
        builder = builder.insert(name, value).ok()?;
    }
    Some(
        builder
            .insert(TTL_HEADER, &seconds.to_string())
            .ok()?
            .build(),
    )
}

/// The header a Key-Value client marks deletes and purges with.
const KV_OPERATION: &str = "KV-Operation";

/// When messages with a TTL expire, and which must never.
#[derive(Debug, Default)]
pub(crate) struct Expiries {
    due: BTreeSet<(i64, u64)>,
    never: AHashSet<u64>,
    /// Subject delete markers still in the stream (their own going leaves
    /// no marker).
    markers: AHashSet<u64>,
}

impl Expiries {
    /// Records `seq`, stored at `time`, with `ttl`.
    pub(crate) fn add(&mut self, seq: u64, time: i64, ttl: MessageTtl) {
        match ttl {
            MessageTtl::After(d) => {
                let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                self.due.insert((time.saturating_add(nanos), seq));
            }
            MessageTtl::Never => {
                self.never.insert(seq);
            }
        }
    }

    /// When the first expiry is due.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.due.first().map(|&(at, _)| at)
    }

    /// Takes the sequences due at `now` (some may be gone already).
    pub(crate) fn take_due(&mut self, now: i64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(&(at, seq)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            out.push(seq);
        }
        out
    }

    /// Whether `seq` must outlive `max_age`.
    pub(crate) fn never_expires(&self, seq: u64) -> bool {
        !self.never.is_empty() && self.never.contains(&seq)
    }

    /// Notes that `seq` is a subject delete marker.
    pub(crate) fn mark(&mut self, seq: u64) {
        self.markers.insert(seq);
    }

    /// Whether `seq` is a subject delete marker.
    pub(crate) fn is_marker(&self, seq: u64) -> bool {
        !self.markers.is_empty() && self.markers.contains(&seq)
    }

    /// Whether any message must outlive `max_age`.
    pub(crate) fn has_never(&self) -> bool {
        !self.never.is_empty()
    }

    /// Forgets `seq` (removed some other way); the timed entry is dropped
    /// when it comes due.
    pub(crate) fn forget(&mut self, seq: u64) {
        if !self.never.is_empty() {
            self.never.remove(&seq);
        }
        if !self.markers.is_empty() {
            self.markers.remove(&seq);
        }
    }

    /// Forgets everything (a full purge).
    pub(crate) fn clear(&mut self) {
        self.due.clear();
        self.never.clear();
        self.markers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_nats_server_does() {
        let secs = |n| Ok(Some(MessageTtl::After(Duration::from_secs(n))));
        assert_eq!(parse("5"), secs(5));
        assert_eq!(parse("5s"), secs(5));
        assert_eq!(parse("1m30s"), secs(90));
        assert_eq!(parse("1.5s"), secs(1));
        assert_eq!(parse("2h"), secs(7200));
        assert_eq!(parse("never"), Ok(Some(MessageTtl::Never)));
        assert_eq!(parse("NEVER"), Ok(Some(MessageTtl::Never)));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("05"), secs(5));
        for bad in [
            "0", "0s", "500ms", "-1", "-1s", "+5", "1d", "1H", "1e3", "0x10", "x", "5x", "s",
            "1..2s",
        ] {
            assert_eq!(parse(bad).unwrap_err().err_code, 10165, "{bad:?}");
        }
    }

    #[test]
    fn marker_ttls_read_as_go_writes_them() {
        let f = |s| go_seconds(Duration::from_secs(s));
        assert_eq!(
            (f(1), f(5), f(60), f(90)),
            ("1s".into(), "5s".into(), "1m0s".into(), "1m30s".into())
        );
        assert_eq!((f(3600), f(5400)), ("1h0m0s".into(), "1h30m0s".into()));
        assert_eq!(go_seconds(Duration::from_millis(1500)), "1s");
    }

    #[test]
    fn due_in_time_order() {
        let mut e = Expiries::default();
        e.add(1, 100, MessageTtl::After(Duration::from_nanos(50)));
        e.add(2, 0, MessageTtl::After(Duration::from_nanos(10)));
        e.add(3, 0, MessageTtl::Never);
        assert_eq!(e.take_due(9), Vec::<u64>::new());
        assert_eq!(e.take_due(200), vec![2, 1]);
        assert!(e.never_expires(3));
        e.forget(3);
        assert!(!e.has_never());
    }
}
