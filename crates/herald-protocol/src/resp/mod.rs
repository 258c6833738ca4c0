//! The Redis serialization protocol (RESP2 and RESP3), as a pub/sub server speaks it.
//!
//! The grammar and every error text follow the Redis server (see the project's
//! `redis-pubsub.md`, sections 1 and 8), not the protocol spec where the two differ.
//!
//! - [`parse`]: [`parse_request`] and [`RequestParser`] turn the bytes a client sends
//!   (multibulk `*N` arrays of bulk strings, or inline text lines) into [`Request`]s. Multibulk
//!   arguments are zero-copy [`Bytes`] slices of the request's bytes.
//! - [`encode`]: the reply writers ([`simple`], [`bulk`], [`map_header`], ...), each aware of
//!   the connection's [`Proto`], and the per-message pub/sub pushes ([`message_push`],
//!   [`pmessage_push`], ...), which are the broker's delivery path.
//! - [`reply`]: [`parse_value`], a reply parser (what a client reads) for tests, differential
//!   tests against Redis and client tools.
//!
//! [`Value`] is an owned RESP3 value for the less hot replies and for tests; [`encode_value`]
//! writes it in either protocol, applying Redis's RESP2 fallbacks (see [`Value::to_resp2`]).
//!
//! Every [`RespError`] is fatal: the server writes the error (see [`RespError::write_reply`]),
//! stops reading, and closes the connection once the reply is flushed. Bytes after the
//! offending request are never processed.

pub mod encode;
pub mod parse;
pub mod reply;

use bytes::Bytes;

pub use encode::{
    array_header, big_number, boolean, bulk, double, encode_request, encode_value, error, integer,
    map_header, message_push, null, null_array, pmessage_push, push_header, set_header, simple,
    smessage_push, subscription_push, verbatim,
};
pub use parse::{RequestParser, parse_request};
pub use reply::{DEFAULT_MAX_DEPTH, ReplyError, parse_value};

/// Limits for the RESP request parser (Redis's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespLimits {
    /// Longest inline request line, and longest `*`/`$` header line, without its terminator.
    /// Redis uses one constant, `PROTO_INLINE_MAX_SIZE` (65536), for all three. Default 65536.
    pub max_inline: usize,
    /// Largest bulk string in a multibulk request (Redis `proto-max-bulk-len`). Default 512 MiB.
    pub max_bulk: usize,
    /// Most elements in a multibulk request. Redis allows `INT_MAX`; a pub/sub broker has no
    /// command that needs more than a long `SUBSCRIBE`, so herald caps it (default 1 Mi, that
    /// is 1048576). Larger counts are rejected as [`RespError::InvalidMultibulkLength`].
    pub max_multibulk: usize,
    /// Longest single request, in bytes (Redis `client-query-buffer-limit`). Default 1 GiB.
    /// Over it the parser fails with [`RespError::QueryBufferLimit`], which gets no reply.
    pub max_query_buffer: usize,
}

impl RespLimits {
    /// Redis `PROTO_INLINE_MAX_SIZE`: 64 KiB.
    pub const DEFAULT_MAX_INLINE: usize = 64 * 1024;
    /// Redis `proto-max-bulk-len` default: 512 MiB.
    pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
    /// herald's cap on multibulk element counts: 1 Mi elements.
    pub const DEFAULT_MAX_MULTIBULK: usize = 1024 * 1024;
    /// Redis `client-query-buffer-limit` default: 1 GiB.
    pub const DEFAULT_MAX_QUERY_BUFFER: usize = 1024 * 1024 * 1024;
    /// Most multibulk elements accepted before the connection is authenticated (Redis: 10).
    pub const UNAUTHENTICATED_MAX_MULTIBULK: usize = 10;
    /// Largest bulk length accepted before the connection is authenticated (Redis: 16384).
    pub const UNAUTHENTICATED_MAX_BULK: usize = 16384;
}

impl Default for RespLimits {
    fn default() -> Self {
        Self {
            max_inline: Self::DEFAULT_MAX_INLINE,
            max_bulk: Self::DEFAULT_MAX_BULK,
            max_multibulk: Self::DEFAULT_MAX_MULTIBULK,
            max_query_buffer: Self::DEFAULT_MAX_QUERY_BUFFER,
        }
    }
}

