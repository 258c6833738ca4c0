//! The reply parser: RESP2/RESP3 bytes from a server in, [`Value`]s out.
//!
//! For tests, differential tests against Redis and client tools; a server never reads
//! replies. Same contract as the request parser: `Ok(None)` until a whole value is buffered,
//! buffer untouched; `Ok(Some)` consumes exactly that value. Strings are copied out of the
//! buffer (simplicity over speed: nothing here is on a hot path).
//!
//! Accepted: every RESP2 type (`*-1` and `$-1` read as [`Value::Null`]) and every RESP3 type
//! Redis can send, plus the bulk error `!` (read as [`Value::Error`]) and attributes `|`
//! (skipped: the value that follows is returned). Streamed strings and aggregates (`$?`,
//! `*?`) are rejected: Redis never sends them. Lines must end in CRLF, and so must bulk data.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use super::Value;

/// A nesting limit deep enough for any reply a pub/sub server sends (`COMMAND DOCS` nests
/// about six levels).
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// Aggregate capacity reserved up front, whatever count the wire claims.
const MAX_PREALLOC: usize = 64;

/// Why a reply could not be parsed. The stream cannot be resynchronized after any of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A value starts with a byte that is no RESP type.
    #[error("unknown RESP type byte {0:#04x}")]
    UnknownType(u8),
    /// A value of a known type is malformed; says what was wrong.
    #[error("invalid reply: {0}")]
    Invalid(&'static str),
    /// Aggregates nest deeper than the `max_depth` given to [`parse_value`].
    #[error("reply nested too deeply")]
    TooDeep,
}

/// Parses one reply value from the front of `buf`.
///
/// Aggregates may nest `max_depth` levels: with 0 only scalars are accepted, with 1 an array
/// of scalars, and so on ([`DEFAULT_MAX_DEPTH`] suits any Redis reply).
///
/// Returns `Ok(None)` when `buf` does not hold a whole value yet; `buf` is then unchanged.
///
/// # Errors
///
/// [`ReplyError`] when the bytes are not RESP or nest too deeply; `buf` is then unchanged.
pub fn parse_value(buf: &mut BytesMut, max_depth: usize) -> Result<Option<Value>, ReplyError> {
    let mut reader = Reader { data: buf, pos: 0 };
    let value = reader.value(max_depth)?;
    if value.is_some() {
        let end = reader.pos;
        buf.advance(end);
    }
    Ok(value)
}

/// A cursor over buffered reply bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

/// `Ok(None)` ("need more bytes") out of the enclosing function, like `?` does for errors.
macro_rules! need {
    ($e:expr) => {
        match $e? {
            Some(value) => value,
            None => return Ok(None),
        }
    };
}

