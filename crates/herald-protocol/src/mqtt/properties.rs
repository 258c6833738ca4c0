//! MQTT 5 properties (v5 §2.2.2): every property id with its wire type, and one struct per
//! packet kind holding exactly the properties that packet may carry.
//!
//! A property block is a Variable Byte Integer length followed by properties, each an
//! identifier (a Variable Byte Integer; all defined ids fit in one byte) and a value of the
//! identifier's type. The decoder enforces, in this order:
//! - the id is defined ([`MqttError::UnknownProperty`]) — a Malformed Packet (v5 §2.2.2.2);
//! - the value has a legal value: the 0/1 bytes, Maximum QoS 0 or 1, non-zero Receive Maximum,
//!   Maximum Packet Size, Topic Alias and Subscription Identifier, a Response Topic that is a
//!   valid topic name ([`MqttError::InvalidPropertyValue`], a Protocol Error);
//! - it appears once, except User Property and, in a `PUBLISH`, Subscription Identifier
//!   ([`MqttError::DuplicateProperty`], a Protocol Error);
//! - the packet allows it ([`MqttError::PropertyNotAllowed`], a Malformed Packet).
//!
//! Each struct's fields are typed so that the value rules cannot be broken when encoding: a
//! [`SubscriptionId`] is 1..=268,435,455, a Receive Maximum is a `NonZeroU16`, a Response
//! Topic is a [`TopicName`](super::TopicName). User Properties keep their order.
//!
//! [`MqttError::UnknownProperty`]: super::MqttError::UnknownProperty
//! [`MqttError::InvalidPropertyValue`]: super::MqttError::InvalidPropertyValue
//! [`MqttError::DuplicateProperty`]: super::MqttError::DuplicateProperty
//! [`MqttError::PropertyNotAllowed`]: super::MqttError::PropertyNotAllowed

/// Property identifiers (v5 §2.2.2.2).
pub mod id {
    /// Payload Format Indicator (Byte).
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message Expiry Interval (Four Byte Integer).
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content Type (UTF-8 String).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response Topic (UTF-8 String).
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation Data (Binary Data).
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription Identifier (Variable Byte Integer).
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session Expiry Interval (Four Byte Integer).
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned Client Identifier (UTF-8 String).
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server Keep Alive (Two Byte Integer).
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication Method (UTF-8 String).
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Authentication Data (Binary Data).
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// Request Problem Information (Byte).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will Delay Interval (Four Byte Integer).
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request Response Information (Byte).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response Information (UTF-8 String).
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Server Reference (UTF-8 String).
    pub const SERVER_REFERENCE: u8 = 0x1C;
    /// Reason String (UTF-8 String).
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive Maximum (Two Byte Integer).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic Alias Maximum (Two Byte Integer).
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic Alias (Two Byte Integer).
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum QoS (Byte).
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain Available (Byte).
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User Property (UTF-8 String Pair).
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum Packet Size (Four Byte Integer).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard Subscription Available (Byte).
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription Identifiers Available (Byte).
    pub const SUBSCRIPTION_IDENTIFIERS_AVAILABLE: u8 = 0x29;
    /// Shared Subscription Available (Byte).
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// The wire type of a property value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Byte,
    Two,
    Four,
    Varint,
    Str,
    Bin,
    Pair,
}

