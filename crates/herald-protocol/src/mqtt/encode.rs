//! Encoders: packets in, MQTT bytes appended to an output buffer.
//!
//! Each packet's layout is written once, against a `Sink`: a counting sink sizes the packet
//! (and finds fields too long for their length prefix), then a writing sink appends it after
//! one `reserve`. So the Remaining Length always matches what is written, and nothing is
//! written when a packet cannot be encoded.
//!
//! Fields a version cannot carry are left out: 3.1.1 gets no properties, no reason codes on
//! acks (a negative MQTT 5 ack becomes a plain ack, which is what a 3.1.1 broker must send
//! anyway), no `UNSUBACK` payload and only the QoS of subscription options; `CONNACK` and
//! `SUBACK` codes are mapped to their 3.1.1 forms (see [`reason`](super::reason)). MQTT 5
//! acks and `DISCONNECT` use their short forms when the reason is Success and there are no
//! properties, as mosquitto does.

use bytes::{BufMut, BytesMut};

use super::packet::{Ack, ConnAck, Connect, Publish, SubscriptionOptions};
use super::properties::{PropertySet, ValueRef};
use super::reason::{ConnectReturnCode, ReasonCode};
use super::{EncodeError, Packet, PacketType, QosPid, Version};

/// The largest Variable Byte Integer, hence the largest Remaining Length.
const MAX_VARINT: usize = 268_435_455;

/// Appends `packet`, encoded for `version`, to `buf`; returns the bytes written. A `CONNECT`
/// is encoded in its own [`Connect::version`].
///
/// # Errors
///
/// [`EncodeError`] when the packet cannot be expressed (a field over 65,535 bytes, a packet
/// over the protocol maximum, `AUTH` in 3.1.1); `buf` is then unchanged.
pub fn encode(buf: &mut BytesMut, version: Version, packet: &Packet) -> Result<usize, EncodeError> {
    let remaining = body_len(version, packet)?;
    let total = 1 + varint_len(remaining) + remaining;
    buf.reserve(total);
    buf.put_u8(first_byte(packet));
    put_varint(buf, remaining);
    body(&mut Writer { buf }, version, packet);
    Ok(total)
}

/// The size [`encode`] would write: a broker compares it with the client's Maximum Packet
/// Size before sending (and drops what does not fit, as MQTT 5 requires).
///
/// # Errors
///
/// As [`encode`].
pub fn encoded_len(version: Version, packet: &Packet) -> Result<usize, EncodeError> {
    let remaining = body_len(version, packet)?;
    Ok(1 + varint_len(remaining) + remaining)
}

/// Appends a `PUBLISH` without its payload: the fixed header (whose Remaining Length counts
/// the payload) and the variable header. The caller writes `publish.payload` next, e.g. as
/// its own buffer in a vectored write, so a payload shared by many subscribers is never
/// copied. Returns the bytes written.
///
/// # Errors
///
/// As [`encode`]; `buf` is then unchanged.
pub fn encode_publish_head(
    buf: &mut BytesMut,
    version: Version,
    publish: &Publish,
) -> Result<usize, EncodeError> {
    let mut counter = Counter::new(PacketType::Publish);
    publish_head(&mut counter, version, publish);
    let head = counter.finish()?;
    let remaining = checked_remaining(PacketType::Publish, head + publish.payload.len())?;
    let written = 1 + varint_len(remaining) + head;
    buf.reserve(written);
    buf.put_u8(publish_first_byte(publish));
    put_varint(buf, remaining);
    publish_head(&mut Writer { buf }, version, publish);
    Ok(written)
}

/// Where a packet's fields go: counted or written.
trait Sink {
    fn u8(&mut self, value: u8);
    fn u16(&mut self, value: u16);
    fn u32(&mut self, value: u32);
    /// A Variable Byte Integer; callers only pass values up to [`MAX_VARINT`].
    fn varint(&mut self, value: usize);
    /// Raw bytes (the `PUBLISH` payload).
    fn raw(&mut self, bytes: &[u8]);
    /// Binary Data: a two-byte length, then the bytes.
    fn binary(&mut self, bytes: &[u8]);
    /// A property block: its length, then each property.
    fn properties<P: PropertySet>(&mut self, properties: &P);

    fn string(&mut self, text: &str) {
        self.binary(text.as_bytes());
    }

    fn property(&mut self, id: u8, value: ValueRef<'_>) {
        // Every defined id is below 128: a one-byte Variable Byte Integer.
        self.u8(id);
        match value {
            ValueRef::Byte(v) => self.u8(v),
            ValueRef::Two(v) => self.u16(v),
            ValueRef::Four(v) => self.u32(v),
            ValueRef::Varint(v) => self.varint(v as usize),
            ValueRef::Str(v) => self.string(v),
            ValueRef::Bin(v) => self.binary(v),
            ValueRef::Pair(name, value) => {
                self.string(name);
                self.string(value);
            }
        }
    }
}

