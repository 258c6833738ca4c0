//! The request parser: bytes from a client in, whole [`Request`]s out.
//!
//! Redis decides per request by looking only at the first byte: `*` starts a multibulk
//! request, anything else an inline line. The parser returns `Ok(None)` until the buffer holds
//! the whole request, leaving it untouched; on `Ok(Some)` exactly that request's bytes are
//! split off the front in one piece. Multibulk arguments are [`Bytes`](bytes::Bytes) slices of
//! that piece, so a `PUBLISH` payload is never copied.
//!
//! Framing follows Redis's `processMultibulkBuffer` exactly:
//! - header lines (`*N`, `$N`) end at the first `\r`, and the byte after it is skipped without
//!   being checked, as are the two bytes after each bulk string's data;
//! - counts and lengths are Redis `string2ll` integers: optional `-`, no `+`, no blanks, no
//!   leading zeros, at most 20 characters, within `i64`;
//! - errors are reported in Redis's order, as soon as the buffered bytes prove them (an element
//!   whose header line is not complete yet is not judged, even if its first byte is wrong).
//!
//! Inline lines follow Redis's `processInlineBuffer` and `sdssplitargs`: the line ends at the
//! first `\n` (one `\r` before it is dropped); arguments are separated by blanks; `"..."`
//! quotes take the escapes `\n \r \t \b \a \xHH` and `\c` = `c`, `'...'` quotes only `\'`; a
//! closing quote must be followed by a blank or the end of the line. Unquoted arguments are
//! slices of the line; quoted ones are unescaped copies.
//!
//! Redis keeps its progress through a multibulk request between reads; [`parse_request`]
//! starts over on every call, which costs one header scan per element already buffered.
//! That is nothing for ordinary requests, but a client that trickles in a request with very
//! many elements would make it quadratic: a listener should keep one [`RequestParser`] per
//! connection, which remembers how far it got.

mod inline;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use super::{Request, RespError, RespLimits};

/// Parses one request from the front of `buf`, starting from scratch.
///
/// Returns `Ok(None)` when `buf` does not hold a whole request yet; `buf` is then unchanged.
/// On `Ok(Some(request))` exactly that request's bytes have been removed from `buf`; the
/// request may be empty (see [`Request`]), and then gets no reply. `authenticated` is `false`
/// while the connection still needs `AUTH`, which tightens the limits as Redis does (at most
/// 10 elements, bulk strings of at most 16384 bytes).
///
/// Equivalent to a fresh [`RequestParser::parse`]; prefer a [`RequestParser`] kept per
/// connection (see the module docs).
///
/// # Errors
///
/// Any [`RespError`]; all are fatal to the connection. On error `buf` is unchanged.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &RespLimits,
    authenticated: bool,
) -> Result<Option<Request>, RespError> {
    RequestParser::new().parse(buf, limits, authenticated)
}

/// An incremental request parser that remembers its progress through a partly received
/// multibulk request, so a request is scanned once however it is cut into reads.
///
/// Contract: between a call that returned `Ok(None)` and the next call, the caller may only
/// append to the buffer (and must pass the same limits). If it does anything else to the
/// buffer, it calls [`RequestParser::reset`] first. Breaking the contract cannot panic, but
/// may yield wrong arguments.
#[derive(Debug, Clone, Default)]
pub struct RequestParser {
    /// Elements of the current multibulk request found so far.
    spans: Spans,
    /// Where to resume a multibulk request that was not complete.
    resume: Option<Resume>,
}

/// Progress through a multibulk request.
#[derive(Debug, Clone, Copy)]
struct Resume {
    /// Elements declared by the `*` header.
    count: usize,
    /// Offset of the next element's `$` header.
    next: usize,
}

/// How far a scan of the front request got.
enum Scan {
    /// The request needs more bytes than are visible.
    Incomplete,
    /// An inline request: its arguments and the offset after its `\n`.
    Inline(Vec<inline::Arg>, usize),
    /// A multibulk request ending at this offset; its elements are in `spans`.
    Multibulk(usize),
}

impl RequestParser {
    /// A parser with no progress.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any progress through a partly received request.
    pub fn reset(&mut self) {
        self.spans.clear();
        self.resume = None;
    }

