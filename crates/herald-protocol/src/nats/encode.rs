//! Encoders: frames in, bytes appended to an output buffer.
//!
//! Each function computes the frame's exact size, reserves it once and appends; numbers are
//! written with `itoa`. Output always uses upper-case operation names, single spaces and CRLF,
//! because clients match them literally. Subjects, sids, replies and header blocks are written
//! as given: validating them is the caller's job.
//!
//! [`encode_msg`] runs once per receiving subscription per message, so it stays allocation-free.
//! A broker that keeps a large payload as separate chunks writes the line with
//! [`encode_msg_head`] and appends the payload and the final CRLF itself.

use bytes::{BufMut, BytesMut};

use super::{ClientOp, ServerInfo, ServerOp};

const CRLF: &[u8] = b"\r\n";

/// Appends a `MSG` frame: `MSG <subject> <sid> [reply] <len>\r\n<payload>\r\n`.
pub fn encode_msg(
    buf: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    payload: &[u8],
) {
    let head = Head {
        op: b"MSG ",
        subject,
        sid: Some(sid),
        reply,
    };
    put_head(buf, &head, None, payload.len(), payload.len() + CRLF.len());
    buf.put_slice(payload);
    buf.put_slice(CRLF);
}

/// Appends an `HMSG` frame:
/// `HMSG <subject> <sid> [reply] <hdr len> <total len>\r\n<headers><payload>\r\n`.
///
/// `headers` is the whole header block, from `NATS/1.0` to its closing empty line.
pub fn encode_hmsg(
    buf: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    let head = Head {
        op: b"HMSG ",
        subject,
        sid: Some(sid),
        reply,
    };
    put_with_headers(buf, &head, headers, payload);
}

/// Appends only the control line of a message: `MSG <subject> <sid> [reply] <total_len>\r\n`
/// when `hdr_len` is `None`, else `HMSG <subject> <sid> [reply] <hdr_len> <total_len>\r\n`.
///
/// The caller then appends exactly `total_len` bytes (header block first, if any) and `\r\n`.
pub fn encode_msg_head(
    buf: &mut BytesMut,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    hdr_len: Option<usize>,
    total_len: usize,
) {
    let head = Head {
        op: if hdr_len.is_some() { b"HMSG " } else { b"MSG " },
        subject,
        sid: Some(sid),
        reply,
    };
    put_head(buf, &head, hdr_len, total_len, 0);
}

/// Appends `INFO <json>\r\n` with `info` as compact, single-line JSON.
///
/// # Panics
///
/// Never in practice: serializing a [`ServerInfo`] into memory cannot fail.
pub fn encode_info(buf: &mut BytesMut, info: &ServerInfo) {
    put_json_line(buf, b"INFO ", info);
}

/// Appends `+OK\r\n`.
pub fn encode_ok(buf: &mut BytesMut) {
    buf.put_slice(b"+OK\r\n");
}

/// Appends `-ERR '<text>'\r\n`. `text` must not contain CR or LF (see
/// [`super::ProtocolError::err_text`] for the standard texts).
pub fn encode_err(buf: &mut BytesMut, text: &str) {
    put_err(buf, text.as_bytes());
}

/// Appends `PING\r\n`.
pub fn encode_ping(buf: &mut BytesMut) {
    buf.put_slice(b"PING\r\n");
}

/// Appends `PONG\r\n`.
pub fn encode_pong(buf: &mut BytesMut) {
    buf.put_slice(b"PONG\r\n");
}

/// Appends a client `PUB` frame: `PUB <subject> [reply] <len>\r\n<payload>\r\n`.
pub fn encode_pub(buf: &mut BytesMut, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    let head = Head {
        op: b"PUB ",
        subject,
        sid: None,
        reply,
    };
    put_head(buf, &head, None, payload.len(), payload.len() + CRLF.len());
    buf.put_slice(payload);
    buf.put_slice(CRLF);
}

/// Appends a client `HPUB` frame:
/// `HPUB <subject> [reply] <hdr len> <total len>\r\n<headers><payload>\r\n`.
pub fn encode_hpub(
    buf: &mut BytesMut,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    let head = Head {
        op: b"HPUB ",
        subject,
        sid: None,
        reply,
    };
    put_with_headers(buf, &head, headers, payload);
}

