//! The NATS client protocol: frame types, `CONNECT`/`INFO` bodies and the protocol error.
//!
//! The grammar is the one nats-server speaks to clients (see the project's
//! `nats-protocol.md`, sections 2 and 3). [`parse`] turns bytes into [`ClientOp`]s (what a
//! server reads) and [`ServerOp`]s (what a client reads); [`encode`] does the reverse.
//! Payloads, subjects and header blocks are zero-copy [`Bytes`] slices of the frame they came
//! in, so handing a message to many subscribers never copies it.
//!
//! Every [`ProtocolError`] is fatal: the caller writes `-ERR '<err_text>'` (see
//! [`ProtocolError::err_text`] and [`encode_err`]) and closes the connection.

pub mod encode;
pub mod parse;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

pub use encode::{
    encode_client, encode_err, encode_hmsg, encode_hpub, encode_info, encode_msg, encode_msg_head,
    encode_ok, encode_ping, encode_pong, encode_pub, encode_server,
};
pub use parse::{parse_client, parse_server};

/// One operation sent by a client to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`: the client's options, boxed to keep the enum small.
    Connect(Box<ConnectOptions>),
    /// `PUB` (no headers) or `HPUB` (with headers).
    Pub {
        /// Subject published to, exactly as sent (not validated here).
        subject: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// For `HPUB`: the raw header block, from `NATS/1.0` up to and including the empty
        /// line that ends it. `None` for `PUB`.
        headers: Option<Bytes>,
        /// The message body (after the header block for `HPUB`).
        payload: Bytes,
    },
    /// `SUB <subject> [queue] <sid>`.
    Sub {
        /// Subject or wildcard pattern, exactly as sent (not validated here).
        subject: Bytes,
        /// Optional queue group.
        queue: Option<Bytes>,
        /// Client-chosen subscription id, echoed back in every `MSG`.
        sid: Bytes,
    },
    /// `UNSUB <sid> [max]`.
    Unsub {
        /// The subscription to remove.
        sid: Bytes,
        /// Remove automatically once this many messages were delivered in total.
        max: Option<u64>,
    },
    /// `PING`: the server must answer `PONG`.
    Ping,
    /// `PONG`: the answer to a server `PING`.
    Pong,
}

/// One operation sent by the server to a client.
///
/// The broker writes these with the functions in [`encode`]; [`parse_server`] exists for tests,
/// clients and the bench tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// `INFO {json}`: the raw JSON text (see [`ServerInfo`] for its fields).
    Info(Bytes),
    /// `MSG` (no headers) or `HMSG` (with headers).
    Msg {
        /// Subject the message was published on.
        subject: Bytes,
        /// The receiving subscription's id.
        sid: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// For `HMSG`: the raw header block; `None` for `MSG`.
        headers: Option<Bytes>,
        /// The message body.
        payload: Bytes,
    },
    /// `PING`: the client must answer `PONG`.
    Ping,
    /// `PONG`: the answer to a client `PING`.
    Pong,
    /// `+OK`: acknowledgement sent to `verbose` clients.
    Ok,
    /// `-ERR '<text>'`: the text without its single quotes.
    Err(Bytes),
}

