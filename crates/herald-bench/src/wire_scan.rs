//! Counting scanners for the lean clients: they walk a read buffer frame by
//! frame and count deliveries without building a value per frame (no
//! allocation, no reference counting), so a receiving benchmark client costs
//! far less per message than the server it measures.
//!
//! Each scanner looks only at whole frames and says how many bytes they
//! took; the caller drops those bytes once per read and keeps the rest for
//! the next one.

use std::time::Instant;

use bytes::{Buf, BytesMut};
use memchr::memchr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::scenario::Tally;

/// What a scan of a server's output found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of whole frames (values) at the front of the buffer.
    pub consumed: usize,
    /// Deliveries: NATS `MSG` and `HMSG`, Redis `message` and `pmessage` pushes.
    pub messages: u64,
    /// Redis integer replies (what `PUBLISH` answers).
    pub integers: u64,
    /// Other frames (`+OK`, `INFO`, subscribe confirmations, ...).
    pub other: u64,
    /// The server sent an error or something this scanner cannot read.
    pub failed: bool,
}

/// Scans the whole NATS frames at the front of `buf`, answering each `PING` into `replies`.
pub fn scan_nats(buf: &[u8], replies: &mut BytesMut) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    while let Some(newline) = memchr(b'\n', &buf[at..]) {
        let line = &buf[at..at + newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let after_line = at + newline + 1;
        if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
            // The last argument is the length of what follows (headers and
            // payload together for HMSG); then a CRLF.
            let Some(size) = line.rsplit(|b| *b == b' ').next().and_then(parse_decimal) else {
                scan.failed = true;
                break;
            };
            let end = after_line + size + 2;
            if end > buf.len() {
                break;
            }
            scan.messages += 1;
            at = end;
            continue;
        }
        if line == b"PING" {
            replies.extend_from_slice(b"PONG\r\n");
        } else if line == b"+OK" || line == b"PONG" || line.starts_with(b"INFO ") {
            scan.other += 1;
        } else {
            // `-ERR`, or nothing a NATS server sends.
            scan.failed = true;
        }
        at = after_line;
        if scan.failed {
            break;
        }
    }
    scan.consumed = at;
    scan
}

/// Scans the whole RESP values at the front of `buf` (nothing in them needs an answer).
pub fn scan_resp(buf: &[u8], _replies: &mut BytesMut) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    loop {
        match skip_value(buf, at, 0) {
            Skip::Value { end, kind } => {
                match kind {
                    Kind::Message => scan.messages += 1,
                    Kind::Integer => scan.integers += 1,
                    Kind::Error => scan.failed = true,
                    Kind::Other => scan.other += 1,
                }
                at = end;
                if scan.failed {
                    break;
                }
            }
            Skip::Incomplete => break,
            Skip::Invalid => {
                scan.failed = true;
                break;
            }
        }
    }
    scan.consumed = at;
    scan
}

/// What one RESP value was, as far as a counter cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    Integer,
    Error,
    Other,
}

enum Skip {
    Value { end: usize, kind: Kind },
    Incomplete,
    Invalid,
}

/// Scans the whole MQTT packets at the front of `buf`, acknowledging each
/// QoS 1 `PUBLISH` into `replies` (`PUBACK`, MQTT 3.1.1).
pub fn scan_mqtt(buf: &[u8], replies: &mut BytesMut) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    while let Some((header, body_len)) = mqtt_header(&buf[at..]) {
        let end = at + header + body_len;
        if end > buf.len() {
            break;
        }
        let flags = buf[at];
        let body = &buf[at + header..end];
        if flags >> 4 == 3 {
            scan.messages += 1;
            if (flags >> 1) & 3 == 1 {
                // Topic (length-prefixed), then the packet id.
                let topic = body.get(..2).map_or(usize::MAX, |n| {
                    usize::from(u16::from_be_bytes([n[0], n[1]]))
                });
                let Some(id) = topic.checked_add(2).and_then(|at| body.get(at..at + 2)) else {
                    scan.failed = true;
                    break;
                };
                replies.extend_from_slice(&[0x40, 0x02, id[0], id[1]]);
            }
        } else {
            scan.other += 1;
        }
        at = end;
    }
    if buf.len() - at >= 5 && mqtt_header(&buf[at..]).is_none() {
        // More than four length bytes: not MQTT.
        scan.failed = true;
    }
    scan.consumed = at;
    scan
}