/// Sizes a packet and remembers the first field that cannot be encoded.
struct Counter {
    packet: PacketType,
    len: usize,
    error: Option<EncodeError>,
}

impl Counter {
    fn new(packet: PacketType) -> Self {
        Self {
            packet,
            len: 0,
            error: None,
        }
    }

    fn add(&mut self, n: usize) {
        self.len = self.len.saturating_add(n);
    }

    fn fail(&mut self, error: EncodeError) {
        self.error.get_or_insert(error);
    }

    fn finish(self) -> Result<usize, EncodeError> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.len),
        }
    }
}

impl Sink for Counter {
    fn u8(&mut self, _: u8) {
        self.add(1);
    }
    fn u16(&mut self, _: u16) {
        self.add(2);
    }
    fn u32(&mut self, _: u32) {
        self.add(4);
    }
    fn varint(&mut self, value: usize) {
        self.add(varint_len(value));
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.add(bytes.len());
    }
    fn binary(&mut self, bytes: &[u8]) {
        if bytes.len() > usize::from(u16::MAX) {
            self.fail(EncodeError::FieldTooLong {
                packet: self.packet,
                len: bytes.len(),
            });
        }
        self.add(2 + bytes.len());
    }
    fn properties<P: PropertySet>(&mut self, properties: &P) {
        let mut block = Counter::new(self.packet);
        properties.visit(&mut |id, value| block.property(id, value));
        match block.finish() {
            Ok(len) if len <= MAX_VARINT => self.add(varint_len(len) + len),
            Ok(len) => self.fail(EncodeError::PacketTooLarge {
                packet: self.packet,
                len,
            }),
            Err(error) => self.fail(error),
        }
    }
}

/// Appends a packet that a [`Counter`] has accepted.
struct Writer<'a> {
    buf: &'a mut BytesMut,
}

impl Sink for Writer<'_> {
    fn u8(&mut self, value: u8) {
        self.buf.put_u8(value);
    }
    fn u16(&mut self, value: u16) {
        self.buf.put_u16(value);
    }
    fn u32(&mut self, value: u32) {
        self.buf.put_u32(value);
    }
    fn varint(&mut self, value: usize) {
        put_varint(self.buf, value);
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.buf.put_slice(bytes);
    }
    fn binary(&mut self, bytes: &[u8]) {
        // The counter checked the length fits.
        self.buf.put_u16(bytes.len() as u16);
        self.buf.put_slice(bytes);
    }
    fn properties<P: PropertySet>(&mut self, properties: &P) {
        // Counted again for the length prefix; the counting pass already reported errors,
        // so the packet type here names none.
        let mut block = Counter::new(PacketType::Publish);
        properties.visit(&mut |id, value| block.property(id, value));
        put_varint(self.buf, block.len);
        properties.visit(&mut |id, value| self.property(id, value));
    }
}

/// Bytes a Variable Byte Integer takes.
fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends a Variable Byte Integer (at most [`MAX_VARINT`]), shortest form.
fn put_varint(buf: &mut BytesMut, mut value: usize) {
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

fn checked_remaining(packet: PacketType, len: usize) -> Result<usize, EncodeError> {
    if len > MAX_VARINT {
        return Err(EncodeError::PacketTooLarge { packet, len });
    }
    Ok(len)
}

/// The Remaining Length of `packet`, checked.
fn body_len(version: Version, packet: &Packet) -> Result<usize, EncodeError> {
    let kind = packet.packet_type();
    if kind == PacketType::Auth && version == Version::V311 {
        return Err(EncodeError::NotInVersion(kind));
    }
    let mut counter = Counter::new(kind);
    body(&mut counter, version, packet);
    checked_remaining(kind, counter.finish()?)
}

fn publish_first_byte(publish: &Publish) -> u8 {
    let qos = publish.qos.qos().bits();
    0x30 | u8::from(publish.dup) << 3 | qos << 1 | u8::from(publish.retain)
}

fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Publish(publish) => publish_first_byte(publish),
        other => {
            let kind = other.packet_type();
            (kind as u8) << 4 | kind.fixed_flags().unwrap_or(0)
        }
    }
}

