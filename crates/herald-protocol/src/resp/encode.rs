//! Reply writers: values in, RESP bytes appended to an output buffer.
//!
//! Every function takes the connection's [`Proto`] where the two protocols differ and writes
//! Redis's RESP2 fallback on a RESP2 connection (map → flat array, push → array, boolean →
//! integer, double and verbatim string → bulk string, null → `$-1`). Each call computes its
//! exact size, reserves once and appends; numbers are written with `itoa`.
//!
//! The pub/sub pushes ([`message_push`], [`pmessage_push`], [`smessage_push`],
//! [`subscription_push`]) run once per delivered message, so they are allocation-free beyond
//! the buffer's own growth. Shapes are Redis's, not the RESP3 spec's: a message is
//! `>3 message <channel> <payload>`, without the spec's `pubsub` element.
//!
//! Simple strings and errors cannot carry CR or LF; [`simple`] and [`error`] replace them by
//! spaces, as Redis does for error texts.

use bytes::{BufMut, BytesMut};
use memchr::memchr2;

use super::{Proto, Value};

const CRLF: &[u8] = b"\r\n";

/// Appends a simple string, `+<s>\r\n` (e.g. `+OK`). CR and LF in `s` become spaces.
pub fn simple(buf: &mut BytesMut, s: &[u8]) {
    put_line(buf, b'+', s);
}

/// Appends an error, `-<s>\r\n`; `s` starts with the error code, e.g. `ERR unknown command`.
/// CR and LF in `s` become spaces.
pub fn error(buf: &mut BytesMut, s: &[u8]) {
    put_line(buf, b'-', s);
}

/// Appends an integer, `:<n>\r\n`.
pub fn integer(buf: &mut BytesMut, n: i64) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    buf.reserve(digits.len() + 3);
    buf.put_u8(b':');
    buf.put_slice(digits);
    buf.put_slice(CRLF);
}

/// Appends a bulk string, `$<len>\r\n<b>\r\n`.
pub fn bulk(buf: &mut BytesMut, b: &[u8]) {
    buf.reserve(bulk_size(b.len()));
    put_bulk(buf, b);
}

/// Appends a null: `$-1\r\n` (RESP2 null bulk string) or `_\r\n` (RESP3).
pub fn null(buf: &mut BytesMut, proto: Proto) {
    buf.put_slice(null_bytes(proto));
}

/// Appends a null array: `*-1\r\n` (RESP2) or `_\r\n` (RESP3).
pub fn null_array(buf: &mut BytesMut, proto: Proto) {
    buf.put_slice(match proto {
        Proto::Resp2 => b"*-1\r\n",
        Proto::Resp3 => b"_\r\n",
    });
}

/// Appends an array header, `*<n>\r\n`; the caller then writes `n` values.
pub fn array_header(buf: &mut BytesMut, n: usize) {
    put_header(buf, b'*', n);
}

/// Appends a map header for `pairs` key/value pairs: `%<pairs>\r\n` (RESP3) or
/// `*<2 × pairs>\r\n` (RESP2, a flat array). The caller then writes key, value, key, ...
pub fn map_header(buf: &mut BytesMut, proto: Proto, pairs: usize) {
    match proto {
        Proto::Resp2 => put_header(buf, b'*', pairs.saturating_mul(2)),
        Proto::Resp3 => put_header(buf, b'%', pairs),
    }
}

/// Appends a set header, `~<n>\r\n` (RESP3) or `*<n>\r\n` (RESP2).
pub fn set_header(buf: &mut BytesMut, proto: Proto, n: usize) {
    put_header(buf, aggregate_byte(proto, b'~'), n);
}

/// Appends a push header, `><n>\r\n` (RESP3) or `*<n>\r\n` (RESP2). Pushes go only between
/// whole replies, never inside one.
pub fn push_header(buf: &mut BytesMut, proto: Proto, n: usize) {
    put_header(buf, aggregate_byte(proto, b'>'), n);
}

/// Appends a verbatim string: `=<len>\r\n<format>:<text>\r\n` (RESP3; `len` counts the
/// format and the colon) or a bulk string of `text` alone (RESP2).
pub fn verbatim(buf: &mut BytesMut, proto: Proto, format: &[u8; 3], text: &[u8]) {
    match proto {
        Proto::Resp2 => bulk(buf, text),
        Proto::Resp3 => {
            let len = text.len() + 4;
            buf.reserve(bulk_size(len));
            put_header(buf, b'=', len);
            buf.put_slice(format);
            buf.put_u8(b':');
            buf.put_slice(text);
            buf.put_slice(CRLF);
        }
    }
}

