//! `Message` and `Headers`: what flows through the broker.
//!
//! Headers are kept in their NATS wire form (`NATS/1.0` block) because that is
//! herald's canonical header encoding: the NATS listener forwards a client's
//! block byte for byte, and every other protocol parses it only when it needs
//! a value. The payload is a shared [`Bytes`], cloned by reference count for
//! each receiver.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::subject::Subject;

/// One published message as the broker routes it.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published on.
    pub subject: Subject,
    /// Where replies should go, if the publisher expects any.
    pub reply: Option<Subject>,
    /// Optional headers (a NATS header block).
    pub headers: Option<Headers>,
    /// The payload, shared by every receiver.
    pub payload: Bytes,
    /// What only receivers of the publisher's own protocol understand (an
    /// MQTT publish's QoS, RETAIN flag and properties). Travels with the
    /// message to every receiver; streams do not keep it.
    pub extension: Option<Extension>,
}

/// Protocol details riding on a [`Message`]: any shared value, read back by
/// its type with [`Message::extension`]. Two messages' extensions are equal
/// when they are the same value (the same `Arc`).
#[derive(Clone)]
pub struct Extension(Arc<dyn Any + Send + Sync>);

impl Extension {
    /// Wraps `value`.
    pub fn new<T: Any + Send + Sync>(value: Arc<T>) -> Self {
        Self(value)
    }
}

impl PartialEq for Extension {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Extension {}

impl fmt::Debug for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Extension(..)")
    }
}

impl Message {
    /// A message with a subject and payload, no reply and no headers.
    pub fn new(subject: Subject, payload: impl Into<Bytes>) -> Self {
        Self {
            subject,
            reply: None,
            headers: None,
            payload: payload.into(),
            extension: None,
        }
    }

    /// Sets the extension.
    #[must_use]
    pub fn with_extension(mut self, extension: Extension) -> Self {
        self.extension = Some(extension);
        self
    }

    /// The extension if there is one of type `T`.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extension.as_ref()?.0.downcast_ref()
    }

    /// Sets the reply subject.
    #[must_use]
    pub fn with_reply(mut self, reply: Subject) -> Self {
        self.reply = Some(reply);
        self
    }

    /// Sets the headers.
    #[must_use]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = Some(headers);
        self
    }

    /// Bytes this message occupies on the wire, headers included; used for
    /// pending-bytes accounting.
    pub fn size(&self) -> usize {
        self.subject.as_bytes().len()
            + self.reply.as_ref().map_or(0, |r| r.as_bytes().len())
            + self.headers.as_ref().map_or(0, Headers::wire_len)
            + self.payload.len()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("subject", &self.subject)
            .field("reply", &self.reply)
            .field("headers", &self.headers)
            .field("payload_len", &self.payload.len())
            .field("extension", &self.extension.is_some())
            .finish()
    }
}

/// The header line every NATS header block starts with.
const VERSION_LINE: &[u8] = b"NATS/1.0";

/// Message headers, stored as a NATS header block
/// (`NATS/1.0[ status[ description]]\r\nName: value\r\n...\r\n`).
#[derive(Clone, PartialEq, Eq)]
pub struct Headers {
    raw: Bytes,
}

/// Why a header block or a header name/value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The block does not start with `NATS/1.0`.
    #[error("header block does not start with NATS/1.0")]
    MissingVersion,
    /// The block is not terminated by an empty line.
    #[error("header block is not terminated by an empty line")]
    Unterminated,
    /// A status code that is not three digits.
    #[error("header status is not a three-digit code")]
    BadStatus,
    /// A header name with whitespace, control characters, `:` or non-ASCII.
    #[error("invalid header name {0:?}")]
    BadName(String),
    /// A header value with CR or LF.
    #[error("header value contains CR or LF")]
    BadValue,
}

impl Headers {
    /// Wraps a header block received from the wire after checking its shape:
    /// it starts with `NATS/1.0`, any status is three digits, and it ends
    /// with an empty line.
    ///
    /// # Errors
    /// The [`HeaderError`] naming what is wrong.
    pub fn from_raw(raw: Bytes) -> Result<Self, HeaderError> {
        if !raw.starts_with(VERSION_LINE) {
            return Err(HeaderError::MissingVersion);
        }
        if !raw.ends_with(b"\r\n\r\n") && raw.as_ref() != b"NATS/1.0\r\n\r\n" {
            return Err(HeaderError::Unterminated);
        }
        let headers = Self { raw };
        let first = headers.first_line();
        let rest = &first[VERSION_LINE.len()..];
        if !rest.is_empty() {
            let code = rest.strip_prefix(b" ").ok_or(HeaderError::BadStatus)?;
            let digits = code.get(..3).ok_or(HeaderError::BadStatus)?;
            if !digits.iter().all(u8::is_ascii_digit) || code.get(3).is_some_and(|b| *b != b' ') {
                return Err(HeaderError::BadStatus);
            }
        }
        Ok(headers)
    }