/// One parsed request: its arguments, command name first.
///
/// It may be empty: an empty or blank inline line, `*0` or `*-1`. The caller must send **no**
/// reply for an empty request (Redis just resets the client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The arguments, command name first. Binary; not validated.
    pub args: Vec<Bytes>,
}

impl Request {
    /// The command name upper-cased (ASCII only; invalid UTF-8 is replaced lossily), or `None`
    /// for an empty request.
    #[must_use]
    pub fn name_upper(&self) -> Option<String> {
        let name = self.args.first()?;
        Some(String::from_utf8_lossy(name).to_ascii_uppercase())
    }

    /// Whether the request has no arguments (and must get no reply).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }
}

/// Which protocol a connection speaks; every connection starts in [`Proto::Resp2`] and `HELLO`
/// switches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    /// RESP2: no maps, sets, pushes, booleans, doubles or `_` null; pushes are arrays.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

/// A violation of the request framing. Every variant is fatal to the connection.
///
/// All but [`RespError::QueryBufferLimit`] are answered with `-<reply_text>\r\n` (see
/// [`RespError::reply_text`] and [`RespError::write_reply`]); then the connection is closed
/// after the reply is written, and nothing after the offending request is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// An inline request line has no `\n` within [`RespLimits::max_inline`] bytes.
    #[error("too big inline request")]
    TooBigInline,
    /// An inline request has an unclosed quote, or a closing quote not followed by a blank.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*` header line has no `\r` within [`RespLimits::max_inline`] bytes.
    #[error("too big mbulk count string")]
    TooBigMbulkCount,
    /// A `*` count that is not a strict integer or exceeds [`RespLimits::max_multibulk`].
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// A `*` count above 10 on a connection that is not authenticated yet.
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A `$` header line has no `\r` within [`RespLimits::max_inline`] bytes.
    #[error("too big bulk count string")]
    TooBigBulkCount,
    /// A multibulk element does not start with `$`; carries the byte seen.
    #[error("expected '$', got byte {0:#04x}")]
    ExpectedDollar(u8),
    /// A bulk length that is not a strict integer, is negative, or exceeds
    /// [`RespLimits::max_bulk`].
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// A bulk length above 16384 on a connection that is not authenticated yet.
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// One request is longer than [`RespLimits::max_query_buffer`]. Redis closes such a client
    /// **without** a reply (it only logs "Closing client that reached max query buffer
    /// length"); see [`RespError::has_reply`].
    #[error("query buffer limit reached")]
    QueryBufferLimit,
}

impl RespError {
    /// The error line Redis sends, without the leading `-` and the CRLF, e.g.
    /// `ERR Protocol error: too big inline request`.
    ///
    /// For [`RespError::ExpectedDollar`] the byte is shown as a `char` (bytes from 0x80 up
    /// become their Latin-1 character, two bytes in UTF-8; [`RespError::write_reply`] writes
    /// the raw byte as Redis does). CR and LF become a space, as Redis maps them. A NUL byte
    /// ends the text right after `got '`, because Redis formats the message into a C string
    /// and so cuts it there.
    ///
    /// [`RespError::QueryBufferLimit`] has no Redis reply ([`RespError::has_reply`] is
    /// `false`); its text here is for logs only.
    #[must_use]
    pub fn reply_text(&self) -> String {
        let mut line = self.reply_bytes();
        // The only byte that can be non-ASCII is the one after "got '".
        match *self {
            Self::ExpectedDollar(byte) if !byte.is_ascii() => {
                line.truncate(line.len() - 2);
                let mut text = String::from_utf8_lossy(&line).into_owned();
                text.push(char::from(byte));
                text.push('\'');
                text
            }
            _ => String::from_utf8_lossy(&line).into_owned(),
        }
    }

    /// Appends the exact reply Redis sends, `-ERR Protocol error: ...\r\n`, byte for byte.
    /// Writes nothing for [`RespError::QueryBufferLimit`].
    pub fn write_reply(&self, buf: &mut bytes::BytesMut) {
        if self.has_reply() {
            let line = self.reply_bytes();
            buf.reserve(line.len() + 3);
            buf.extend_from_slice(b"-");
            buf.extend_from_slice(&line);
            buf.extend_from_slice(b"\r\n");
        }
    }