/// The fixed header's length and the remaining length it declares, once
/// both are whole.
fn mqtt_header(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for (i, byte) in buf.iter().enumerate().skip(1).take(4) {
        len |= usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            return Some((i + 1, len));
        }
    }
    None
}

/// Spawns a receiver that counts what `scan` finds in `stream`'s output
/// into `tally` until the run stops or the connection fails, writing back
/// the answers the scanner owes (NATS `PONG`s, MQTT `PUBACK`s). Returns when
/// the last delivery arrived.
pub(crate) fn spawn_counter(
    mut stream: TcpStream,
    mut buf: BytesMut,
    tally: Tally,
    scan: fn(&[u8], &mut BytesMut) -> Scan,
) -> JoinHandle<Option<Instant>> {
    tokio::spawn(async move {
        let mut last = None;
        let mut replies = BytesMut::new();
        loop {
            let found = scan(&buf, &mut replies);
            buf.advance(found.consumed);
            if found.messages > 0 {
                tally.hits(found.messages);
                last = Some(Instant::now());
            }
            let answered = replies.is_empty() || stream.write_all(&replies).await.is_ok();
            replies.clear();
            if found.failed || !answered {
                tally.disconnected();
                return last;
            }
            if buf.capacity() - buf.len() < 64 * 1024 {
                buf.reserve(256 * 1024);
            }
            tokio::select! {
                biased;
                () = tally.stop().cancelled() => return last,
                read = stream.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => {
                        tally.disconnected();
                        return last;
                    }
                    Ok(_) => {}
                },
            }
        }
    })
}

/// Aggregates nested deeper than this are refused (pub/sub output nests one level).
const MAX_DEPTH: usize = 8;