    /// Wraps a header block without checking it (the caller knows its shape).
    pub fn from_raw_unchecked(raw: Bytes) -> Self {
        Self { raw }
    }

    /// Starts building a header block.
    pub fn builder() -> HeadersBuilder {
        HeadersBuilder::new(None)
    }

    /// Starts building a header block with a status line
    /// (`NATS/1.0 503`, `NATS/1.0 404 No Messages`).
    pub fn builder_with_status(code: u16, description: &str) -> HeadersBuilder {
        HeadersBuilder::new(Some((code, description)))
    }

    /// The raw block, as it goes on the NATS wire.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Length of the raw block in bytes.
    pub fn wire_len(&self) -> usize {
        self.raw.len()
    }

    fn first_line(&self) -> &[u8] {
        let end = memchr_crlf(&self.raw).unwrap_or(self.raw.len());
        &self.raw[..end]
    }

    /// The status code of the block, if it has one (`NATS/1.0 503` → 503).
    pub fn status(&self) -> Option<u16> {
        let first = self.first_line();
        let digits = first.get(VERSION_LINE.len() + 1..VERSION_LINE.len() + 4)?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// The status description, if any (`NATS/1.0 404 No Messages` → `No Messages`).
    pub fn description(&self) -> Option<&str> {
        let first = self.first_line();
        let text = first.get(VERSION_LINE.len() + 5..)?;
        std::str::from_utf8(text).ok().filter(|s| !s.is_empty())
    }

    /// Every `(name, value)` pair in order; repeated names appear repeatedly.
    /// Lines that are not `name: value` are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let body = self
            .raw
            .get(self.first_line().len() + 2..)
            .unwrap_or_default();
        body.split(|b| *b == b'\n').filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            let value = std::str::from_utf8(&line[colon + 1..]).ok()?;
            Some((name, value.trim()))
        })
    }

    /// The first value of `name` (exact, case-sensitive match as NATS clients do).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The first value of `name`, ignoring ASCII case.
    pub fn get_ignore_case(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// True when the block carries no header lines (a bare status or `NATS/1.0`).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// A copy with `name: value` appended (used to add `Nats-*` headers to
    /// stored messages without touching the client's own lines).
    ///
    /// # Errors
    /// [`HeaderError`] if the name or value is not allowed.
    pub fn appended(&self, name: &str, value: &str) -> Result<Self, HeaderError> {
        check_name(name)?;
        check_value(value)?;
        let mut buf = BytesMut::with_capacity(self.raw.len() + name.len() + value.len() + 4);
        buf.put_slice(&self.raw[..self.raw.len() - 2]);
        put_line(&mut buf, name, value);
        buf.put_slice(b"\r\n");
        Ok(Self { raw: buf.freeze() })
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        if let Some(status) = self.status() {
            list.entry(&status);
        }
        list.entries(self.iter()).finish()
    }
}

fn memchr_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn check_name(name: &str) -> Result<(), HeaderError> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if ok {
        Ok(())
    } else {
        Err(HeaderError::BadName(name.to_owned()))
    }
}

fn check_value(value: &str) -> Result<(), HeaderError> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n') {
        Err(HeaderError::BadValue)
    } else {
        Ok(())
    }
}

fn put_line(buf: &mut BytesMut, name: &str, value: &str) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value.as_bytes());
    buf.put_slice(b"\r\n");
}

/// Builds a [`Headers`] block line by line.
#[derive(Debug)]
pub struct HeadersBuilder {
    buf: BytesMut,
}

impl HeadersBuilder {
    fn new(status: Option<(u16, &str)>) -> Self {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_slice(VERSION_LINE);
        if let Some((code, description)) = status {
            buf.put_slice(b" ");
            buf.put_slice(format!("{:03}", code.clamp(100, 999)).as_bytes());
            let description = description.trim();
            if !description.is_empty() && check_value(description).is_ok() {
                buf.put_slice(b" ");
                buf.put_slice(description.as_bytes());
            }
        }
        buf.put_slice(b"\r\n");
        Self { buf }
    }