impl<'a> Reader<'a> {
    /// Reads one value; `depth` is how many more aggregate levels may open.
    fn value(&mut self, depth: usize) -> Result<Option<Value>, ReplyError> {
        loop {
            let line = need!(self.line());
            let (&kind, rest) = line
                .split_first()
                .ok_or(ReplyError::Invalid("empty line"))?;
            let value = match kind {
                b'+' => Value::Simple(Bytes::copy_from_slice(rest)),
                b'-' => Value::Error(Bytes::copy_from_slice(rest)),
                b':' => Value::Integer(number(rest).ok_or(ReplyError::Invalid("integer"))?),
                b'$' => match length(rest, true)? {
                    None => Value::Null,
                    Some(len) => Value::Bulk(need!(self.blob(len))),
                },
                b'!' => Value::Error(need!(self.blob(need_length(rest)?))),
                b'=' => {
                    let blob = need!(self.blob(need_length(rest)?));
                    match (blob.get(..3), blob.get(3)) {
                        (Some(format), Some(b':')) => Value::Verbatim {
                            format: [format[0], format[1], format[2]],
                            text: blob.slice(4..),
                        },
                        _ => return Err(ReplyError::Invalid("verbatim string without format")),
                    }
                }
                b'(' => {
                    let digits = rest.strip_prefix(b"-").unwrap_or(rest);
                    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                        return Err(ReplyError::Invalid("big number"));
                    }
                    Value::BigNumber(Bytes::copy_from_slice(rest))
                }
                b'_' if rest.is_empty() => Value::Null,
                b'#' => match rest {
                    b"t" => Value::Boolean(true),
                    b"f" => Value::Boolean(false),
                    _ => return Err(ReplyError::Invalid("boolean")),
                },
                b',' => Value::Double(
                    std::str::from_utf8(rest)
                        .ok()
                        .and_then(|text| text.parse().ok())
                        .ok_or(ReplyError::Invalid("double"))?,
                ),
                b'*' => match length(rest, true)? {
                    None => Value::Null,
                    Some(n) => Value::Array(need!(self.items(n, depth))),
                },
                b'~' => Value::Set(need!(self.items(need_length(rest)?, depth))),
                b'>' => Value::Push(need!(self.items(need_length(rest)?, depth))),
                b'%' => Value::Map(need!(self.pairs(need_length(rest)?, depth))),
                b'|' => {
                    // An attribute decorates the next value; read it and drop it. A loop,
                    // not recursion, so a run of attributes cannot exhaust the stack.
                    need!(self.pairs(need_length(rest)?, depth));
                    continue;
                }
                b'_' => return Err(ReplyError::Invalid("null with content")),
                other => return Err(ReplyError::UnknownType(other)),
            };
            return Ok(Some(value));
        }
    }

    /// Reads `n` values one level down.
    fn items(&mut self, n: usize, depth: usize) -> Result<Option<Vec<Value>>, ReplyError> {
        let depth = depth.checked_sub(1).ok_or(ReplyError::TooDeep)?;
        let mut items = Vec::with_capacity(n.min(MAX_PREALLOC));
        for _ in 0..n {
            items.push(need!(self.value(depth)));
        }
        Ok(Some(items))
    }

    /// Reads `n` key/value pairs one level down.
    fn pairs(&mut self, n: usize, depth: usize) -> Result<Option<Vec<(Value, Value)>>, ReplyError> {
        let depth = depth.checked_sub(1).ok_or(ReplyError::TooDeep)?;
        let mut pairs = Vec::with_capacity(n.min(MAX_PREALLOC));
        for _ in 0..n {
            let key = need!(self.value(depth));
            let value = need!(self.value(depth));
            pairs.push((key, value));
        }
        Ok(Some(pairs))
    }

    /// Reads a line up to its CRLF (not included) and moves past it.
    fn line(&mut self) -> Result<Option<&'a [u8]>, ReplyError> {
        let data: &'a [u8] = self.data;
        let rest = &data[self.pos..];
        let Some(cr) = memchr(b'\r', rest) else {
            return Ok(None);
        };
        match rest.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => {
                self.pos += cr + 2;
                Ok(Some(&rest[..cr]))
            }
            Some(_) => Err(ReplyError::Invalid("line not ended by CRLF")),
        }
    }

    /// Reads `len` bytes of data and the CRLF after them.
    fn blob(&mut self, len: usize) -> Result<Option<Bytes>, ReplyError> {
        let start = self.pos;
        let end = start
            .checked_add(len)
            .ok_or(ReplyError::Invalid("length overflows"))?;
        match self.data.get(end..) {
            Some([b'\r', b'\n', ..]) => {
                self.pos = end + 2;
                Ok(Some(Bytes::copy_from_slice(&self.data[start..end])))
            }
            None | Some([] | [b'\r']) => Ok(None),
            Some(_) => Err(ReplyError::Invalid("data not followed by CRLF")),
        }
    }
}

/// A decimal `i64`, optionally signed (`+` too, as the RESP3 spec allows).
fn number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A length: `None` for `-1` when `nullable`, else a non-negative count.
fn length(text: &[u8], nullable: bool) -> Result<Option<usize>, ReplyError> {
    match number(text) {
        Some(-1) if nullable => Ok(None),
        Some(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| ReplyError::Invalid("negative length")),
        None => Err(ReplyError::Invalid("length")),
    }
}