/// Appends a boolean: `#t\r\n` / `#f\r\n` (RESP3) or `:1\r\n` / `:0\r\n` (RESP2).
pub fn boolean(buf: &mut BytesMut, proto: Proto, b: bool) {
    buf.put_slice(match (proto, b) {
        (Proto::Resp2, true) => b":1\r\n",
        (Proto::Resp2, false) => b":0\r\n",
        (Proto::Resp3, true) => b"#t\r\n",
        (Proto::Resp3, false) => b"#f\r\n",
    });
}

/// Appends a double: `,<v>\r\n` (RESP3) or a bulk string of the same text (RESP2).
///
/// Formatted as Redis's `d2string`: `inf`, `-inf`, `nan`, `0` / `-0`; integral values up to
/// `i64::MAX / 2` as integers; others in the shortest form that reads back exactly, fixed
/// for exponents -4 to 16 and `d.ddde±XX` outside (the `%.17g` layout).
pub fn double(buf: &mut BytesMut, proto: Proto, v: f64) {
    let text = format_double(v);
    match proto {
        Proto::Resp2 => bulk(buf, text.as_bytes()),
        Proto::Resp3 => put_line(buf, b',', text.as_bytes()),
    }
}

/// Appends a big number: `(<digits>\r\n` (RESP3) or a bulk string of the digits (RESP2).
pub fn big_number(buf: &mut BytesMut, proto: Proto, digits: &[u8]) {
    match proto {
        Proto::Resp2 => bulk(buf, digits),
        Proto::Resp3 => put_line(buf, b'(', digits),
    }
}

/// Appends a message delivery: `message`, channel, payload, as a 3-element push (RESP3) or
/// array (RESP2).
pub fn message_push(buf: &mut BytesMut, proto: Proto, channel: &[u8], payload: &[u8]) {
    let head: &[u8] = match proto {
        Proto::Resp2 => b"*3\r\n$7\r\nmessage\r\n",
        Proto::Resp3 => b">3\r\n$7\r\nmessage\r\n",
    };
    buf.reserve(head.len() + bulk_size(channel.len()) + bulk_size(payload.len()));
    buf.put_slice(head);
    put_bulk(buf, channel);
    put_bulk(buf, payload);
}

/// Appends a pattern-message delivery: `pmessage`, pattern, channel, payload, as a 4-element
/// push (RESP3) or array (RESP2).
pub fn pmessage_push(
    buf: &mut BytesMut,
    proto: Proto,
    pattern: &[u8],
    channel: &[u8],
    payload: &[u8],
) {
    let head: &[u8] = match proto {
        Proto::Resp2 => b"*4\r\n$8\r\npmessage\r\n",
        Proto::Resp3 => b">4\r\n$8\r\npmessage\r\n",
    };
    buf.reserve(
        head.len() + bulk_size(pattern.len()) + bulk_size(channel.len()) + bulk_size(payload.len()),
    );
    buf.put_slice(head);
    put_bulk(buf, pattern);
    put_bulk(buf, channel);
    put_bulk(buf, payload);
}

/// Appends a shard-message delivery: `smessage`, shard channel, payload, as a 3-element push
/// (RESP3) or array (RESP2).
pub fn smessage_push(buf: &mut BytesMut, proto: Proto, channel: &[u8], payload: &[u8]) {
    let head: &[u8] = match proto {
        Proto::Resp2 => b"*3\r\n$8\r\nsmessage\r\n",
        Proto::Resp3 => b">3\r\n$8\r\nsmessage\r\n",
    };
    buf.reserve(head.len() + bulk_size(channel.len()) + bulk_size(payload.len()));
    buf.put_slice(head);
    put_bulk(buf, channel);
    put_bulk(buf, payload);
}

/// Appends a (un)subscribe confirmation: `kind` (`subscribe`, `unsubscribe`, `psubscribe`,
/// `punsubscribe`, `ssubscribe`, `sunsubscribe`), the name or a null (`None`, for an
/// unsubscribe with nothing subscribed), and the subscription count, as a 3-element push
/// (RESP3) or array (RESP2).
pub fn subscription_push(
    buf: &mut BytesMut,
    proto: Proto,
    kind: &[u8],
    name: Option<&[u8]>,
    count: i64,
) {
    let mut digits = itoa::Buffer::new();
    let count = digits.format(count).as_bytes();
    let name_size = name.map_or(null_bytes(proto).len(), |name| bulk_size(name.len()));
    buf.reserve(4 + bulk_size(kind.len()) + name_size + count.len() + 3);
    buf.put_slice(match proto {
        Proto::Resp2 => b"*3\r\n",
        Proto::Resp3 => b">3\r\n",
    });
    put_bulk(buf, kind);
    match name {
        Some(name) => put_bulk(buf, name),
        None => buf.put_slice(null_bytes(proto)),
    }
    buf.put_u8(b':');
    buf.put_slice(count);
    buf.put_slice(CRLF);
}

