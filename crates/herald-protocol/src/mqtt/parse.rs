//! Decoders: bytes from the socket in, whole MQTT packets out.
//!
//! [`parse_client`] reads what a client sends (the broker's side); [`parse_server`] reads
//! what a server sends (for tests and the bench client). Both return `Ok(None)` until the
//! buffer holds a whole packet and then split exactly that packet off the front; binary
//! fields and the `PUBLISH` payload are [`Bytes`](bytes::Bytes) slices of it, never copies.
//!
//! The fixed header is judged as soon as its bytes arrive, before the body is buffered: a
//! reserved type, wrong flags, a packet the peer never sends, a Remaining Length with a fifth
//! byte and a packet larger than [`MqttLimits::max_packet_size`] fail at once, so a peer can
//! never make the listener buffer an oversized body. Everything else is checked once the
//! whole packet is there, field by field in wire order; the first broken rule is reported.
//!
//! A `CONNECT` carries its own protocol level and is decoded by it, whatever `version` the
//! call is given; until the `CONNECT` is read a listener may pass either version.

mod packets;
mod reader;

use bytes::BytesMut;

use super::{MqttError, MqttLimits, Packet, PacketType, QoS, Version};
use reader::Reader;

/// Which peer sent the bytes being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A client (the server is reading).
    Client,
    /// A server (the client is reading).
    Server,
}

/// Decodes one packet a client sent (what a server reads) from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not hold a whole packet yet; `buf` is then unchanged.
/// On `Ok(Some(packet))` exactly that packet's bytes have been removed from `buf`.
///
/// `version` is the connection's protocol version, known from its `CONNECT` (which is itself
/// decoded by the level it carries).
///
/// # Errors
///
/// Any [`MqttError`]; all are fatal to the connection (see [`MqttError::reason_code`]). On
/// error `buf` is unchanged, so [`connect_version`] can still look at a bad `CONNECT`.
pub fn parse_client(
    buf: &mut BytesMut,
    limits: &MqttLimits,
    version: Version,
) -> Result<Option<Packet>, MqttError> {
    parse(buf, limits, version, Side::Client)
}

/// Decodes one packet a server sent (what a client reads) from the front of `buf`.
///
/// Same contract as [`parse_client`]: `Ok(None)` leaves `buf` unchanged, `Ok(Some)` consumes
/// exactly one packet.
///
/// # Errors
///
/// Any [`MqttError`]; on error `buf` is unchanged.
pub fn parse_server(
    buf: &mut BytesMut,
    limits: &MqttLimits,
    version: Version,
) -> Result<Option<Packet>, MqttError> {
    parse(buf, limits, version, Side::Server)
}

/// The version a `CONNECT` at the front of `buf` asks for, read from its protocol name and
/// level without decoding the rest; the packet need not be complete.
///
/// A listener calls it when decoding the first packet failed, to pick its answer: `Some(V5)`
/// → an MQTT 5 `CONNACK` with the error's reason code; `Some(V311)` → close without a word;
/// `None` (another name or level, or not a `CONNECT`) → the 3.1.1 `CONNACK` return code 1,
/// `20 02 00 01`, when the error is [`MqttError::UnsupportedProtocolVersion`] (mosquitto
/// answers any unknown level that way), else close.
#[must_use]
pub fn connect_version(buf: &[u8]) -> Option<Version> {
    let (&first, rest) = buf.split_first()?;
    if first != 0x10 {
        return None;
    }
    // Skip the Remaining Length: up to four bytes, the last without bit 7.
    let length_bytes = rest.iter().take(4).position(|&b| b & 0x80 == 0)? + 1;
    match rest.get(length_bytes..length_bytes + 7)? {
        [0, 4, b'M', b'Q', b'T', b'T', level] => Version::from_level(*level),
        _ => None,
    }
}

/// A fixed header, judged.
#[derive(Debug, Clone, Copy)]
struct Header {
    packet: PacketType,
    /// The low four bits of the first byte.
    flags: u8,
    /// Length of the fixed header (first byte plus Remaining Length bytes).
    len: usize,
    /// The Remaining Length.
    remaining: usize,
    /// Whether the Remaining Length used its shortest encoding.
    minimal: bool,
}

