//! Property values: the wire forms ([`Value`] decoded, [`ValueRef`] to encode) and the Rust
//! types that hold them, each mapping to exactly one wire type and checking its range.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use crate::mqtt::QoS;
use crate::mqtt::topic::TopicName;

/// A decoded property value, before it is checked and stored.
#[derive(Debug)]
pub(in crate::mqtt) enum Value {
    Byte(u8),
    Two(u16),
    Four(u32),
    Varint(u32),
    Str(String),
    Bin(Bytes),
    Pair(String, String),
}

/// A property value to encode, borrowed from its struct.
#[derive(Debug, Clone, Copy)]
pub(in crate::mqtt) enum ValueRef<'a> {
    Byte(u8),
    Two(u16),
    Four(u32),
    Varint(u32),
    Str(&'a str),
    Bin(&'a [u8]),
    Pair(&'a str, &'a str),
}

/// A Rust type that holds one property's value; each maps to exactly one wire type.
pub(in crate::mqtt) trait PropertyValue: Sized {
    /// The checked value; `None` when out of range (or of the wrong wire type).
    fn from_value(value: Value) -> Option<Self>;
    /// The value to encode.
    fn to_value(&self) -> ValueRef<'_>;
}

impl PropertyValue for u16 {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Two(v) => Some(v),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Two(*self)
    }
}

impl PropertyValue for u32 {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Four(v) => Some(v),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Four(*self)
    }
}

impl PropertyValue for NonZeroU16 {
    fn from_value(value: Value) -> Option<Self> {
        u16::from_value(value).and_then(NonZeroU16::new)
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Two(self.get())
    }
}

impl PropertyValue for NonZeroU32 {
    fn from_value(value: Value) -> Option<Self> {
        u32::from_value(value).and_then(NonZeroU32::new)
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Four(self.get())
    }
}

/// The 0/1 bytes (Request Problem Information, Retain Available, ...).
impl PropertyValue for bool {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Byte(0) => Some(false),
            Value::Byte(1) => Some(true),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Byte(u8::from(*self))
    }
}

/// Maximum QoS: 0 or 1 only (absent means 2).
impl PropertyValue for QoS {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Byte(0) => Some(QoS::AtMostOnce),
            Value::Byte(1) => Some(QoS::AtLeastOnce),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Byte(self.bits())
    }
}

impl PropertyValue for String {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Str(self)
    }
}

/// Response Topic: a non-empty topic name without wildcards.
impl PropertyValue for TopicName {
    fn from_value(value: Value) -> Option<Self> {
        String::from_value(value)
            .and_then(|topic| TopicName::from_bytes(Bytes::from(topic)).ok())
            .filter(|topic| !topic.is_empty())
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Str(self.as_str())
    }
}

impl PropertyValue for Bytes {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Bin(v) => Some(v),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Bin(self)
    }
}

/// The Payload Format Indicator: how the receiver may read the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    #[default]
    Unspecified = 0,
    /// 1: UTF-8 text; a receiver may check it and answer 0x99 (Payload format invalid).
    Utf8 = 1,
}

impl PropertyValue for PayloadFormat {
    fn from_value(value: Value) -> Option<Self> {
        bool::from_value(value).map(|utf8| if utf8 { Self::Utf8 } else { Self::Unspecified })
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Byte(*self as u8)
    }
}

/// A Subscription Identifier: 1..=268,435,455 (a Variable Byte Integer that is not zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest identifier, the largest Variable Byte Integer.
    pub const MAX: u32 = 268_435_455;

    /// The identifier for `value`; `None` for 0 or above [`SubscriptionId::MAX`].
    #[must_use]
    pub fn new(value: u32) -> Option<Self> {
        NonZeroU32::new(value)
            .filter(|v| v.get() <= Self::MAX)
            .map(Self)
    }

    /// The numeric value.
    #[must_use]
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl PropertyValue for SubscriptionId {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Varint(v) => Self::new(v),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Varint(self.get())
    }
}

/// A User Property: a name/value pair of UTF-8 strings. Names may repeat; order is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct UserProperty {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

impl UserProperty {
    /// A pair from anything string-like.
    #[must_use]
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl PropertyValue for UserProperty {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Pair(name, value) => Some(Self { name, value }),
            _ => None,
        }
    }
    fn to_value(&self) -> ValueRef<'_> {
        ValueRef::Pair(&self.name, &self.value)
    }
}