/// Appends a request as a client sends it: a multibulk array of bulk strings. The inverse of
/// [`super::parse_request`] for multibulk input (an empty `args` writes `*0`).
pub fn encode_request<A: AsRef<[u8]>>(buf: &mut BytesMut, args: &[A]) {
    array_header(buf, args.len());
    for arg in args {
        bulk(buf, arg.as_ref());
    }
}

/// Appends any [`Value`], using the RESP2 fallbacks on a RESP2 connection (what
/// [`Value::to_resp2`] describes). The inverse of [`super::parse_value`].
pub fn encode_value(buf: &mut BytesMut, proto: Proto, value: &Value) {
    match value {
        Value::Simple(s) => simple(buf, s),
        Value::Error(s) => error(buf, s),
        Value::Integer(n) => integer(buf, *n),
        Value::Bulk(b) => bulk(buf, b),
        Value::Null => null(buf, proto),
        Value::Array(items) => {
            array_header(buf, items.len());
            items.iter().for_each(|item| encode_value(buf, proto, item));
        }
        Value::Set(items) => {
            set_header(buf, proto, items.len());
            items.iter().for_each(|item| encode_value(buf, proto, item));
        }
        Value::Push(items) => {
            push_header(buf, proto, items.len());
            items.iter().for_each(|item| encode_value(buf, proto, item));
        }
        Value::Map(pairs) => {
            map_header(buf, proto, pairs.len());
            for (key, value) in pairs {
                encode_value(buf, proto, key);
                encode_value(buf, proto, value);
            }
        }
        Value::Boolean(b) => boolean(buf, proto, *b),
        Value::Double(v) => double(buf, proto, *v),
        Value::Verbatim { format, text } => verbatim(buf, proto, format, text),
        Value::BigNumber(digits) => big_number(buf, proto, digits),
    }
}

/// The text of a double, as Redis's `d2string` writes it (see [`double`]).
pub(super) fn format_double(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Redis `double2ll`: integral values in this range print as integers.
    if v.fract() == 0.0 && v.abs() <= (i64::MAX / 2) as f64 {
        return itoa::Buffer::new().format(v as i64).to_owned();
    }
    // Rust's `{:e}` is the shortest text that reads back exactly: `d.ddde<exp>`.
    let scientific = format!("{v:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return format!("{v}");
    };
    match exponent.parse::<i32>() {
        Ok(exponent) if !(-4..17).contains(&exponent) => {
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
        }
        _ => format!("{v}"),
    }
}

/// Bytes a bulk string of `len` data bytes takes: `$`, digits, CRLF, data, CRLF.
fn bulk_size(len: usize) -> usize {
    let digits = len.checked_ilog10().map_or(1, |log| log as usize + 1);
    digits + len + 5
}

/// Writes a bulk string into space already reserved.
fn put_bulk(buf: &mut BytesMut, data: &[u8]) {
    let mut digits = itoa::Buffer::new();
    buf.put_u8(b'$');
    buf.put_slice(digits.format(data.len()).as_bytes());
    buf.put_slice(CRLF);
    buf.put_slice(data);
    buf.put_slice(CRLF);
}

/// Writes `<prefix><n>\r\n`.
fn put_header(buf: &mut BytesMut, prefix: u8, n: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    buf.reserve(digits.len() + 3);
    buf.put_u8(prefix);
    buf.put_slice(digits);
    buf.put_slice(CRLF);
}

/// Writes `<prefix><s>\r\n` with CR and LF in `s` replaced by spaces.
fn put_line(buf: &mut BytesMut, prefix: u8, s: &[u8]) {
    buf.reserve(s.len() + 3);
    buf.put_u8(prefix);
    if memchr2(b'\r', b'\n', s).is_none() {
        buf.put_slice(s);
    } else {
        buf.extend(s.iter().map(|&b| match b {
            b'\r' | b'\n' => b' ',
            other => other,
        }));
    }
    buf.put_slice(CRLF);
}

fn null_bytes(proto: Proto) -> &'static [u8] {
    match proto {
        Proto::Resp2 => b"$-1\r\n",
        Proto::Resp3 => b"_\r\n",
    }
}

/// The type byte of a RESP3 aggregate, or `*` on RESP2.
fn aggregate_byte(proto: Proto, resp3: u8) -> u8 {
    match proto {
        Proto::Resp2 => b'*',
        Proto::Resp3 => resp3,
    }
}

#[cfg(test)]
mod tests;