/// Skips the RESP value starting at `at`, `depth` aggregates deep.
fn skip_value(buf: &[u8], at: usize, depth: usize) -> Skip {
    let Some(&kind) = buf.get(at) else {
        return Skip::Incomplete;
    };
    if depth > MAX_DEPTH {
        return Skip::Invalid;
    }
    let Some(newline) = memchr(b'\n', &buf[at..]) else {
        return Skip::Incomplete;
    };
    let line = &buf[at + 1..at + newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let after_line = at + newline + 1;
    match kind {
        b'+' | b'_' | b'#' | b',' | b'(' => Skip::Value {
            end: after_line,
            kind: Kind::Other,
        },
        b':' => Skip::Value {
            end: after_line,
            kind: Kind::Integer,
        },
        b'-' => Skip::Value {
            end: after_line,
            kind: Kind::Error,
        },
        b'$' | b'=' | b'!' => {
            if line == b"-1" {
                return Skip::Value {
                    end: after_line,
                    kind: Kind::Other,
                };
            }
            let Some(len) = parse_decimal(line) else {
                return Skip::Invalid;
            };
            let end = after_line + len + 2;
            if end > buf.len() {
                return Skip::Incomplete;
            }
            Skip::Value {
                end,
                kind: if kind == b'!' {
                    Kind::Error
                } else {
                    Kind::Other
                },
            }
        }
        b'*' | b'>' | b'~' | b'%' | b'|' => {
            if line == b"-1" {
                return Skip::Value {
                    end: after_line,
                    kind: Kind::Other,
                };
            }
            let Some(mut count) = parse_decimal(line) else {
                return Skip::Invalid;
            };
            if matches!(kind, b'%' | b'|') {
                count *= 2;
            }
            let first = after_line;
            let mut end = after_line;
            for _ in 0..count {
                match skip_value(buf, end, depth + 1) {
                    Skip::Value { end: next, .. } => end = next,
                    other => return other,
                }
            }
            let message = count >= 3 && {
                let name = bulk_at(buf, first);
                name == Some(b"message") || name == Some(b"pmessage")
            };
            Skip::Value {
                end,
                kind: if message { Kind::Message } else { Kind::Other },
            }
        }
        _ => Skip::Invalid,
    }
}

/// The data of the bulk string at `at` (already known to be whole).
fn bulk_at(buf: &[u8], at: usize) -> Option<&[u8]> {
    let rest = buf.get(at..)?;
    if rest.first() != Some(&b'$') {
        return None;
    }
    let newline = memchr(b'\n', rest)?;
    let len = parse_decimal(rest[1..newline].strip_suffix(b"\r")?)?;
    rest.get(newline + 1..newline + 1 + len)
}

fn parse_decimal(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + usize::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nats_messages_and_stops_at_a_partial_frame() {
        let wire = b"INFO {}\r\n+OK\r\nMSG a.b 1 5\r\nhello\r\nHMSG a.b 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\nMSG a 1 3\r\nab";
        let mut replies = BytesMut::new();
        let scan = scan_nats(wire, &mut replies);
        assert_eq!(scan.messages, 2);
        assert_eq!(&replies[..], b"PONG\r\n");
        assert!(!scan.failed);
        assert_eq!(&wire[scan.consumed..], b"MSG a 1 3\r\nab");
    }

    #[test]
    fn a_nats_error_fails_the_scan() {
        let scan = scan_nats(
            b"MSG a 1 1\r\nx\r\n-ERR 'Slow Consumer'\r\n",
            &mut BytesMut::new(),
        );
        assert_eq!(scan.messages, 1);
        assert!(scan.failed);
    }

    #[test]
    fn counts_resp2_and_resp3_messages() {
        let wire = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n\
            *3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n\
            >4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$0\r\n\r\n\
            :3\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$5\r\nhel";
        let scan = scan_resp(wire, &mut BytesMut::new());
        assert_eq!(scan.messages, 2);
        assert_eq!(scan.integers, 1);
        assert_eq!(scan.other, 1);
        assert!(!scan.failed);
        assert_eq!(
            &wire[scan.consumed..],
            b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$5\r\nhel"
        );
    }

    #[test]
    fn a_resp_error_fails_the_scan() {
        let scan = scan_resp(b":1\r\n-ERR nope\r\n:2\r\n", &mut BytesMut::new());
        assert_eq!(scan.integers, 1);
        assert!(scan.failed);
        assert!(scan_resp(b"?what\r\n", &mut BytesMut::new()).failed);
    }

    #[test]
    fn counts_mqtt_publishes_and_acknowledges_qos_1() {
        // SUBACK, a QoS 0 PUBLISH "a" "hi", a QoS 1 PUBLISH "a" id 7 "x", then half a packet.
        let wire = [
            &[0x90, 0x03, 0x00, 0x01, 0x00][..],
            &[0x30, 0x05, 0x00, 0x01, b'a', b'h', b'i'],
            &[0x32, 0x06, 0x00, 0x01, b'a', 0x00, 0x07, b'x'],
            &[0x30, 0x05, 0x00],
        ]
        .concat();
        let mut replies = BytesMut::new();
        let scan = scan_mqtt(&wire, &mut replies);
        assert_eq!(scan.messages, 2);
        assert_eq!(scan.other, 1);
        assert!(!scan.failed);
        assert_eq!(&replies[..], &[0x40, 0x02, 0x00, 0x07]);
        assert_eq!(&wire[scan.consumed..], &[0x30, 0x05, 0x00]);
    }
}
