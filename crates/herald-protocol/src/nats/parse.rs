//! Parsers: bytes from the socket in, whole NATS frames out.
//!
//! Both parsers take the connection's read buffer and return `Ok(None)` until it holds a whole
//! frame, leaving the buffer untouched; the caller reads more and calls again. On `Ok(Some)` the
//! frame's bytes are split off the front of the buffer in one piece, and every field is a
//! [`Bytes`] slice of that piece (one shared allocation, no copies). Callers loop until
//! `Ok(None)`, so the common case (a buffer full of small `PUB`s) costs one `memchr` per line,
//! a short argument scan and one `split_to`.
//!
//! Violations are reported as soon as the buffered bytes prove them: an unknown operation name,
//! a control line that has outgrown the limit before its newline arrived, a declared payload
//! larger than the limit (before the payload arrives), and a wrong byte where the CRLF after a
//! payload belongs.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use super::{ClientOp, ConnectOptions, ProtocolError, ServerOp};
use crate::Limits;

/// Bytes a control line may hold on top of `max_control_line`. nats-server counts only the
/// argument bytes; the slack covers the operation name and the blanks after it, so a line
/// without a newline is rejected once it is certainly too long instead of being buffered
/// forever. (A line with more than a few dozen blanks after its operation name is therefore
/// rejected even if its arguments fit; no client writes one.)
const OP_SLACK: usize = 32;

/// Longest operation name (`CONNECT`).
const MAX_OP_LEN: usize = 7;

/// First bytes of every header block.
const HEADER_PREFIX: &[u8] = b"NATS/1.0";
/// Last bytes of every header block: the end of the last line and the empty line.
const HEADER_SUFFIX: &[u8] = b"\r\n\r\n";
/// The smallest header block, `NATS/1.0\r\n\r\n`.
const MIN_HEADER_LEN: usize = 12;

/// Most arguments any operation takes (`HMSG subject sid reply hdr total`).
const MAX_ARGS: usize = 5;

#[derive(Debug, Clone, Copy)]
enum ClientKind {
    Pub,
    Hpub,
    Sub,
    Unsub,
    Ping,
    Pong,
    Connect,
}

#[derive(Debug, Clone, Copy)]
enum ServerKind {
    Msg,
    Hmsg,
    Ping,
    Pong,
    Ok,
    Err,
    Info,
}

/// Operation names a server accepts, the hot ones first.
const CLIENT_OPS: &[(&[u8], ClientKind)] = &[
    (b"PUB", ClientKind::Pub),
    (b"HPUB", ClientKind::Hpub),
    (b"SUB", ClientKind::Sub),
    (b"UNSUB", ClientKind::Unsub),
    (b"PING", ClientKind::Ping),
    (b"PONG", ClientKind::Pong),
    (b"CONNECT", ClientKind::Connect),
];

/// Operation names a client accepts, the hot ones first.
const SERVER_OPS: &[(&[u8], ServerKind)] = &[
    (b"MSG", ServerKind::Msg),
    (b"HMSG", ServerKind::Hmsg),
    (b"PING", ServerKind::Ping),
    (b"PONG", ServerKind::Pong),
    (b"+OK", ServerKind::Ok),
    (b"-ERR", ServerKind::Err),
    (b"INFO", ServerKind::Info),
];

/// A complete control line at the front of the buffer.
struct Line<K> {
    kind: K,
    /// Start of the arguments (after the operation name and the blanks that follow it).
    args_start: usize,
    /// End of the arguments (before the line terminator).
    args_end: usize,
    /// First byte after the line terminator.
    next: usize,
}

impl<K> Line<K> {
    fn args(&self) -> Span {
        (self.args_start, self.args_end)
    }
}

/// Start and end offsets of one argument in the buffer.
type Span = (usize, usize);

