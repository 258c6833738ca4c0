//! The common case of the client parser, recognized without the general machinery: a
//! complete, well-formed `PUB <subject> <size>\r\n<payload>\r\n` in upper case with single
//! blanks and no reply subject, which is what publishing clients send almost always.
//!
//! Anything else (a reply subject, tabs, lower case, a frame still arriving, any limit or
//! syntax violation) is left to the general parser, so errors and partial frames are judged
//! in one place only; this path merely skips the operation lookup and argument splitting
//! for frames that cannot fail.

use bytes::{Buf, BytesMut};
use memchr::memchr;

use super::{OP_SLACK, parse_size};
use crate::Limits;
use crate::nats::ClientOp;

const PREFIX: &[u8] = b"PUB ";

/// Takes a plain `PUB` frame off the front of `buf`, or returns `None` with `buf`
/// untouched when the front of `buf` is anything else.
pub(super) fn take(buf: &mut BytesMut, limits: &Limits) -> Option<ClientOp> {
    if !buf.starts_with(PREFIX) {
        return None;
    }
    let max_line = limits.max_control_line.saturating_add(OP_SLACK);
    let searched = &buf[..buf.len().min(max_line.saturating_add(2))];
    let newline = memchr(b'\n', searched)?;
    // The line ends in CRLF; its arguments are `<subject> <size>`.
    let end = newline.checked_sub(1).filter(|&cr| buf[cr] == b'\r')?;
    let args = &buf[PREFIX.len()..end];
    if args.len() > limits.max_control_line || end > max_line {
        return None;
    }
    let blank = memchr(b' ', args)?;
    let (subject, size) = (&args[..blank], &args[blank + 1..]);
    if subject.is_empty() || subject.contains(&b'\t') {
        return None;
    }
    let total = parse_size(size).ok()?;
    if total > limits.max_payload {
        return None;
    }
    let body = newline + 1;
    let body_end = body.checked_add(total)?;
    let frame_end = body_end.checked_add(2)?;
    if buf.get(body_end..frame_end)? != b"\r\n" {
        return None;
    }
    let subject_end = PREFIX.len() + blank;
    let mut frame = buf.split_to(frame_end).freeze();
    let subject = frame.slice(PREFIX.len()..subject_end);
    // The frame itself becomes the payload: one reference count update fewer per message.
    frame.truncate(body_end);
    frame.advance(body);
    Some(ClientOp::Pub {
        subject,
        reply: None,
        headers: None,
        payload: frame,
    })
}
