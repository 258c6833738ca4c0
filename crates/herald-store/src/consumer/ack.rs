//! The ack protocol: the reply subject of every delivery, and what a client
//! publishes to it.
//!
//! Reply subjects use JetStream's v1 form,
//! `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`,
//! which is the one async-nats parses.

use std::time::Duration;

use bytes::BytesMut;
use herald_core::Subject;
use serde::Deserialize;

use super::pull::PullRequest;

/// Prefix of every ack subject.
pub(crate) const ACK_PREFIX: &str = "$JS.ACK.";

/// The ack subject of one delivery. Stream and consumer names were checked
/// when they were created (one token each, no wildcards), and the rest are
/// numbers, so the subject is valid without checking it again: this runs
/// once per delivered message.
pub(crate) fn ack_subject(
    stream: &str,
    consumer: &str,
    delivered: u64,
    stream_seq: u64,
    consumer_seq: u64,
    time: i64,
    pending: u64,
) -> Subject {
    let mut numbers = itoa::Buffer::new();
    let mut out = BytesMut::with_capacity(ACK_PREFIX.len() + stream.len() + consumer.len() + 64);
    out.extend_from_slice(ACK_PREFIX.as_bytes());
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b".");
    out.extend_from_slice(consumer.as_bytes());
    for n in [delivered, stream_seq, consumer_seq] {
        out.extend_from_slice(b".");
        out.extend_from_slice(numbers.format(n).as_bytes());
    }
    out.extend_from_slice(b".");
    out.extend_from_slice(numbers.format(time).as_bytes());
    out.extend_from_slice(b".");
    out.extend_from_slice(numbers.format(pending).as_bytes());
    Subject::from_wire_unchecked(out.freeze())
}

/// What an ack subject names (borrowed from the subject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AckTarget<'a> {
    pub(crate) stream: &'a str,
    pub(crate) consumer: &'a str,
    pub(crate) stream_seq: u64,
}

/// Parses an ack subject (v1 form).
pub(crate) fn parse_ack_subject(subject: &str) -> Option<AckTarget<'_>> {
    let mut tokens = subject.strip_prefix(ACK_PREFIX)?.split('.');
    let mut next = || tokens.next();
    let (stream, consumer) = (next()?, next()?);
    let _delivered = next()?;
    let stream_seq = next()?.parse().ok()?;
    let (_consumer_seq, _time, _pending) = (next()?, next()?, next()?);
    if next().is_some() {
        return None;
    }
    Some(AckTarget {
        stream,
        consumer,
        stream_seq,
    })
}

/// What the client said about a delivery.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AckKind {
    /// Done with it.
    Ack,
    /// Redeliver (after the delay, if any).
    Nak(Option<Duration>),
    /// Still working: restart the ack wait.
    Progress,
    /// Ack, then deliver more to the ack's reply subject.
    Next(PullRequest),
    /// Never redeliver.
    Term(String),
}

#[derive(Deserialize)]
struct NakDelay {
    #[serde(default)]
    delay: i64,
}

/// Parses an ack payload. Unknown payloads are plain acks, as nats-server
/// treats them.
pub(crate) fn parse_ack(payload: &[u8]) -> AckKind {
    let text = std::str::from_utf8(payload).unwrap_or("").trim();
    if text.is_empty() || text == "+ACK" || text == "+OK" {
        return AckKind::Ack;
    }
    if let Some(rest) = text.strip_prefix("-NAK") {
        let rest = rest.trim();
        if rest.is_empty() {
            return AckKind::Nak(None);
        }
        if let Ok(d) = serde_json::from_str::<NakDelay>(rest) {
            return AckKind::Nak(
                u64::try_from(d.delay)
                    .ok()
                    .filter(|&n| n > 0)
                    .map(Duration::from_nanos),
            );
        }
        return AckKind::Nak(humantime_like(rest));
    }
    if text == "+WPI" {
        return AckKind::Progress;
    }
    if let Some(rest) = text.strip_prefix("+NXT") {
        return AckKind::Next(PullRequest::parse(rest.trim().as_bytes()).unwrap_or_default());
    }
    if let Some(rest) = text.strip_prefix("+TERM") {
        return AckKind::Term(rest.trim().to_owned());
    }
    AckKind::Ack
}

/// Go-style durations as `-NAK 5s` sends them: `500ms`, `5s`, `2m`, `1h`.
fn humantime_like(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_round_trip() {
        let s = ack_subject("ORDERS", "proc", 2, 41, 57, 1_714_557_600_123_456_789, 3);
        assert_eq!(
            s.as_str(),
            Some("$JS.ACK.ORDERS.proc.2.41.57.1714557600123456789.3")
        );
        assert_eq!(
            Subject::new(s.as_str().unwrap_or_default()).as_ref(),
            Ok(&s),
            "a valid subject"
        );
        let t = parse_ack_subject(s.as_str().unwrap_or_default()).unwrap();
        assert_eq!((t.stream, t.consumer, t.stream_seq), ("ORDERS", "proc", 41));
        assert_eq!(parse_ack_subject("$JS.ACK.a.b.1.2.3.4.5.6"), None);
        assert_eq!(parse_ack_subject("$JS.ACK.a.b.c"), None);
        assert_eq!(parse_ack_subject("$JS.ACK.S.C.1.x.1.1.1"), None);
    }

    #[test]
    fn ack_payloads() {
        assert_eq!(parse_ack(b""), AckKind::Ack);
        assert_eq!(parse_ack(b"+ACK"), AckKind::Ack);
        assert_eq!(parse_ack(b"-NAK"), AckKind::Nak(None));
        assert_eq!(
            parse_ack(br#"-NAK {"delay":2000000000}"#),
            AckKind::Nak(Some(Duration::from_secs(2)))
        );
        assert_eq!(
            parse_ack(b"-NAK 500ms"),
            AckKind::Nak(Some(Duration::from_millis(500)))
        );
        assert_eq!(parse_ack(b"+WPI"), AckKind::Progress);
        assert_eq!(
            parse_ack(b"+TERM bad input"),
            AckKind::Term("bad input".into())
        );
        assert!(matches!(parse_ack(b"+NXT 5"), AckKind::Next(r) if r.batch == 5));
    }
}