/// The JSON body of a client's `CONNECT`.
///
/// Parsing is lenient in the ways real clients need: unknown fields are ignored, and every
/// field accepts `null` as "absent" (async-nats sends `"name":null` and the like), which gives
/// the field's default. `verbose`, `pedantic` and `echo` default to `true`, as nats-server's
/// options do before any CONNECT arrives (Go's JSON decoding leaves a field that is absent or
/// `null` untouched); all other booleans default to `false` and `protocol` to `0`. [`Default`]
/// gives the same values as an empty `{}`. Real clients send `verbose` and `pedantic` explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ConnectOptions {
    /// Answer every `CONNECT`/`PUB`/`SUB`/`UNSUB` with `+OK` (default `true`).
    #[serde(deserialize_with = "null_as_true")]
    pub verbose: bool,
    /// Strict checks, e.g. no wildcards in published subjects (default `true`).
    #[serde(deserialize_with = "null_as_true")]
    pub pedantic: bool,
    /// The client insists on TLS.
    #[serde(deserialize_with = "null_as_default")]
    pub tls_required: bool,
    /// Token for token authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// User name for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Connection name chosen by the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Client implementation language (`"rust"`, `"go"`, `"python3"`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Client library version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Protocol level: 0 = original, 1 = can receive asynchronous `INFO`.
    #[serde(deserialize_with = "null_as_default")]
    pub protocol: i64,
    /// Deliver this connection's own publishes to its own subscriptions (default `true`).
    #[serde(deserialize_with = "null_as_true")]
    pub echo: bool,
    /// The client understands `HMSG` and may send `HPUB`.
    #[serde(deserialize_with = "null_as_default")]
    pub headers: bool,
    /// The client wants 503 "no responders" status messages.
    #[serde(deserialize_with = "null_as_default")]
    pub no_responders: bool,
    /// Signature of the server's nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// User JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// Public nkey.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            // nats-server's defaults before (and without) a CONNECT that says otherwise.
            verbose: true,
            pedantic: true,
            tls_required: false,
            auth_token: None,
            user: None,
            pass: None,
            name: None,
            lang: None,
            version: None,
            protocol: 0,
            // nats-server: a CONNECT without `echo` keeps echo on.
            echo: true,
            headers: false,
            no_responders: false,
            sig: None,
            jwt: None,
            nkey: None,
        }
    }
}

/// Reads `null` as the type's default value.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// Reads `null` as `true` (for `echo`, whose default is on).
fn null_as_true<'de, D>(de: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<bool>::deserialize(de)?.unwrap_or(true))
}

/// The JSON body of the server's `INFO`, with the fields clients rely on.
///
/// Serialized by [`encode_info`]. The flags `auth_required`, `tls_required` and `jetstream` are
/// left out when false and `nonce` when absent, as nats-server does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerInfo {
    /// Unique id of this server.
    pub server_id: String,
    /// Human-readable server name.
    pub server_name: String,
    /// Semver version advertised to clients (they gate features on it, e.g. `"2.10.0"`).
    pub version: String,
    /// Protocol level; send 1.
    pub proto: i32,
    /// Implementation language/runtime (informational).
    pub go: String,
    /// Host the client connected to.
    pub host: String,
    /// Port the client connected to.
    pub port: u16,
    /// Whether the server supports headers (`HPUB`/`HMSG`); send `true`.
    pub headers: bool,
    /// Largest payload the server accepts; must be positive.
    pub max_payload: usize,
    /// Id the server gave this connection.
    pub client_id: u64,
    /// The client's IP address as seen by the server.
    pub client_ip: String,
    /// The client must authenticate in its `CONNECT`.
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// The client must upgrade to TLS right after `INFO`.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// JetStream is enabled.
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    /// Nonce the client signs for nkey/JWT authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Other servers of the cluster the client may connect to
    /// (`host:port`), for failover.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// The cluster's name, when clustered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

// serde's `skip_serializing_if` hands the field by reference.
fn is_false(value: &bool) -> bool {
    !*value
}

/// A violation of the NATS client protocol. Every variant is fatal to the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The line does not start with a known operation, or a payload is not followed by CRLF.
    #[error("unknown protocol operation")]
    UnknownOp,
    /// A control line is longer than [`crate::Limits::max_control_line`].
    #[error("maximum control line exceeded")]
    MaxControlLine,
    /// A declared payload size is larger than [`crate::Limits::max_payload`].
    #[error("maximum payload exceeded")]
    MaxPayload,
    /// Wrong number of arguments, a size that is not a decimal number (or overflows), header
    /// size larger than the total, or a header block that is not a `NATS/1.0` block.
    #[error("invalid protocol arguments")]
    InvalidArguments,
    /// The `CONNECT` body is not valid JSON for [`ConnectOptions`]; carries serde's message.
    #[error("invalid CONNECT options: {0}")]
    InvalidConnect(String),
}

