//! [`Reader`]: a cursor over one packet's body that reads the MQTT data types (v5 §1.5) and
//! property blocks, reporting every overrun against the packet it belongs to.

use bytes::Bytes;
use memchr::memchr;

use crate::mqtt::properties::{self, Kind, PropertySet, Refusal, Value};
use crate::mqtt::topic::TopicName;
use crate::mqtt::{MqttError, PacketId, PacketType};

/// A cursor over a packet body (or a property block inside it).
#[derive(Debug)]
pub(super) struct Reader {
    data: Bytes,
    pos: usize,
    packet: PacketType,
}

impl Reader {
    pub(super) fn new(data: Bytes, packet: PacketType) -> Self {
        Self {
            data,
            pos: 0,
            packet,
        }
    }

    pub(super) fn packet(&self) -> PacketType {
        self.packet
    }

    /// Whether every byte has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Fails if bytes are left over.
    pub(super) fn finish(&self) -> Result<(), MqttError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(MqttError::TrailingBytes {
                packet: self.packet,
            })
        }
    }

    fn truncated(&self) -> MqttError {
        MqttError::Truncated {
            packet: self.packet,
        }
    }

    /// The next `n` bytes, as a slice of the packet.
    pub(super) fn bytes(&mut self, n: usize) -> Result<Bytes, MqttError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.truncated())?;
        if end > self.data.len() {
            return Err(self.truncated());
        }
        let bytes = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(bytes)
    }

    /// Everything left (the `PUBLISH` payload).
    pub(super) fn rest(&mut self) -> Bytes {
        let rest = self.data.slice(self.pos.min(self.data.len())..);
        self.pos = self.data.len();
        rest
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MqttError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + N)
            .ok_or_else(|| self.truncated())?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        self.pos += N;
        Ok(array)
    }

    pub(super) fn u8(&mut self) -> Result<u8, MqttError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(super) fn u16(&mut self) -> Result<u16, MqttError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, MqttError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A Variable Byte Integer in its shortest form (MQTT 5 only uses them there).
    pub(super) fn varint(&mut self) -> Result<u32, MqttError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(MqttError::NonMinimalVarint {
                        packet: self.packet,
                    });
                }
                return Ok(value);
            }
        }
        Err(MqttError::VarintTooLong {
            packet: self.packet,
        })
    }

    /// A non-zero Packet Identifier.
    pub(super) fn packet_id(&mut self) -> Result<PacketId, MqttError> {
        let value = self.u16()?;
        PacketId::new(value).ok_or(MqttError::ZeroPacketId {
            packet: self.packet,
        })
    }

    /// Binary Data: a two-byte length and that many bytes.
    pub(super) fn binary(&mut self) -> Result<Bytes, MqttError> {
        let len = self.u16()?;
        self.bytes(usize::from(len))
    }

    /// Checks the rules of a UTF-8 Encoded String: valid UTF-8 (so no surrogates), no U+0000.
    fn check_utf8<'a>(&self, bytes: &'a [u8]) -> Result<&'a str, MqttError> {
        let text = std::str::from_utf8(bytes).map_err(|_| MqttError::InvalidUtf8 {
            packet: self.packet,
        })?;
        if memchr(0, bytes).is_some() {
            return Err(MqttError::NullCharacter {
                packet: self.packet,
            });
        }
        Ok(text)
    }

    /// A UTF-8 Encoded String, checked, as a slice of the packet.
    fn string_bytes(&mut self) -> Result<Bytes, MqttError> {
        let bytes = self.binary()?;
        self.check_utf8(&bytes)?;
        Ok(bytes)
    }

    /// A UTF-8 Encoded String, checked, copied out.
    pub(super) fn string(&mut self) -> Result<String, MqttError> {
        let bytes = self.binary()?;
        self.check_utf8(&bytes).map(str::to_owned)
    }

    /// A topic name (possibly empty; the caller decides whether that is allowed).
    pub(super) fn topic_name(&mut self) -> Result<TopicName, MqttError> {
        let bytes = self.string_bytes()?;
        TopicName::from_checked_string(bytes).map_err(MqttError::InvalidTopicName)
    }

    /// A property block: its length, then properties until that length is used up.
    ///
    /// Errors are reported against `packet` (Will properties are `CONNECT`'s).
    pub(super) fn properties<P: PropertySet>(&mut self) -> Result<P, MqttError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.truncated())?;
        let mut block = Reader::new(self.bytes(len)?, self.packet);
        let mut set = P::default();
        // Every defined id is below 64, so one bit each tells what was seen.
        let mut seen = 0u64;
        while !block.is_empty() {
            let id = block.varint()?;
            let unknown = MqttError::UnknownProperty {
                packet: self.packet,
                id,
            };
            let Ok(id) = u8::try_from(id) else {
                return Err(unknown);
            };
            let Some((kind, _)) = properties::kind(id) else {
                return Err(unknown);
            };
            let value = block.value(kind)?;
            let bit = 1u64 << id;
            if seen & bit != 0 && !P::repeatable(id) {
                return Err(MqttError::DuplicateProperty {
                    packet: self.packet,
                    id,
                });
            }
            seen |= bit;
            set.set(id, value).map_err(|refusal| match refusal {
                Refusal::NotAllowed => MqttError::PropertyNotAllowed {
                    packet: self.packet,
                    id,
                },
                Refusal::InvalidValue => MqttError::InvalidPropertyValue {
                    packet: self.packet,
                    id,
                },
            })?;
        }
        Ok(set)
    }

    /// One property value of the given wire type.
    fn value(&mut self, kind: Kind) -> Result<Value, MqttError> {
        Ok(match kind {
            Kind::Byte => Value::Byte(self.u8()?),
            Kind::Two => Value::Two(self.u16()?),
            Kind::Four => Value::Four(self.u32()?),
            Kind::Varint => Value::Varint(self.varint()?),
            Kind::Str => Value::Str(self.string()?),
            Kind::Bin => Value::Bin(self.binary()?),
            Kind::Pair => Value::Pair(self.string()?, self.string()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(data: &'static [u8]) -> Reader {
        Reader::new(Bytes::from_static(data), PacketType::Publish)
    }

    #[test]
    fn varints_from_the_spec_table() {
        let cases: [(&'static [u8], u32); 8] = [
            (&[0x00], 0),
            (&[0x7F], 127),
            (&[0x80, 0x01], 128),
            (&[0xFF, 0x7F], 16_383),
            (&[0x80, 0x80, 0x01], 16_384),
            (&[0xFF, 0xFF, 0x7F], 2_097_151),
            (&[0x80, 0x80, 0x80, 0x01], 2_097_152),
            (&[0xFF, 0xFF, 0xFF, 0x7F], 268_435_455),
        ];
        for (bytes, value) in cases {
            let mut r = reader(bytes);
            assert_eq!(r.varint(), Ok(value));
            assert!(r.is_empty());
        }
        let packet = PacketType::Publish;
        assert_eq!(
            reader(&[0x80, 0x00]).varint(),
            Err(MqttError::NonMinimalVarint { packet })
        );
        assert_eq!(
            reader(&[0xFF, 0x80, 0x00]).varint(),
            Err(MqttError::NonMinimalVarint { packet })
        );
        assert_eq!(
            reader(&[0x80, 0x80, 0x80, 0x80, 0x01]).varint(),
            Err(MqttError::VarintTooLong { packet })
        );
        assert_eq!(
            reader(&[0x80]).varint(),
            Err(MqttError::Truncated { packet })
        );
    }

    #[test]
    fn strings() {
        let packet = PacketType::Publish;
        assert_eq!(reader(b"\x00\x02ab").string().as_deref(), Ok("ab"));
        assert_eq!(reader(b"\x00\x00").string().as_deref(), Ok(""));
        assert_eq!(
            reader(b"\x00\x03ab").string(),
            Err(MqttError::Truncated { packet })
        );
        assert_eq!(
            reader(b"\x00\x02a\xff").string(),
            Err(MqttError::InvalidUtf8 { packet })
        );
        // U+D800 encoded as if it were a character (CESU-8): not UTF-8.
        assert_eq!(
            reader(b"\x00\x03\xed\xa0\x80").string(),
            Err(MqttError::InvalidUtf8 { packet })
        );
        assert_eq!(
            reader(b"\x00\x02a\x00").string(),
            Err(MqttError::NullCharacter { packet })
        );
        // U+FEFF (a BOM) is a character like any other and is kept.
        assert_eq!(
            reader(b"\x00\x03\xef\xbb\xbf").string().as_deref(),
            Ok("\u{feff}")
        );
        assert_eq!(
            reader(b"\x00\x03a/+").topic_name(),
            Err(MqttError::InvalidTopicName(
                crate::mqtt::TopicError::WildcardInName
            ))
        );
    }

    #[test]
    fn fixed_width_integers() {
        let mut r = reader(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0203));
        assert_eq!(r.u32(), Ok(0x0405_0607));
        assert_eq!(
            r.u8(),
            Err(MqttError::Truncated {
                packet: PacketType::Publish
            })
        );
        assert_eq!(
            reader(&[0, 0]).packet_id(),
            Err(MqttError::ZeroPacketId {
                packet: PacketType::Publish
            })
        );
    }
}