/// The wire type and name of a property id; `None` for an undefined id.
pub(super) fn kind(property: u8) -> Option<(Kind, &'static str)> {
    use id::*;
    Some(match property {
        PAYLOAD_FORMAT_INDICATOR => (Kind::Byte, "Payload Format Indicator"),
        MESSAGE_EXPIRY_INTERVAL => (Kind::Four, "Message Expiry Interval"),
        CONTENT_TYPE => (Kind::Str, "Content Type"),
        RESPONSE_TOPIC => (Kind::Str, "Response Topic"),
        CORRELATION_DATA => (Kind::Bin, "Correlation Data"),
        SUBSCRIPTION_IDENTIFIER => (Kind::Varint, "Subscription Identifier"),
        SESSION_EXPIRY_INTERVAL => (Kind::Four, "Session Expiry Interval"),
        ASSIGNED_CLIENT_IDENTIFIER => (Kind::Str, "Assigned Client Identifier"),
        SERVER_KEEP_ALIVE => (Kind::Two, "Server Keep Alive"),
        AUTHENTICATION_METHOD => (Kind::Str, "Authentication Method"),
        AUTHENTICATION_DATA => (Kind::Bin, "Authentication Data"),
        REQUEST_PROBLEM_INFORMATION => (Kind::Byte, "Request Problem Information"),
        WILL_DELAY_INTERVAL => (Kind::Four, "Will Delay Interval"),
        REQUEST_RESPONSE_INFORMATION => (Kind::Byte, "Request Response Information"),
        RESPONSE_INFORMATION => (Kind::Str, "Response Information"),
        SERVER_REFERENCE => (Kind::Str, "Server Reference"),
        REASON_STRING => (Kind::Str, "Reason String"),
        RECEIVE_MAXIMUM => (Kind::Two, "Receive Maximum"),
        TOPIC_ALIAS_MAXIMUM => (Kind::Two, "Topic Alias Maximum"),
        TOPIC_ALIAS => (Kind::Two, "Topic Alias"),
        MAXIMUM_QOS => (Kind::Byte, "Maximum QoS"),
        RETAIN_AVAILABLE => (Kind::Byte, "Retain Available"),
        USER_PROPERTY => (Kind::Pair, "User Property"),
        MAXIMUM_PACKET_SIZE => (Kind::Four, "Maximum Packet Size"),
        WILDCARD_SUBSCRIPTION_AVAILABLE => (Kind::Byte, "Wildcard Subscription Available"),
        SUBSCRIPTION_IDENTIFIERS_AVAILABLE => (Kind::Byte, "Subscription Identifiers Available"),
        SHARED_SUBSCRIPTION_AVAILABLE => (Kind::Byte, "Shared Subscription Available"),
        _ => return None,
    })
}

/// Why a property set refused a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The packet does not allow this property.
    NotAllowed,
    /// The value is out of range for the property.
    InvalidValue,
}

mod value;

pub use value::{PayloadFormat, SubscriptionId, UserProperty};
pub(in crate::mqtt) use value::{PropertyValue, Value, ValueRef};