/// A length that may not be `-1`.
fn need_length(text: &[u8]) -> Result<usize, ReplyError> {
    length(text, false)?.ok_or(ReplyError::Invalid("length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Value {
        let mut buf = BytesMut::from(input);
        let value = parse_value(&mut buf, DEFAULT_MAX_DEPTH)
            .expect("valid reply")
            .expect("whole reply");
        assert!(buf.is_empty(), "reply consumed entirely: {input:?}");
        value
    }

    fn err(input: &[u8], max_depth: usize) -> ReplyError {
        let mut buf = BytesMut::from(input);
        let err = parse_value(&mut buf, max_depth).expect_err("invalid reply");
        assert_eq!(&buf[..], input, "buffer unchanged on error");
        err
    }

    fn bulk(s: &'static [u8]) -> Value {
        Value::Bulk(Bytes::from_static(s))
    }

    #[test]
    fn every_type() {
        assert_eq!(one(b"+OK\r\n"), Value::Simple(Bytes::from_static(b"OK")));
        assert_eq!(
            one(b"-ERR no\r\n"),
            Value::Error(Bytes::from_static(b"ERR no"))
        );
        assert_eq!(one(b":-42\r\n"), Value::Integer(-42));
        assert_eq!(one(b"$5\r\nhe\r\no\r\n"), bulk(b"he\r\no"));
        assert_eq!(one(b"$0\r\n\r\n"), bulk(b""));
        assert_eq!(one(b"$-1\r\n"), Value::Null);
        assert_eq!(one(b"*-1\r\n"), Value::Null);
        assert_eq!(one(b"_\r\n"), Value::Null);
        assert_eq!(one(b"*0\r\n"), Value::Array(vec![]));
        assert_eq!(one(b"#t\r\n"), Value::Boolean(true));
        assert_eq!(one(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
        assert_eq!(one(b",1.5e+20\r\n"), Value::Double(1.5e20));
        assert!(matches!(one(b",nan\r\n"), Value::Double(v) if v.is_nan()));
        assert_eq!(
            one(b"(-3492890328409238509324850943850943825024385\r\n"),
            Value::BigNumber(Bytes::from_static(
                b"-3492890328409238509324850943850943825024385"
            ))
        );
        assert_eq!(
            one(b"!21\r\nSYNTAX invalid syntax\r\n"),
            Value::Error(Bytes::from_static(b"SYNTAX invalid syntax"))
        );
        assert_eq!(
            one(b"=15\r\ntxt:Some string\r\n"),
            Value::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"Some string")
            }
        );
        assert_eq!(
            one(b"%1\r\n+k\r\n~2\r\n:1\r\n_\r\n"),
            Value::Map(vec![(
                Value::Simple(Bytes::from_static(b"k")),
                Value::Set(vec![Value::Integer(1), Value::Null])
            )])
        );
        assert_eq!(
            one(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"),
            Value::Push(vec![bulk(b"message"), bulk(b"ch"), bulk(b"hello")])
        );
    }

    #[test]
    fn attributes_are_skipped() {
        assert_eq!(
            one(b"|1\r\n+ttl\r\n:3600\r\n|1\r\n+a\r\n_\r\n:7\r\n"),
            Value::Integer(7)
        );
    }

    #[test]
    fn partial_replies_leave_the_buffer_alone() {
        let input: &[u8] = b"*2\r\n$5\r\nhello\r\n%1\r\n#f\r\n,0.25\r\n";
        for cut in 0..input.len() {
            let mut buf = BytesMut::from(&input[..cut]);
            assert_eq!(
                parse_value(&mut buf, DEFAULT_MAX_DEPTH),
                Ok(None),
                "cut at {cut}"
            );
            assert_eq!(&buf[..], &input[..cut]);
        }
        let mut buf = BytesMut::from(&b"+a\r\n:1"[..]);
        assert_eq!(
            parse_value(&mut buf, 0),
            Ok(Some(Value::Simple(Bytes::from_static(b"a"))))
        );
        assert_eq!(&buf[..], b":1");
    }

    #[test]
    fn depth_limit() {
        assert_eq!(err(b"*1\r\n:1\r\n", 0), ReplyError::TooDeep);
        assert_eq!(err(b"*1\r\n*1\r\n:1\r\n", 1), ReplyError::TooDeep);
        assert_eq!(err(b"|1\r\n+a\r\n+b\r\n:1\r\n", 0), ReplyError::TooDeep);
        let mut buf = BytesMut::from(&b"*1\r\n*0\r\n"[..]);
        assert!(parse_value(&mut buf, 2).expect("deep enough").is_some());
        // Nulls spelled as aggregates are not aggregates.
        let mut buf = BytesMut::from(&b"*-1\r\n"[..]);
        assert_eq!(parse_value(&mut buf, 0), Ok(Some(Value::Null)));
    }

    #[test]
    fn malformed_replies() {
        let depth = DEFAULT_MAX_DEPTH;
        assert_eq!(err(b"?\r\n", depth), ReplyError::UnknownType(b'?'));
        assert!(matches!(err(b"\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b"+OK\rX", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b":12a\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b"$-2\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b"$?\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(
            err(b"$1\r\nabc\r\n", depth),
            ReplyError::Invalid(_)
        ));
        assert!(matches!(err(b"~-1\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b"_x\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b"#x\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b",1.2.3\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(err(b"(12a\r\n", depth), ReplyError::Invalid(_)));
        assert!(matches!(
            err(b"=3\r\ntxt\r\n", depth),
            ReplyError::Invalid(_)
        ));
    }

    #[test]
    fn huge_counts_do_not_preallocate() {
        let mut buf = BytesMut::from(&b"*9223372036854775807\r\n:1\r\n"[..]);
        assert_eq!(parse_value(&mut buf, DEFAULT_MAX_DEPTH), Ok(None));
        let mut buf = BytesMut::from(&b"$9223372036854775807\r\nab"[..]);
        assert_eq!(parse_value(&mut buf, DEFAULT_MAX_DEPTH), Ok(None));
    }
}