impl Header {
    fn total(&self) -> usize {
        self.len + self.remaining
    }
}

fn parse(
    buf: &mut BytesMut,
    limits: &MqttLimits,
    version: Version,
    side: Side,
) -> Result<Option<Packet>, MqttError> {
    let Some(header) = read_header(buf, limits, version, side)? else {
        return Ok(None);
    };
    if buf.len() < header.total() {
        return Ok(None);
    }
    let frame = buf.split_to(header.total()).freeze();
    let mut body = Reader::new(frame.slice(header.len..), header.packet);
    match packets::decode(&header, &mut body, version, side).and_then(|packet| {
        body.finish()?;
        Ok(packet)
    }) {
        Ok(packet) => Ok(Some(packet)),
        Err(err) => {
            // Errors are rare and fatal: copying the packet back is cheaper than checking
            // every packet twice, and it keeps the buffer as it was for `connect_version`.
            let mut whole = BytesMut::with_capacity(frame.len() + buf.len());
            whole.extend_from_slice(&frame);
            whole.extend_from_slice(buf);
            *buf = whole;
            Err(err)
        }
    }
}

/// Reads and judges the fixed header at the front of `buf`; `Ok(None)` if it is incomplete.
/// Every check depends only on the bytes before it, so a stream cut anywhere fails the same.
fn read_header(
    buf: &[u8],
    limits: &MqttLimits,
    version: Version,
    side: Side,
) -> Result<Option<Header>, MqttError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let bits = first >> 4;
    let flags = first & 0x0F;
    let packet = match PacketType::from_bits(bits) {
        Some(PacketType::Auth) if version == Version::V311 => {
            return Err(MqttError::ReservedPacketType(bits));
        }
        Some(packet) => packet,
        None => return Err(MqttError::ReservedPacketType(bits)),
    };
    match packet.fixed_flags() {
        Some(required) if flags != required => {
            return Err(MqttError::InvalidFlags { packet, flags });
        }
        Some(_) => {}
        None => check_publish_flags(flags, version)?,
    }
    if !sent_by(packet, side, version) {
        return Err(MqttError::UnexpectedPacket(packet));
    }
    let mut remaining = 0usize;
    let mut len = 1;
    loop {
        let Some(&byte) = buf.get(len) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7F) << (7 * (len - 1));
        len += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if len == 5 {
            return Err(MqttError::VarintTooLong { packet });
        }
    }
    // The last byte holds the highest bits: zero there means a shorter form existed.
    let minimal = len == 2 || buf[len - 1] != 0;
    // A CONNECT's own level decides (see `packets::connect`).
    if !minimal && version == Version::V5 && packet != PacketType::Connect {
        return Err(MqttError::NonMinimalVarint { packet });
    }
    let size = len + remaining;
    if size > limits.max_packet_size {
        return Err(MqttError::PacketTooLarge {
            size,
            max: limits.max_packet_size,
        });
    }
    Ok(Some(Header {
        packet,
        flags,
        len,
        remaining,
        minimal,
    }))
}

/// The `PUBLISH` flags: QoS 3 is malformed in both versions, DUP at QoS 0 in MQTT 5.
fn check_publish_flags(flags: u8, version: Version) -> Result<(), MqttError> {
    let qos = QoS::from_bits((flags >> 1) & 0b11).ok_or(MqttError::InvalidQos {
        packet: PacketType::Publish,
    })?;
    if version == Version::V5 && qos == QoS::AtMostOnce && flags & 0b1000 != 0 {
        return Err(MqttError::DupAtQos0);
    }
    Ok(())
}

/// Whether `side` may send `packet`.
fn sent_by(packet: PacketType, side: Side, version: Version) -> bool {
    use PacketType as P;
    match side {
        Side::Client => !matches!(packet, P::ConnAck | P::SubAck | P::UnsubAck | P::PingResp),
        Side::Server => match packet {
            P::Connect | P::Subscribe | P::Unsubscribe | P::PingReq => false,
            // A 3.1.1 server never sends DISCONNECT; it just closes.
            P::Disconnect => version == Version::V5,
            _ => true,
        },
    }
}

#[cfg(test)]
mod tests;