impl ProtocolError {
    /// The text nats-server sends in `-ERR '<text>'` for this error, without the quotes.
    ///
    /// nats-server sends no `-ERR` at all for an unparsable `CONNECT` body or malformed
    /// arguments (it just closes the connection); herald sends the generic parse error,
    /// `Unknown Protocol Operation`, for both, so the client still learns why.
    #[must_use]
    pub fn err_text(&self) -> &'static str {
        match self {
            Self::UnknownOp | Self::InvalidArguments | Self::InvalidConnect(_) => {
                "Unknown Protocol Operation"
            }
            Self::MaxControlLine => "maximum control line exceeded",
            Self::MaxPayload => "Maximum Payload Violation",
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(json: &str) -> ConnectOptions {
        serde_json::from_str(json).expect("test JSON is valid")
    }

    #[test]
    fn connect_echo_defaults_to_true() {
        assert!(connect("{}").echo);
        assert!(connect(r#"{"echo":null}"#).echo);
        assert!(!connect(r#"{"echo":false}"#).echo);
        assert!(ConnectOptions::default().echo);
        assert_eq!(connect("{}"), ConnectOptions::default());
    }

    #[test]
    fn connect_accepts_nulls_and_unknown_fields() {
        let opts = connect(
            r#"{"verbose":null,"pedantic":false,"jwt":null,"nkey":null,"sig":null,
                "name":null,"echo":true,"lang":"rust","version":"0.51.0","protocol":1,
                "tls_required":null,"user":null,"pass":null,"auth_token":null,
                "headers":true,"no_responders":true,"protocol_extra":{"x":[1,2]}}"#,
        );
        assert!(opts.verbose && !opts.tls_required, "null keeps the default");
        assert_eq!(opts.name, None);
        assert_eq!(opts.lang.as_deref(), Some("rust"));
        assert_eq!(opts.protocol, 1);
        assert!(opts.headers && opts.no_responders && opts.echo);
        assert_eq!(connect(r#"{"protocol":null}"#).protocol, 0);
    }

    #[test]
    fn connect_rejects_wrong_types() {
        assert!(serde_json::from_str::<ConnectOptions>(r#"{"verbose":"yes"}"#).is_err());
        assert!(serde_json::from_str::<ConnectOptions>(r#"{"protocol":"1"}"#).is_err());
    }

    #[test]
    fn server_info_skips_false_flags() {
        let info = ServerInfo {
            server_id: "NABC".into(),
            version: "2.10.0".into(),
            proto: 1,
            headers: true,
            max_payload: 1_048_576,
            ..ServerInfo::default()
        };
        let json = serde_json::to_string(&info).expect("serializes");
        assert!(!json.contains("auth_required"));
        assert!(!json.contains("tls_required"));
        assert!(!json.contains("jetstream"));
        assert!(!json.contains("nonce"));
        assert!(json.contains(r#""max_payload":1048576"#));
        let with_flags = ServerInfo {
            jetstream: true,
            nonce: Some("n".into()),
            ..info
        };
        let json = serde_json::to_string(&with_flags).expect("serializes");
        assert!(json.contains(r#""jetstream":true"#) && json.contains(r#""nonce":"n""#));
    }

    #[test]
    fn err_texts_match_nats_server() {
        assert_eq!(
            ProtocolError::UnknownOp.err_text(),
            "Unknown Protocol Operation"
        );
        assert_eq!(
            ProtocolError::InvalidArguments.err_text(),
            "Unknown Protocol Operation"
        );
        assert_eq!(
            ProtocolError::MaxControlLine.err_text(),
            "maximum control line exceeded"
        );
        assert_eq!(
            ProtocolError::MaxPayload.err_text(),
            "Maximum Payload Violation"
        );
        assert_eq!(
            ProtocolError::InvalidConnect(String::new()).err_text(),
            "Unknown Protocol Operation"
        );
    }
}
