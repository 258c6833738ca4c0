//! Inline requests: one text line, split into arguments exactly as Redis's `sdssplitargs`.
//!
//! The line ends at the first `\n`; one `\r` right before it is dropped. Arguments are
//! separated by runs of C `isspace` bytes (space, `\t`, `\n`, `\v`, `\f`, `\r`), though an
//! unquoted argument ends only at space, `\t`, `\n` or `\r` (so `a\vb` is one argument, as in
//! Redis). A `"` or `'` may open a quoted part anywhere in an argument (`a"b c"` is `ab c`);
//! the closing quote ends the argument and must be followed by a blank or the end of the line.
//! In `"..."` the escapes are `\n \r \t \b \a`, `\xHH` (two hex digits) and `\c` = `c` for any
//! other `c`; in `'...'` only `\'` is an escape.
//!
//! One deliberate difference: Redis finds the line with `strchr`, so a NUL byte before the
//! `\n` hides the line until the 64 KiB limit trips. Here NUL is an ordinary byte.

use bytes::Bytes;
use memchr::memchr;

use crate::resp::RespError;

/// One argument of an inline request.
#[derive(Debug)]
pub(super) enum Arg {
    /// An unquoted argument: these bytes of the line, sliced without a copy.
    Span(usize, usize),
    /// An argument with a quoted part, unescaped.
    Owned(Vec<u8>),
}

impl Arg {
    /// The argument's bytes, slicing `frame` (the line) for unquoted arguments.
    pub(super) fn into_bytes(self, frame: &Bytes) -> Bytes {
        match self {
            Self::Span(start, end) => frame.slice(start..end),
            Self::Owned(text) => Bytes::from(text),
        }
    }
}

/// Finds and splits the inline request at the front of `data`.
///
/// Returns the arguments and the offset after the `\n`, or `None` while the line is
/// incomplete.
pub(super) fn scan(data: &[u8], max_inline: usize) -> Result<Option<(Vec<Arg>, usize)>, RespError> {
    // Redis fails once more than `max_inline` bytes are buffered without a `\n`.
    let window = &data[..data.len().min(max_inline.saturating_add(1))];
    let Some(newline) = memchr(b'\n', window) else {
        return if data.len() > max_inline {
            Err(RespError::TooBigInline)
        } else {
            Ok(None)
        };
    };
    let end = if newline > 0 && data[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    Ok(Some((split_args(&data[..end])?, newline + 1)))
}

/// Redis `sdssplitargs` over one line (without its terminator).
fn split_args(line: &[u8]) -> Result<Vec<Arg>, RespError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|&byte| is_space(byte)) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let (arg, next) = token(line, i)?;
        args.push(arg);
        i = next;
    }
}

/// Reads the argument starting at `start` (not a blank); returns it and the offset after it.
fn token(line: &[u8], start: usize) -> Result<(Arg, usize), RespError> {
    let mut i = start;
    // The unquoted part, up to a delimiter (the whole argument) or a quote.
    let quote = loop {
        match line.get(i) {
            None | Some(b' ' | b'\n' | b'\r' | b'\t') => return Ok((Arg::Span(start, i), i)),
            Some(&quote @ (b'"' | b'\'')) => break quote,
            Some(_) => i += 1,
        }
    };
    let mut text = line[start..i].to_vec();
    i += 1;
    loop {
        let Some(&byte) = line.get(i) else {
            return Err(RespError::UnbalancedQuotes);
        };
        if byte == quote {
            if line.get(i + 1).is_some_and(|&next| !is_space(next)) {
                return Err(RespError::UnbalancedQuotes);
            }
            return Ok((Arg::Owned(text), i + 1));
        }
        let next = line.get(i + 1).copied();
        match (quote, byte, next) {
            (b'"', b'\\', Some(b'x')) if hex_pair(line, i + 2).is_some() => {
                text.extend(hex_pair(line, i + 2));
                i += 4;
            }
            (b'"', b'\\', Some(escaped)) => {
                text.push(unescape(escaped));
                i += 2;
            }
            (b'\'', b'\\', Some(b'\'')) => {
                text.push(b'\'');
                i += 2;
            }
            _ => {
                text.push(byte);
                i += 1;
            }
        }
    }
}

/// The byte written as two hex digits at `at`, if there are two.
fn hex_pair(line: &[u8], at: usize) -> Option<u8> {
    let digit = |at: usize| char::from(*line.get(at)?).to_digit(16);
    let value = digit(at)? * 16 + digit(at + 1)?;
    u8::try_from(value).ok()
}

/// A `\c` escape inside double quotes.
fn unescape(byte: u8) -> u8 {
    match byte {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

/// C `isspace` in the "C" locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}