    /// Whether Redis answers this error before closing: `false` only for
    /// [`RespError::QueryBufferLimit`], which closes the connection silently.
    #[must_use]
    pub fn has_reply(&self) -> bool {
        !matches!(self, Self::QueryBufferLimit)
    }

    /// The reply line without `-` and CRLF, with the raw byte for `ExpectedDollar`.
    fn reply_bytes(&self) -> Vec<u8> {
        const PREFIX: &str = "ERR Protocol error: ";
        let detail = match self {
            Self::ExpectedDollar(byte) => {
                let mut line = format!("{PREFIX}expected '$', got '").into_bytes();
                match byte {
                    // Redis's `%c` writes the NUL into a C string, which ends it there.
                    0 => return line,
                    b'\r' | b'\n' => line.push(b' '),
                    _ => line.push(*byte),
                }
                line.push(b'\'');
                return line;
            }
            Self::TooBigInline => "too big inline request",
            Self::UnbalancedQuotes => "unbalanced quotes in request",
            Self::TooBigMbulkCount => "too big mbulk count string",
            Self::InvalidMultibulkLength => "invalid multibulk length",
            Self::UnauthenticatedMultibulkLength => "unauthenticated multibulk length",
            Self::TooBigBulkCount => "too big bulk count string",
            Self::InvalidBulkLength => "invalid bulk length",
            Self::UnauthenticatedBulkLength => "unauthenticated bulk length",
            Self::QueryBufferLimit => "query buffer limit reached",
        };
        format!("{PREFIX}{detail}").into_bytes()
    }
}

/// An owned RESP value, for tests and for the server's less hot replies.
///
/// Strings are [`Bytes`]; [`parse_value`] gives copies of the reply's bytes. `Double` compares
/// with `f64` equality, so a `NaN` is never equal to itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+text`: a simple string (no CR or LF inside).
    Simple(Bytes),
    /// `-CODE text` (or RESP3 `!len` bulk error): the text after the `-`, code included.
    Error(Bytes),
    /// `:n`.
    Integer(i64),
    /// `$len`: a binary-safe string.
    Bulk(Bytes),
    /// `_` (RESP3), `$-1` or `*-1` (RESP2).
    Null,
    /// `*n`.
    Array(Vec<Value>),
    /// `%n` (RESP3): `n` key/value pairs, in wire order.
    Map(Vec<(Value, Value)>),
    /// `~n` (RESP3).
    Set(Vec<Value>),
    /// `>n` (RESP3): an out-of-band push; the first element is its kind.
    Push(Vec<Value>),
    /// `#t` / `#f` (RESP3).
    Boolean(bool),
    /// `,1.5` (RESP3); `inf`, `-inf` and `nan` included.
    Double(f64),
    /// `=len` (RESP3): a string with a three-byte format such as `txt` or `mkd`.
    Verbatim {
        /// The format, e.g. `*b"txt"`.
        format: [u8; 3],
        /// The text after `fmt:`.
        text: Bytes,
    },
    /// `(digits` (RESP3): an integer of any size, as its decimal text.
    BigNumber(Bytes),
}

