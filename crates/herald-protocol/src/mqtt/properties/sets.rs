//! The property set of each packet kind (the "Allowed in" column of v5 §2.2.2.2). Fields
//! are declared in id order, which is the order the encoder writes them in.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use super::{
    PayloadFormat, PropertySet, PropertyValue, Refusal, SubscriptionId, UserProperty, Value,
    ValueRef, id,
};
use crate::mqtt::QoS;
use crate::mqtt::topic::TopicName;

property_set! {
    /// `CONNECT` properties (v5 §3.1.2.11).
    ConnectProperties {
        /// Seconds the session outlives the connection: absent or 0 = ends with it,
        /// `u32::MAX` = never expires.
        session_expiry_interval: u32 = SESSION_EXPIRY_INTERVAL,
        /// Enhanced authentication method; a broker without enhanced authentication answers
        /// `CONNACK` 0x8C (Bad authentication method).
        authentication_method: String = AUTHENTICATION_METHOD,
        /// Enhanced authentication data (only with a method; the decoder checks).
        authentication_data: Bytes = AUTHENTICATION_DATA,
        /// Whether the server may send Reason Strings and User Properties on failures
        /// (absent = true).
        request_problem_information: bool = REQUEST_PROBLEM_INFORMATION,
        /// Whether the client wants Response Information in `CONNACK` (absent = false).
        request_response_information: bool = REQUEST_RESPONSE_INFORMATION,
        /// How many unacknowledged QoS 1/2 `PUBLISH` the client accepts (absent = 65,535).
        receive_maximum: NonZeroU16 = RECEIVE_MAXIMUM,
        /// Highest Topic Alias the server may use toward the client (absent = 0, none).
        topic_alias_maximum: u16 = TOPIC_ALIAS_MAXIMUM,
        /// Largest packet the client accepts (absent = the protocol maximum).
        maximum_packet_size: NonZeroU32 = MAXIMUM_PACKET_SIZE,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// Will properties, in the `CONNECT` payload (v5 §3.1.3.2).
    WillProperties {
        /// Whether the Will payload is UTF-8.
        payload_format_indicator: PayloadFormat = PAYLOAD_FORMAT_INDICATOR,
        /// Lifetime of the Will message, in seconds.
        message_expiry_interval: u32 = MESSAGE_EXPIRY_INTERVAL,
        /// Content type of the Will payload.
        content_type: String = CONTENT_TYPE,
        /// Topic for a response to the Will message.
        response_topic: TopicName = RESPONSE_TOPIC,
        /// Correlation data for a response.
        correlation_data: Bytes = CORRELATION_DATA,
        /// Seconds to wait after the connection is lost before publishing the Will
        /// (absent = 0).
        will_delay_interval: u32 = WILL_DELAY_INTERVAL,
    }
    repeated {
        /// User Properties, in order (forwarded with the Will message).
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// `CONNACK` properties (v5 §3.2.2.3).
    ConnAckProperties {
        /// The session expiry the server imposes, replacing the client's.
        session_expiry_interval: u32 = SESSION_EXPIRY_INTERVAL,
        /// The client id the server assigned to a client that sent an empty one (required
        /// then).
        assigned_client_identifier: String = ASSIGNED_CLIENT_IDENTIFIER,
        /// The keep alive the client must use instead of its own.
        server_keep_alive: u16 = SERVER_KEEP_ALIVE,
        /// Enhanced authentication method (the one from `CONNECT`).
        authentication_method: String = AUTHENTICATION_METHOD,
        /// Enhanced authentication data.
        authentication_data: Bytes = AUTHENTICATION_DATA,
        /// Basis for response topics, if the client requested it.
        response_information: String = RESPONSE_INFORMATION,
        /// Another server the client should use.
        server_reference: String = SERVER_REFERENCE,
        /// Human-readable diagnostics.
        reason_string: String = REASON_STRING,
        /// How many unacknowledged QoS 1/2 `PUBLISH` the server accepts (absent = 65,535).
        receive_maximum: NonZeroU16 = RECEIVE_MAXIMUM,
        /// Highest Topic Alias the client may use (absent = 0, none).
        topic_alias_maximum: u16 = TOPIC_ALIAS_MAXIMUM,
        /// Highest QoS the server supports: 0 or 1 (absent = 2).
        maximum_qos: QoS = MAXIMUM_QOS,
        /// Whether retained messages are supported (absent = true).
        retain_available: bool = RETAIN_AVAILABLE,
        /// Largest packet the server accepts (absent = the protocol maximum).
        maximum_packet_size: NonZeroU32 = MAXIMUM_PACKET_SIZE,
        /// Whether wildcard subscriptions are supported (absent = true).
        wildcard_subscription_available: bool = WILDCARD_SUBSCRIPTION_AVAILABLE,
        /// Whether Subscription Identifiers are supported (absent = true).
        subscription_identifiers_available: bool = SUBSCRIPTION_IDENTIFIERS_AVAILABLE,
        /// Whether shared subscriptions are supported (absent = true).
        shared_subscription_available: bool = SHARED_SUBSCRIPTION_AVAILABLE,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// `PUBLISH` properties (v5 §3.3.2.3).
    PublishProperties {
        /// Whether the payload is UTF-8.
        payload_format_indicator: PayloadFormat = PAYLOAD_FORMAT_INDICATOR,
        /// Lifetime in seconds; a broker forwards the remaining lifetime.
        message_expiry_interval: u32 = MESSAGE_EXPIRY_INTERVAL,
        /// Content type of the payload.
        content_type: String = CONTENT_TYPE,
        /// Topic for a response.
        response_topic: TopicName = RESPONSE_TOPIC,
        /// Correlation data for a response.
        correlation_data: Bytes = CORRELATION_DATA,
        /// Topic Alias (per connection and direction; never forwarded).
        topic_alias: NonZeroU16 = TOPIC_ALIAS,
    }
    repeated {
        /// Identifiers of the matching subscriptions (server to client only: one from a
        /// client is a Protocol Error).
        subscription_identifiers: SubscriptionId = SUBSCRIPTION_IDENTIFIER,
        /// User Properties, in order (forwarded unchanged).
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// Properties of `PUBACK`, `PUBREC`, `PUBREL`, `PUBCOMP`, `SUBACK` and `UNSUBACK`.
    AckProperties {
        /// Human-readable diagnostics.
        reason_string: String = REASON_STRING,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// `SUBSCRIBE` properties (v5 §3.8.2.1).
    SubscribeProperties {
        /// Identifier the server attaches to every message this subscription delivers.
        subscription_identifier: SubscriptionId = SUBSCRIPTION_IDENTIFIER,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// `UNSUBSCRIBE` properties (v5 §3.10.2.1): User Properties only.
    UnsubscribeProperties {}
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// `DISCONNECT` properties (v5 §3.14.2.2).
    DisconnectProperties {
        /// New session expiry (client to server only; not allowed to become non-zero when
        /// `CONNECT` had 0, which the session checks).
        session_expiry_interval: u32 = SESSION_EXPIRY_INTERVAL,
        /// Another server the client should use.
        server_reference: String = SERVER_REFERENCE,
        /// Human-readable diagnostics.
        reason_string: String = REASON_STRING,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}

property_set! {
    /// `AUTH` properties (v5 §3.15.2.2).
    AuthProperties {
        /// Enhanced authentication method (required unless the packet is empty).
        authentication_method: String = AUTHENTICATION_METHOD,
        /// Enhanced authentication data.
        authentication_data: Bytes = AUTHENTICATION_DATA,
        /// Human-readable diagnostics.
        reason_string: String = REASON_STRING,
    }
    repeated {
        /// User Properties, in order.
        user_properties: UserProperty = USER_PROPERTY,
    }
}