/// Writes the body (everything after the fixed header) of `packet`.
fn body<S: Sink>(s: &mut S, version: Version, packet: &Packet) {
    match packet {
        Packet::Connect(connect) => connect_body(s, connect),
        Packet::ConnAck(connack) => connack_body(s, version, connack),
        Packet::Publish(publish) => {
            publish_head(s, version, publish);
            s.raw(&publish.payload);
        }
        Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubRel(ack) | Packet::PubComp(ack) => {
            ack_body(s, version, ack);
        }
        Packet::Subscribe(subscribe) => {
            s.u16(subscribe.packet_id.get());
            if version == Version::V5 {
                s.properties(&subscribe.properties);
            }
            for subscription in &subscribe.subscriptions {
                s.string(subscription.filter.as_str());
                s.u8(options_byte(version, &subscription.options));
            }
        }
        Packet::SubAck(suback) => {
            s.u16(suback.packet_id.get());
            if version == Version::V5 {
                s.properties(&suback.properties);
            }
            for code in &suback.reason_codes {
                s.u8(match version {
                    Version::V5 => code.as_u8(),
                    Version::V311 => code.v311_suback_code(),
                });
            }
        }
        Packet::Unsubscribe(unsubscribe) => {
            s.u16(unsubscribe.packet_id.get());
            if version == Version::V5 {
                s.properties(&unsubscribe.properties);
            }
            for filter in &unsubscribe.filters {
                s.string(filter.as_str());
            }
        }
        Packet::UnsubAck(unsuback) => {
            s.u16(unsuback.packet_id.get());
            if version == Version::V5 {
                s.properties(&unsuback.properties);
                for code in &unsuback.reason_codes {
                    s.u8(code.as_u8());
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(disconnect) => {
            short_form(s, version, disconnect.reason_code, &disconnect.properties);
        }
        Packet::Auth(auth) => short_form(s, version, auth.reason_code, &auth.properties),
    }
}

/// `DISCONNECT` and `AUTH`: nothing for Success without properties (and always in 3.1.1),
/// else the reason code and the properties.
fn short_form<S: Sink, P: PropertySet>(
    s: &mut S,
    version: Version,
    reason: ReasonCode,
    properties: &P,
) {
    let empty = PropertySet::is_empty(properties);
    if version == Version::V311 || (reason == ReasonCode::Success && empty) {
        return;
    }
    s.u8(reason.as_u8());
    if !empty {
        s.properties(properties);
    }
}

fn connect_body<S: Sink>(s: &mut S, connect: &Connect) {
    let v5 = connect.version == Version::V5;
    s.string("MQTT");
    s.u8(connect.version.level());
    let mut flags = u8::from(connect.clean_start) << 1;
    if let Some(will) = &connect.will {
        flags |= 0x04 | will.qos.bits() << 3 | u8::from(will.retain) << 5;
    }
    flags |= u8::from(connect.password.is_some()) << 6;
    flags |= u8::from(connect.username.is_some()) << 7;
    s.u8(flags);
    s.u16(connect.keep_alive);
    if v5 {
        s.properties(&connect.properties);
    }
    s.string(&connect.client_id);
    if let Some(will) = &connect.will {
        if v5 {
            s.properties(&will.properties);
        }
        s.string(will.topic.as_str());
        s.binary(&will.payload);
    }
    if let Some(username) = &connect.username {
        s.string(username);
    }
    if let Some(password) = &connect.password {
        s.binary(password);
    }
}

fn connack_body<S: Sink>(s: &mut S, version: Version, connack: &ConnAck) {
    s.u8(u8::from(connack.session_present));
    match version {
        Version::V311 => s.u8(ConnectReturnCode::from_reason_code(connack.reason_code).as_u8()),
        Version::V5 => {
            s.u8(connack.reason_code.as_u8());
            s.properties(&connack.properties);
        }
    }
}

/// A `PUBLISH`'s variable header: topic, packet id, properties.
fn publish_head<S: Sink>(s: &mut S, version: Version, publish: &Publish) {
    s.string(publish.topic.as_str());
    if let QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) = publish.qos {
        s.u16(id.get());
    }
    if version == Version::V5 {
        s.properties(&publish.properties);
    }
}

fn ack_body<S: Sink>(s: &mut S, version: Version, ack: &Ack) {
    s.u16(ack.packet_id.get());
    if version == Version::V311 {
        return;
    }
    let empty = ack.properties.is_empty();
    if ack.reason_code == ReasonCode::Success && empty {
        return;
    }
    s.u8(ack.reason_code.as_u8());
    if !empty {
        s.properties(&ack.properties);
    }
}

fn options_byte(version: Version, options: &SubscriptionOptions) -> u8 {
    let qos = options.qos.bits();
    match version {
        Version::V311 => qos,
        Version::V5 => {
            qos | u8::from(options.no_local) << 2
                | u8::from(options.retain_as_published) << 3
                | (options.retain_handling as u8) << 4
        }
    }
}

#[cfg(test)]
mod tests;