    /// Parses one request from the front of `buf`, resuming where the previous call stopped.
    ///
    /// Same contract as [`parse_request`]: `Ok(None)` leaves `buf` unchanged, `Ok(Some)`
    /// consumes exactly one request (possibly empty: send no reply).
    ///
    /// # Errors
    ///
    /// Any [`RespError`]; all are fatal to the connection. On error `buf` is unchanged and
    /// the parser's progress is reset.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &RespLimits,
        authenticated: bool,
    ) -> Result<Option<Request>, RespError> {
        let mut args = Vec::new();
        Ok(self
            .parse_into(buf, limits, authenticated, &mut args)?
            .then_some(Request { args }))
    }

    /// [`RequestParser::parse`] into a vector the caller keeps, so a connection parsing a
    /// pipeline allocates no argument vector per request: on `Ok(true)` `args` holds the
    /// request's arguments (none for an empty request: send no reply); on `Ok(false)` the
    /// request is not complete yet and `args` is empty.
    ///
    /// # Errors
    ///
    /// As [`RequestParser::parse`].
    pub fn parse_into(
        &mut self,
        buf: &mut BytesMut,
        limits: &RespLimits,
        authenticated: bool,
        args: &mut Vec<Bytes>,
    ) -> Result<bool, RespError> {
        args.clear();
        // A request longer than the query buffer limit fails once more bytes than the limit
        // are buffered. Looking only at the first `max_query_buffer` bytes makes the outcome
        // independent of how the input was cut into reads.
        let visible = &buf[..buf.len().min(limits.max_query_buffer)];
        let Some(&first) = visible.first() else {
            return Ok(false);
        };
        let result = if first == b'*' {
            self.scan_multibulk(visible, limits, authenticated)
        } else {
            self.resume = None;
            inline::scan(visible, limits.max_inline)
                .map(|found| found.map_or(Scan::Incomplete, |(args, end)| Scan::Inline(args, end)))
        };
        match result {
            Ok(Scan::Incomplete) if buf.len() <= limits.max_query_buffer => Ok(false),
            Ok(Scan::Incomplete) => {
                self.reset();
                Err(RespError::QueryBufferLimit)
            }
            Ok(Scan::Inline(found, end)) => {
                let frame = buf.split_to(end).freeze();
                args.extend(found.into_iter().map(|arg| arg.into_bytes(&frame)));
                Ok(true)
            }
            Ok(Scan::Multibulk(end)) => {
                self.take_args(buf, end, args);
                self.reset();
                Ok(true)
            }
            Err(err) => {
                self.reset();
                Err(err)
            }
        }
    }

    /// Scans a multibulk request (`visible` starts with `*`) as far as the bytes allow.
    fn scan_multibulk(
        &mut self,
        visible: &[u8],
        limits: &RespLimits,
        authenticated: bool,
    ) -> Result<Scan, RespError> {
        let (count, mut next) = match self.resume {
            Some(resume) if resume.next <= visible.len() => (resume.count, resume.next),
            _ => {
                self.spans.clear();
                let Some(line) = find_line(visible, 0, limits.max_inline)
                    .map_err(|()| RespError::TooBigMbulkCount)?
                else {
                    return Ok(Scan::Incomplete);
                };
                let count = string2ll(&visible[1..line.end])
                    .filter(|&count| fits(count, limits.max_multibulk))
                    .ok_or(RespError::InvalidMultibulkLength)?;
                if !authenticated && !fits(count, RespLimits::UNAUTHENTICATED_MAX_MULTIBULK) {
                    return Err(RespError::UnauthenticatedMultibulkLength);
                }
                // `*0` and `*-N` are consumed silently: no command, no reply.
                let Ok(count @ 1..) = usize::try_from(count) else {
                    return Ok(Scan::Multibulk(line.next));
                };
                (count, line.next)
            }
        };
        while self.spans.len() < count {
            self.resume = Some(Resume { count, next });
            let Some(line) = find_line(visible, next, limits.max_inline)
                .map_err(|()| RespError::TooBigBulkCount)?
            else {
                return Ok(Scan::Incomplete);
            };
            if visible[next] != b'$' {
                return Err(RespError::ExpectedDollar(visible[next]));
            }
            let len = string2ll(&visible[next + 1..line.end])
                .filter(|&len| fits(len, limits.max_bulk))
                .ok_or(RespError::InvalidBulkLength)?;
            if !authenticated && !fits(len, RespLimits::UNAUTHENTICATED_MAX_BULK) {
                return Err(RespError::UnauthenticatedBulkLength);
            }
            let len = usize::try_from(len).map_err(|_| RespError::InvalidBulkLength)?;
            let data_end = line.next.saturating_add(len);
            // Redis skips the two bytes after the data without checking them.
            let element_end = data_end.saturating_add(2);
            if visible.len() < element_end {
                return Ok(Scan::Incomplete);
            }
            self.spans.push((line.next, data_end));
            next = element_end;
        }
        Ok(Scan::Multibulk(next))
    }

    /// Splits the scanned request off `buf` and slices its arguments out of it into `args`.
    fn take_args(&self, buf: &mut BytesMut, end: usize, args: &mut Vec<Bytes>) {
        if self.spans.len() == 0 {
            buf.advance(end);
            return;
        }
        let mut frame = buf.split_to(end).freeze();
        args.reserve(self.spans.len());
        let mut spans = self.spans.iter();
        let last = spans.next_back();
        args.extend(spans.map(|(start, end)| frame.slice(start..end)));
        // The frame itself becomes the last argument (usually the payload): one reference
        // count update fewer per request.
        if let Some((start, end)) = last {
            frame.truncate(end);
            frame.advance(start);
            args.push(frame);
        }
    }
}