/// Parses one client operation (what a server reads) from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame; `buf` is then unchanged. On
/// `Ok(Some(op))` the frame's bytes have been removed from the front of `buf`.
///
/// # Errors
///
/// Any [`ProtocolError`]; all are fatal to the connection. Errors are reported as soon as the
/// buffered bytes prove them, even before the frame is complete.
pub fn parse_client(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<ClientOp>, ProtocolError> {
    if let Some(publish) = plain_pub::take(buf, limits) {
        return Ok(Some(publish));
    }
    parse_client_general(buf, limits)
}

/// [`parse_client`] without the shortcut for plain `PUB` frames: every frame the general way
/// (the property tests hold the two to the same results).
pub(crate) fn parse_client_general(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<ClientOp>, ProtocolError> {
    let Some(line) = read_line(buf, CLIENT_OPS, limits)? else {
        return Ok(None);
    };
    let op = match line.kind {
        ClientKind::Pub | ClientKind::Hpub => {
            let with_headers = matches!(line.kind, ClientKind::Hpub);
            let Some(msg) = read_message(buf, &line, limits, 1, with_headers)? else {
                return Ok(None);
            };
            ClientOp::Pub {
                subject: msg.subject,
                reply: msg.reply,
                headers: msg.headers,
                payload: msg.payload,
            }
        }
        ClientKind::Sub => {
            let (args, count) = split_args::<3>(buf, line.args())?;
            let (subject, queue, sid) = match count {
                2 => (args[0], None, args[1]),
                3 => (args[0], Some(args[1]), args[2]),
                _ => return Err(ProtocolError::InvalidArguments),
            };
            let frame = buf.split_to(line.next).freeze();
            ClientOp::Sub {
                subject: slice(&frame, subject),
                queue: queue.map(|queue| slice(&frame, queue)),
                sid: slice(&frame, sid),
            }
        }
        ClientKind::Unsub => {
            let (args, count) = split_args::<2>(buf, line.args())?;
            let max = match count {
                1 => None,
                2 => Some(
                    parse_decimal(field(buf, args[1])).ok_or(ProtocolError::InvalidArguments)?,
                ),
                _ => return Err(ProtocolError::InvalidArguments),
            };
            let frame = buf.split_to(line.next).freeze();
            ClientOp::Unsub {
                sid: slice(&frame, args[0]),
                max,
            }
        }
        ClientKind::Ping => {
            consume_bare(buf, &line)?;
            ClientOp::Ping
        }
        ClientKind::Pong => {
            consume_bare(buf, &line)?;
            ClientOp::Pong
        }
        ClientKind::Connect => {
            let json = field(buf, line.args());
            // serde would also build the struct from a JSON array; only an object is valid.
            if json.first() != Some(&b'{') {
                return Err(ProtocolError::InvalidConnect(
                    "CONNECT options must be a JSON object".into(),
                ));
            }
            let opts: ConnectOptions = serde_json::from_slice(json)
                .map_err(|err| ProtocolError::InvalidConnect(err.to_string()))?;
            buf.advance(line.next);
            ClientOp::Connect(Box::new(opts))
        }
    };
    Ok(Some(op))
}

/// Parses one server operation (what a client reads) from the front of `buf`.
///
/// Same contract as [`parse_client`]: `Ok(None)` leaves `buf` unchanged, `Ok(Some)` consumes
/// exactly one frame. `INFO` is returned as raw JSON; `-ERR` as its text without the quotes.
///
/// # Errors
///
/// Any [`ProtocolError`]; all are fatal to the connection.
pub fn parse_server(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<ServerOp>, ProtocolError> {
    let Some(line) = read_line(buf, SERVER_OPS, limits)? else {
        return Ok(None);
    };
    let op = match line.kind {
        ServerKind::Msg | ServerKind::Hmsg => {
            let with_headers = matches!(line.kind, ServerKind::Hmsg);
            let Some(msg) = read_message(buf, &line, limits, 2, with_headers)? else {
                return Ok(None);
            };
            ServerOp::Msg {
                subject: msg.subject,
                sid: msg.sid.unwrap_or_default(),
                reply: msg.reply,
                headers: msg.headers,
                payload: msg.payload,
            }
        }
        ServerKind::Ping => {
            consume_bare(buf, &line)?;
            ServerOp::Ping
        }
        ServerKind::Pong => {
            consume_bare(buf, &line)?;
            ServerOp::Pong
        }
        ServerKind::Ok => {
            consume_bare(buf, &line)?;
            ServerOp::Ok
        }
        ServerKind::Info => {
            let frame = buf.split_to(line.next).freeze();
            ServerOp::Info(slice(&frame, line.args()))
        }
        ServerKind::Err => {
            let text = field(buf, line.args());
            let trimmed = text.len() - text.iter().rev().take_while(|&&b| is_blank(b)).count();
            let mut span = (line.args_start, line.args_start + trimmed);
            if trimmed >= 2 && text[0] == b'\'' && text[trimmed - 1] == b'\'' {
                span = (span.0 + 1, span.1 - 1);
            }
            let frame = buf.split_to(line.next).freeze();
            ServerOp::Err(slice(&frame, span))
        }
    };
    Ok(Some(op))
}

/// Consumes a line that takes no arguments (`PING`, `PONG`, `+OK`); trailing blanks are fine.
fn consume_bare<K>(buf: &mut BytesMut, line: &Line<K>) -> Result<(), ProtocolError> {
    if line.args_end > line.args_start {
        return Err(ProtocolError::InvalidArguments);
    }
    buf.advance(line.next);
    Ok(())
}

/// The parts of a `PUB`/`HPUB`/`MSG`/`HMSG` frame.
struct Message {
    subject: Bytes,
    sid: Option<Bytes>,
    reply: Option<Bytes>,
    headers: Option<Bytes>,
    payload: Bytes,
}

/// Reads a frame with a payload. `lead` is the number of arguments before the optional reply
/// (1 for `PUB`: subject; 2 for `MSG`: subject and sid); one or two sizes follow the reply.
fn read_message<K>(
    buf: &mut BytesMut,
    line: &Line<K>,
    limits: &Limits,
    lead: usize,
    with_headers: bool,
) -> Result<Option<Message>, ProtocolError> {
    let sizes = if with_headers { 2 } else { 1 };
    let (args, count) = split_args::<MAX_ARGS>(buf, line.args())?;
    let reply = if count == lead + sizes {
        None
    } else if count == lead + 1 + sizes {
        Some(args[lead])
    } else {
        return Err(ProtocolError::InvalidArguments);
    };
    // Same order of checks as nats-server: sizes must parse, headers must fit in the total,
    // and only then is the total compared with the limit.
    let total = parse_size(field(buf, args[count - 1]))?;
    let hdr_len = if with_headers {
        let hdr_len = parse_size(field(buf, args[count - 2]))?;
        if hdr_len > total {
            return Err(ProtocolError::InvalidArguments);
        }
        Some(hdr_len)
    } else {
        None
    };
    if total > limits.max_payload {
        return Err(ProtocolError::MaxPayload);
    }
    // A header block of length 0 is a message without headers: nats.js sends
    // every header-less JetStream publish as `HPUB <subject> <reply> 0 <total>`,
    // and nats-server delivers it as a plain `MSG`.
    let hdr_len = hdr_len.filter(|&len| len > 0);
    if hdr_len.is_some_and(|len| len < MIN_HEADER_LEN) {
        return Err(ProtocolError::InvalidArguments);
    }

    let body = line.next;
    let body_end = body.checked_add(total).ok_or(ProtocolError::MaxPayload)?;
    let frame_end = body_end.checked_add(2).ok_or(ProtocolError::MaxPayload)?;
    // Check whatever part of the trailing CRLF has arrived, so a bad byte is reported at once.
    // (Compared byte by byte: a slice comparison here is a `memcmp` call per frame.)
    let trailer_ok = match buf.get(body_end..) {
        Some([b'\r', b'\n', ..] | [b'\r'] | []) | None => true,
        Some(_) => false,
    };
    if !trailer_ok {
        return Err(ProtocolError::UnknownOp);
    }
    if buf.len() < frame_end {
        return Ok(None);
    }
    if let Some(hdr_len) = hdr_len {
        let block = &buf[body..body + hdr_len];
        if !block.starts_with(HEADER_PREFIX) || !block.ends_with(HEADER_SUFFIX) {
            return Err(ProtocolError::InvalidArguments);
        }
    }

    let mut frame = buf.split_to(frame_end).freeze();
    let payload_start = body + hdr_len.unwrap_or(0);
    let subject = slice(&frame, args[0]);
    let sid = (lead == 2).then(|| slice(&frame, args[1]));
    let reply = reply.map(|reply| slice(&frame, reply));
    let headers = hdr_len.map(|_| frame.slice(body..payload_start));
    // The frame itself becomes the payload: one reference count update fewer per message.
    frame.truncate(body_end);
    frame.advance(payload_start);
    Ok(Some(Message {
        subject,
        sid,
        reply,
        headers,
        payload: frame,
    }))
}

/// Finds the control line at the front of `buf` and identifies its operation.
fn read_line<K: Copy>(
    buf: &[u8],
    ops: &[(&[u8], K)],
    limits: &Limits,
) -> Result<Option<Line<K>>, ProtocolError> {
    let max_line = limits.max_control_line.saturating_add(OP_SLACK);
    // Room for the longest acceptable line and its CRLF: past that no newline can help.
    let window = max_line.saturating_add(2);
    let searched = &buf[..buf.len().min(window)];
    let Some(newline) = memchr(b'\n', searched) else {
        check_partial_op(searched, ops)?;
        if buf.len() >= window {
            return Err(ProtocolError::MaxControlLine);
        }
        return Ok(None);
    };
    let end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let line = &buf[..end];
    let op_end = line.iter().position(|&b| is_blank(b)).unwrap_or(end);
    let kind = lookup(&line[..op_end], ops).ok_or(ProtocolError::UnknownOp)?;
    let args_start = op_end + line[op_end..].iter().take_while(|&&b| is_blank(b)).count();
    if end - args_start > limits.max_control_line || end > max_line {
        return Err(ProtocolError::MaxControlLine);
    }
    Ok(Some(Line {
        kind,
        args_start,
        args_end: end,
        next: newline + 1,
    }))
}

/// Rejects a line without its newline yet as soon as its operation name cannot be valid.
fn check_partial_op<K: Copy>(partial: &[u8], ops: &[(&[u8], K)]) -> Result<(), ProtocolError> {
    if let Some(op_end) = partial.iter().position(|&b| is_blank(b)) {
        return lookup(&partial[..op_end], ops)
            .map(|_| ())
            .ok_or(ProtocolError::UnknownOp);
    }
    // The name may still be arriving; a last CR may be the start of the CRLF.
    let name = partial.strip_suffix(b"\r").unwrap_or(partial);
    let is_prefix = name.len() <= MAX_OP_LEN
        && ops.iter().any(|(op, _)| {
            op.get(..name.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(name))
        });
    if is_prefix {
        Ok(())
    } else {
        Err(ProtocolError::UnknownOp)
    }
}

/// Operation names are case-insensitive.
fn lookup<K: Copy>(name: &[u8], ops: &[(&[u8], K)]) -> Option<K> {
    ops.iter()
        .find(|(op, _)| op.eq_ignore_ascii_case(name))
        .map(|&(_, kind)| kind)
}

/// Splits the line's arguments on runs of blanks into at most `N` spans.
fn split_args<const N: usize>(
    buf: &[u8],
    (start, end): Span,
) -> Result<([Span; N], usize), ProtocolError> {
    let mut spans = [(0, 0); N];
    let mut count = 0;
    let mut i = start;
    while i < end {
        let start = i;
        while i < end && !is_blank(buf[i]) {
            i += 1;
        }
        if start < i {
            let slot = spans
                .get_mut(count)
                .ok_or(ProtocolError::InvalidArguments)?;
            *slot = (start, i);
            count += 1;
        }
        while i < end && is_blank(buf[i]) {
            i += 1;
        }
    }
    Ok((spans, count))
}

/// Field separators: space and tab.
fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn field(buf: &[u8], (start, end): Span) -> &[u8] {
    &buf[start..end]
}

fn slice(frame: &Bytes, (start, end): Span) -> Bytes {
    frame.slice(start..end)
}

/// A non-empty run of ASCII digits that fits a `u64`; no sign, no blanks.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &digit| {
        if digit.is_ascii_digit() {
            value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
        } else {
            None
        }
    })
}

/// A byte count: negative, non-numeric or overflowing sizes are invalid arguments.
fn parse_size(digits: &[u8]) -> Result<usize, ProtocolError> {
    parse_decimal(digits)
        .and_then(|value| usize::try_from(value).ok())
        .ok_or(ProtocolError::InvalidArguments)
}

mod plain_pub;
#[cfg(test)]
mod tests;