/// Appends any client operation; the inverse of [`super::parse_client`].
///
/// A `Pub` with `headers: Some(..)` is written as `HPUB`, without as `PUB`.
///
/// # Panics
///
/// Never in practice: serializing [`super::ConnectOptions`] into memory cannot fail.
pub fn encode_client(buf: &mut BytesMut, op: &ClientOp) {
    match op {
        ClientOp::Connect(opts) => put_json_line(buf, b"CONNECT ", opts),
        ClientOp::Pub {
            subject,
            reply,
            headers: Some(headers),
            payload,
        } => encode_hpub(buf, subject, reply.as_deref(), headers, payload),
        ClientOp::Pub {
            subject,
            reply,
            headers: None,
            payload,
        } => encode_pub(buf, subject, reply.as_deref(), payload),
        ClientOp::Sub {
            subject,
            queue,
            sid,
        } => {
            let queue_len = queue.as_ref().map_or(0, |queue| queue.len() + 1);
            buf.reserve(b"SUB ".len() + subject.len() + queue_len + 1 + sid.len() + CRLF.len());
            buf.put_slice(b"SUB ");
            buf.put_slice(subject);
            if let Some(queue) = queue {
                buf.put_u8(b' ');
                buf.put_slice(queue);
            }
            buf.put_u8(b' ');
            buf.put_slice(sid);
            buf.put_slice(CRLF);
        }
        ClientOp::Unsub { sid, max } => {
            let mut digits = itoa::Buffer::new();
            let max = max.map(|max| digits.format(max).as_bytes());
            let max_len = max.map_or(0, |max| max.len() + 1);
            buf.reserve(b"UNSUB ".len() + sid.len() + max_len + CRLF.len());
            buf.put_slice(b"UNSUB ");
            buf.put_slice(sid);
            if let Some(max) = max {
                buf.put_u8(b' ');
                buf.put_slice(max);
            }
            buf.put_slice(CRLF);
        }
        ClientOp::Ping => encode_ping(buf),
        ClientOp::Pong => encode_pong(buf),
    }
}

/// Appends any server operation; the inverse of [`super::parse_server`].
///
/// A `Msg` with `headers: Some(..)` is written as `HMSG`, without as `MSG`. `Info` is written
/// as given (raw JSON), `Err` is wrapped in single quotes.
pub fn encode_server(buf: &mut BytesMut, op: &ServerOp) {
    match op {
        ServerOp::Info(json) => {
            buf.reserve(b"INFO ".len() + json.len() + CRLF.len());
            buf.put_slice(b"INFO ");
            buf.put_slice(json);
            buf.put_slice(CRLF);
        }
        ServerOp::Msg {
            subject,
            sid,
            reply,
            headers: Some(headers),
            payload,
        } => encode_hmsg(buf, subject, sid, reply.as_deref(), headers, payload),
        ServerOp::Msg {
            subject,
            sid,
            reply,
            headers: None,
            payload,
        } => encode_msg(buf, subject, sid, reply.as_deref(), payload),
        ServerOp::Ping => encode_ping(buf),
        ServerOp::Pong => encode_pong(buf),
        ServerOp::Ok => encode_ok(buf),
        ServerOp::Err(text) => put_err(buf, text),
    }
}

/// The fields before the sizes in a `PUB`/`HPUB`/`MSG`/`HMSG` line.
struct Head<'a> {
    /// Operation name including its trailing space.
    op: &'static [u8],
    subject: &'a [u8],
    sid: Option<&'a [u8]>,
    reply: Option<&'a [u8]>,
}

/// Writes a message control line, reserving room for `extra` more bytes in the same step.
fn put_head(
    buf: &mut BytesMut,
    head: &Head<'_>,
    hdr_len: Option<usize>,
    total: usize,
    extra: usize,
) {
    let mut hdr_digits = itoa::Buffer::new();
    let mut total_digits = itoa::Buffer::new();
    let hdr = hdr_len.map(|len| hdr_digits.format(len).as_bytes());
    let total = total_digits.format(total).as_bytes();
    let optional = |field: Option<&[u8]>| field.map_or(0, |field| field.len() + 1);
    let line_len = head.op.len()
        + head.subject.len()
        + optional(head.sid)
        + optional(head.reply)
        + optional(hdr)
        + 1
        + total.len()
        + CRLF.len();
    buf.reserve(line_len + extra);
    buf.put_slice(head.op);
    buf.put_slice(head.subject);
    for field in [head.sid, head.reply, hdr].into_iter().flatten() {
        buf.put_u8(b' ');
        buf.put_slice(field);
    }
    buf.put_u8(b' ');
    buf.put_slice(total);
    buf.put_slice(CRLF);
}