/// The properties one packet kind may carry: what the decoder fills and the encoder visits.
pub(super) trait PropertySet: Default {
    /// Stores a decoded value.
    fn set(&mut self, property: u8, value: Value) -> Result<(), Refusal>;
    /// Whether `property` may appear more than once in this set.
    fn repeatable(property: u8) -> bool;
    /// Calls `f` with each present property, in id order, repeated ones in their order.
    fn visit(&self, f: &mut dyn FnMut(u8, ValueRef<'_>));
    /// Whether no property is present.
    fn is_empty(&self) -> bool {
        let mut empty = true;
        self.visit(&mut |_, _| empty = false);
        empty
    }
}

/// Defines a property set: a struct with one `Option` per single property and one `Vec` per
/// repeatable one, and its [`PropertySet`] impl.
macro_rules! property_set {
    (
        $(#[$doc:meta])*
        $name:ident {
            $($(#[$fdoc:meta])* $field:ident: $ty:ty = $id:ident,)*
        }
        repeated {
            $($(#[$rdoc:meta])* $rfield:ident: $rty:ty = $rid:ident,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: Option<$ty>,)*
            $($(#[$rdoc])* pub $rfield: Vec<$rty>,)*
        }

        impl $name {
            /// Whether no property is present (an empty block encodes as one `0x00`).
            #[must_use]
            pub fn is_empty(&self) -> bool {
                true $(&& self.$field.is_none())* $(&& self.$rfield.is_empty())*
            }
        }

        impl PropertySet for $name {
            fn set(&mut self, property: u8, value: Value) -> Result<(), Refusal> {
                match property {
                    $(id::$id => {
                        let value = <$ty>::from_value(value).ok_or(Refusal::InvalidValue)?;
                        self.$field = Some(value);
                    })*
                    $(id::$rid => {
                        let value = <$rty>::from_value(value).ok_or(Refusal::InvalidValue)?;
                        self.$rfield.push(value);
                    })*
                    _ => return Err(Refusal::NotAllowed),
                }
                Ok(())
            }

            fn repeatable(property: u8) -> bool {
                false $(|| property == id::$rid)*
            }

            fn visit(&self, f: &mut dyn FnMut(u8, ValueRef<'_>)) {
                $(if let Some(value) = &self.$field {
                    f(id::$id, value.to_value());
                })*
                $(for value in &self.$rfield {
                    f(id::$rid, value.to_value());
                })*
            }
        }
    };
}

mod sets;

pub use sets::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU16, NonZeroU32};

    use super::*;
    use crate::mqtt::QoS;
    use crate::mqtt::topic::TopicName;

    #[test]
    fn the_table_has_every_property() {
        let defined: Vec<u8> = (0..=u8::MAX).filter(|&p| kind(p).is_some()).collect();
        assert_eq!(
            defined,
            [
                0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
                0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A
            ]
        );
        assert_eq!(kind(0x26), Some((Kind::Pair, "User Property")));
        assert_eq!(kind(0x0B).map(|k| k.0), Some(Kind::Varint));
    }

    #[test]
    fn value_rules() {
        assert_eq!(bool::from_value(Value::Byte(2)), None);
        assert_eq!(QoS::from_value(Value::Byte(2)), None);
        assert_eq!(QoS::from_value(Value::Byte(1)), Some(QoS::AtLeastOnce));
        assert_eq!(NonZeroU16::from_value(Value::Two(0)), None);
        assert_eq!(NonZeroU32::from_value(Value::Four(0)), None);
        assert_eq!(SubscriptionId::from_value(Value::Varint(0)), None);
        assert_eq!(SubscriptionId::new(SubscriptionId::MAX + 1), None);
        assert_eq!(
            SubscriptionId::new(SubscriptionId::MAX).map(SubscriptionId::get),
            Some(SubscriptionId::MAX)
        );
        let topic = |s: &str| TopicName::from_value(Value::Str(s.to_owned()));
        assert_eq!(
            topic("a/b").map(|t| t.as_str().to_owned()).as_deref(),
            Some("a/b")
        );
        assert_eq!(topic("a/+"), None);
        assert_eq!(topic(""), None);
        // A value of the wrong wire type is refused rather than misread.
        assert_eq!(u32::from_value(Value::Two(1)), None);
    }

    #[test]
    fn sets_refuse_what_their_packet_does_not_allow() {
        let mut connect = ConnectProperties::default();
        assert_eq!(
            connect.set(id::TOPIC_ALIAS, Value::Two(1)),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            connect.set(id::RECEIVE_MAXIMUM, Value::Two(0)),
            Err(Refusal::InvalidValue)
        );
        assert_eq!(connect.set(id::RECEIVE_MAXIMUM, Value::Two(10)), Ok(()));
        assert_eq!(connect.receive_maximum.map(NonZeroU16::get), Some(10));
        assert!(!ConnectProperties::repeatable(id::RECEIVE_MAXIMUM));
        assert!(ConnectProperties::repeatable(id::USER_PROPERTY));
        assert!(PublishProperties::repeatable(id::SUBSCRIPTION_IDENTIFIER));
        assert!(!SubscribeProperties::repeatable(
            id::SUBSCRIPTION_IDENTIFIER
        ));
        assert!(connect.user_properties.is_empty() && !connect.is_empty());
    }

    #[test]
    fn visit_order_is_id_order_then_repeated() {
        let props = PublishProperties {
            topic_alias: NonZeroU16::new(3),
            payload_format_indicator: Some(PayloadFormat::Utf8),
            user_properties: vec![UserProperty::new("b", "2"), UserProperty::new("a", "1")],
            ..PublishProperties::default()
        };
        let mut seen = Vec::new();
        props.visit(&mut |property, _| seen.push(property));
        assert_eq!(
            seen,
            [
                id::PAYLOAD_FORMAT_INDICATOR,
                id::TOPIC_ALIAS,
                id::USER_PROPERTY,
                id::USER_PROPERTY
            ]
        );
    }
}