impl Value {
    /// The value a RESP2 connection receives in place of this one (Redis's fallbacks):
    /// map → flat array of keys and values, set and push → array, boolean → integer 1/0,
    /// double → bulk string of its text, verbatim → bulk string of the text alone, big
    /// number → bulk string. Applied recursively; RESP2 values are returned unchanged.
    #[must_use]
    pub fn to_resp2(&self) -> Value {
        let all = |items: &[Value]| items.iter().map(Value::to_resp2).collect();
        match self {
            Self::Simple(_) | Self::Error(_) | Self::Integer(_) | Self::Bulk(_) | Self::Null => {
                self.clone()
            }
            Self::Array(items) | Self::Set(items) | Self::Push(items) => Self::Array(all(items)),
            Self::Map(pairs) => Self::Array(
                pairs
                    .iter()
                    .flat_map(|(key, value)| [key.to_resp2(), value.to_resp2()])
                    .collect(),
            ),
            Self::Boolean(b) => Self::Integer(i64::from(*b)),
            Self::Double(v) => Self::Bulk(Bytes::from(encode::format_double(*v))),
            Self::Verbatim { text, .. } => Self::Bulk(text.clone()),
            Self::BigNumber(digits) => Self::Bulk(digits.clone()),
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_redis() {
        let limits = RespLimits::default();
        assert_eq!(limits.max_inline, 65536);
        assert_eq!(limits.max_bulk, 536_870_912);
        assert_eq!(limits.max_multibulk, 1_048_576);
        assert_eq!(limits.max_query_buffer, 1 << 30);
    }

    #[test]
    fn reply_texts_match_redis() {
        let cases = [
            (RespError::TooBigInline, "too big inline request"),
            (RespError::UnbalancedQuotes, "unbalanced quotes in request"),
            (RespError::TooBigMbulkCount, "too big mbulk count string"),
            (
                RespError::InvalidMultibulkLength,
                "invalid multibulk length",
            ),
            (
                RespError::UnauthenticatedMultibulkLength,
                "unauthenticated multibulk length",
            ),
            (RespError::TooBigBulkCount, "too big bulk count string"),
            (RespError::ExpectedDollar(b'X'), "expected '$', got 'X'"),
            (RespError::InvalidBulkLength, "invalid bulk length"),
            (
                RespError::UnauthenticatedBulkLength,
                "unauthenticated bulk length",
            ),
        ];
        for (err, detail) in cases {
            assert_eq!(err.reply_text(), format!("ERR Protocol error: {detail}"));
            assert!(err.has_reply());
            let mut buf = bytes::BytesMut::new();
            err.write_reply(&mut buf);
            assert_eq!(
                &buf[..],
                format!("-ERR Protocol error: {detail}\r\n").as_bytes()
            );
        }
    }

    #[test]
    fn expected_dollar_with_odd_bytes() {
        let text = |byte| RespError::ExpectedDollar(byte).reply_text();
        let line = |byte| {
            let mut buf = bytes::BytesMut::new();
            RespError::ExpectedDollar(byte).write_reply(&mut buf);
            buf.to_vec()
        };
        assert_eq!(text(b'\r'), "ERR Protocol error: expected '$', got ' '");
        assert_eq!(text(b'\n'), "ERR Protocol error: expected '$', got ' '");
        assert_eq!(text(b'\t'), "ERR Protocol error: expected '$', got '\t'");
        assert_eq!(text(0), "ERR Protocol error: expected '$', got '");
        assert_eq!(text(0xe9), "ERR Protocol error: expected '$', got 'é'");
        assert_eq!(
            line(0xe9),
            b"-ERR Protocol error: expected '$', got '\xe9'\r\n"
        );
        assert_eq!(line(0), b"-ERR Protocol error: expected '$', got '\r\n");
        assert_eq!(
            line(b'\n'),
            b"-ERR Protocol error: expected '$', got ' '\r\n"
        );
    }

    #[test]
    fn query_buffer_limit_is_silent() {
        let err = RespError::QueryBufferLimit;
        assert!(!err.has_reply());
        let mut buf = bytes::BytesMut::new();
        err.write_reply(&mut buf);
        assert!(buf.is_empty());
    }

    #[test]
    fn request_helpers() {
        let request = Request {
            args: vec![Bytes::from_static(b"publish"), Bytes::from_static(b"ch")],
        };
        assert_eq!(request.name_upper().as_deref(), Some("PUBLISH"));
        assert!(!request.is_empty());
        let mixed = Request {
            args: vec![Bytes::from_static(b"s\xffb\xc3\xa9")],
        };
        assert_eq!(mixed.name_upper().as_deref(), Some("S\u{fffd}Bé"));
        assert_eq!(Request::default().name_upper(), None);
        assert!(Request::default().is_empty());
    }

    #[test]
    fn resp2_fallbacks() {
        let bulk = |s: &'static [u8]| Value::Bulk(Bytes::from_static(s));
        let map = Value::Map(vec![(bulk(b"proto"), Value::Integer(3))]);
        assert_eq!(
            map.to_resp2(),
            Value::Array(vec![bulk(b"proto"), Value::Integer(3)])
        );
        assert_eq!(Value::Boolean(true).to_resp2(), Value::Integer(1));
        assert_eq!(Value::Double(1.5).to_resp2(), bulk(b"1.5"));
        assert_eq!(
            Value::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"hi")
            }
            .to_resp2(),
            bulk(b"hi")
        );
        assert_eq!(
            Value::Push(vec![Value::Set(vec![Value::Null])]).to_resp2(),
            Value::Array(vec![Value::Array(vec![Value::Null])])
        );
    }
}