/// Writes an `HPUB`/`HMSG` frame.
fn put_with_headers(buf: &mut BytesMut, head: &Head<'_>, headers: &[u8], payload: &[u8]) {
    let total = headers.len() + payload.len();
    put_head(buf, head, Some(headers.len()), total, total + CRLF.len());
    buf.put_slice(headers);
    buf.put_slice(payload);
    buf.put_slice(CRLF);
}

fn put_err(buf: &mut BytesMut, text: &[u8]) {
    buf.reserve(b"-ERR ''".len() + text.len() + CRLF.len());
    buf.put_slice(b"-ERR '");
    buf.put_slice(text);
    buf.put_slice(b"'\r\n");
}

/// Writes `<op><json>\r\n`.
fn put_json_line<T: serde::Serialize>(buf: &mut BytesMut, op: &[u8], value: &T) {
    buf.put_slice(op);
    serde_json::to_writer((&mut *buf).writer(), value)
        .expect("serializing a plain struct into memory cannot fail");
    buf.put_slice(CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn written(encode: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode(&mut buf);
        buf.to_vec()
    }

    #[test]
    fn msg_lines() {
        assert_eq!(
            written(|buf| encode_msg(buf, b"foo.bar", b"9", None, b"hello")),
            b"MSG foo.bar 9 5\r\nhello\r\n"
        );
        assert_eq!(
            written(|buf| encode_msg(buf, b"foo", b"1", Some(b"_INBOX.x"), b"")),
            b"MSG foo 1 _INBOX.x 0\r\n\r\n"
        );
        assert_eq!(
            written(|buf| encode_hmsg(buf, b"svc", b"0", None, b"NATS/1.0 503\r\n\r\n", b"")),
            b"HMSG svc 0 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        );
        assert_eq!(
            written(|buf| encode_msg_head(buf, b"a", b"2", Some(b"r"), Some(12), 17)),
            b"HMSG a 2 r 12 17\r\n"
        );
        assert_eq!(
            written(|buf| encode_msg_head(buf, b"a", b"2", None, None, 1_048_576)),
            b"MSG a 2 1048576\r\n"
        );
    }

    #[test]
    fn msg_reserves_exactly_once() {
        let mut buf = BytesMut::new();
        encode_msg(&mut buf, b"foo.bar", b"17", Some(b"reply.to"), &[7; 300]);
        assert_eq!(buf.len(), buf.capacity());
    }

    #[test]
    fn control_frames() {
        assert_eq!(written(encode_ok), b"+OK\r\n");
        assert_eq!(written(encode_ping), b"PING\r\n");
        assert_eq!(written(encode_pong), b"PONG\r\n");
        assert_eq!(
            written(|buf| encode_err(buf, "Unknown Protocol Operation")),
            b"-ERR 'Unknown Protocol Operation'\r\n"
        );
    }

    #[test]
    fn info_is_one_json_line() {
        let info = ServerInfo {
            server_id: "N1".into(),
            server_name: "line\nbreak".into(),
            version: "2.10.0".into(),
            proto: 1,
            headers: true,
            max_payload: 1_048_576,
            ..ServerInfo::default()
        };
        let out = written(|buf| encode_info(buf, &info));
        assert!(out.starts_with(b"INFO {\"server_id\":\"N1\""));
        assert!(out.ends_with(b"}\r\n"));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    #[test]
    fn client_ops() {
        let pub_op = ClientOp::Pub {
            subject: Bytes::from_static(b"orders.new"),
            reply: None,
            headers: Some(Bytes::from_static(b"NATS/1.0\r\nTrace: on\r\n\r\n")),
            payload: Bytes::from_static(b"hello"),
        };
        assert_eq!(
            written(|buf| encode_client(buf, &pub_op)),
            b"HPUB orders.new 23 28\r\nNATS/1.0\r\nTrace: on\r\n\r\nhello\r\n"
        );
        let sub = ClientOp::Sub {
            subject: Bytes::from_static(b"foo.*"),
            queue: Some(Bytes::from_static(b"workers")),
            sid: Bytes::from_static(b"4"),
        };
        assert_eq!(
            written(|buf| encode_client(buf, &sub)),
            b"SUB foo.* workers 4\r\n"
        );
        let unsub = ClientOp::Unsub {
            sid: Bytes::from_static(b"4"),
            max: Some(10),
        };
        assert_eq!(written(|buf| encode_client(buf, &unsub)), b"UNSUB 4 10\r\n");
        let connect = ClientOp::Connect(Box::default());
        let out = written(|buf| encode_client(buf, &connect));
        assert!(out.starts_with(b"CONNECT {\"verbose\":true"));
        assert!(out.ends_with(b"}\r\n"));
    }
}