    /// Adds one `name: value` line.
    ///
    /// # Errors
    /// [`HeaderError`] if the name has whitespace, control characters, `:` or
    /// non-ASCII bytes, or the value has CR/LF.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), HeaderError> {
        check_name(name)?;
        check_value(value)?;
        put_line(&mut self.buf, name, value);
        Ok(())
    }

    /// Adds a `name: value` line, consuming the builder (for chains).
    ///
    /// # Errors
    /// [`HeaderError`] if the name is empty or has a colon, space or control
    /// character, or the value has a line break.
    pub fn insert(mut self, name: &str, value: &str) -> Result<Self, HeaderError> {
        self.push(name, value)?;
        Ok(self)
    }

    /// Finishes the block.
    pub fn build(mut self) -> Headers {
        self.buf.put_slice(b"\r\n");
        Headers {
            raw: self.buf.freeze(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_read_back_by_their_type() {
        #[derive(Debug, PartialEq)]
        struct Qos(u8);
        let subject = Subject::new("a.b").expect("subject");
        let plain = Message::new(subject.clone(), "x");
        assert_eq!(plain.extension::<Qos>(), None);
        let ext = Extension::new(Arc::new(Qos(1)));
        let msg = Message::new(subject, "x").with_extension(ext.clone());
        assert_eq!(msg.extension::<Qos>(), Some(&Qos(1)));
        assert_eq!(msg.extension::<String>(), None, "another type");
        assert_eq!(msg.clone(), msg, "clones share the extension");
        let other = Extension::new(Arc::new(Qos(1)));
        assert_ne!(
            msg.clone().with_extension(other),
            msg,
            "equal only when the same value"
        );
        assert_ne!(plain, msg);
    }

    #[test]
    fn builds_and_reads_headers() -> Result<(), HeaderError> {
        let h = Headers::builder()
            .insert("Nats-Msg-Id", "abc-1")?
            .insert("A", "1")?
            .insert("A", "2")?
            .build();
        assert_eq!(
            h.raw().as_ref(),
            b"NATS/1.0\r\nNats-Msg-Id: abc-1\r\nA: 1\r\nA: 2\r\n\r\n"
        );
        assert_eq!(h.get("Nats-Msg-Id"), Some("abc-1"));
        assert_eq!(h.get("nats-msg-id"), None);
        assert_eq!(h.get_ignore_case("nats-msg-id"), Some("abc-1"));
        assert_eq!(h.iter().filter(|(n, _)| *n == "A").count(), 2);
        assert_eq!(h.status(), None);
        Ok(())
    }

    #[test]
    fn status_lines() {
        let h = Headers::builder_with_status(503, "").build();
        assert_eq!(h.raw().as_ref(), b"NATS/1.0 503\r\n\r\n");
        assert_eq!(h.status(), Some(503));
        assert_eq!(h.description(), None);
        let h = Headers::builder_with_status(404, "No Messages").build();
        assert_eq!(h.wire_len(), 28);
        assert_eq!(h.description(), Some("No Messages"));
        assert!(h.is_empty());
    }

    #[test]
    fn from_raw_checks_shape() {
        assert!(Headers::from_raw(Bytes::from_static(b"NATS/1.0\r\n\r\n")).is_ok());
        assert!(Headers::from_raw(Bytes::from_static(b"NATS/1.0 503\r\n\r\n")).is_ok());
        assert_eq!(
            Headers::from_raw(Bytes::from_static(b"HTTP/1.0\r\n\r\n")),
            Err(HeaderError::MissingVersion)
        );
        assert_eq!(
            Headers::from_raw(Bytes::from_static(b"NATS/1.0 5x3\r\n\r\n")),
            Err(HeaderError::BadStatus)
        );
        assert_eq!(
            Headers::from_raw(Bytes::from_static(b"NATS/1.0\r\nA: b\r\n")),
            Err(HeaderError::Unterminated)
        );
    }

    #[test]
    fn rejects_bad_names_and_values() {
        assert!(Headers::builder().insert("a b", "x").is_err());
        assert!(Headers::builder().insert("a:b", "x").is_err());
        assert!(Headers::builder().insert("ok", "x\r\ny").is_err());
    }

    #[test]
    fn appended_keeps_client_lines() -> Result<(), HeaderError> {
        let h = Headers::from_raw(Bytes::from_static(b"NATS/1.0\r\nX: 1\r\n\r\n"))?;
        let h2 = h.appended("Nats-Sequence", "5")?;
        assert_eq!(
            h2.raw().as_ref(),
            b"NATS/1.0\r\nX: 1\r\nNats-Sequence: 5\r\n\r\n"
        );
        Ok(())
    }
}