/// A header line: its `\r` and the first byte after the byte that follows it.
struct Line {
    /// Offset of the `\r`.
    end: usize,
    /// Offset after `\r` and the (unchecked) byte after it.
    next: usize,
}

/// Finds the header line starting at `start` as Redis does: the first `\r`, followed by at
/// least one more byte. `Err(())` when no `\r` is among the first `max + 1` bytes but more
/// than `max` bytes are there (the line is certainly too long).
fn find_line(data: &[u8], start: usize, max: usize) -> Result<Option<Line>, ()> {
    let rest = &data[start..];
    let window = &rest[..rest.len().min(max.saturating_add(1))];
    match memchr(b'\r', window) {
        Some(cr) if cr + 1 < rest.len() => Ok(Some(Line {
            end: start + cr,
            next: start + cr + 2,
        })),
        Some(_) => Ok(None),
        None if rest.len() > max => Err(()),
        None => Ok(None),
    }
}

/// Whether `value` is at most `max` (negative values always fit).
fn fits(value: i64, max: usize) -> bool {
    u64::try_from(value).map_or(true, |value| value <= max as u64)
}

/// Redis `string2ll`: a strict decimal `i64`. Optional `-`, then `0` alone or a digit 1-9
/// followed by digits; nothing else, at most 20 characters (so `-0`, `+1`, `01`, ` 1` and
/// the empty string are all invalid).
pub(super) fn string2ll(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (&lead, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&lead) {
        return None;
    }
    let mut value = u64::from(lead - b'0');
    for &digit in rest {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

/// Start and end offsets of one argument in the request's bytes.
type Span = (usize, usize);

/// Elements kept inline before spilling to the heap: enough for every pub/sub command but a
/// long `SUBSCRIBE`.
const INLINE_SPANS: usize = 8;

/// The argument spans of one multibulk request; the first few live inline, so parsing a
/// `PUBLISH` allocates only the argument vector.
#[derive(Debug, Clone, Default)]
struct Spans {
    head: [Span; INLINE_SPANS],
    len: usize,
    tail: Vec<Span>,
}

impl Spans {
    fn clear(&mut self) {
        self.len = 0;
        self.tail.clear();
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, span: Span) {
        match self.head.get_mut(self.len) {
            Some(slot) => *slot = span,
            None => self.tail.push(span),
        }
        self.len += 1;
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = Span> + '_ {
        self.head[..self.len.min(INLINE_SPANS)]
            .iter()
            .chain(&self.tail)
            .copied()
    }
}

#[cfg(test)]
mod tests;
