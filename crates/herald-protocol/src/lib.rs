//! Sans-I/O wire codecs for herald: bytes in, frames out; frames in, bytes out.
//!
//! Nothing in this crate touches a socket, a file or a clock. A listener in `herald-server` owns
//! the connection's read buffer, hands it to a parser until the parser says "not enough bytes
//! yet", and writes whatever the encoders appended to its output buffer.
//!
//! # Modules
//!
//! - [`limits`]: [`Limits`], the hard caps (control line, payload) every parser is given, so a
//!   peer can never make a parser buffer without bound.
//! - [`nats`]: the NATS client protocol.
//!   - `nats` (its `mod.rs`): the frame types [`nats::ClientOp`] and [`nats::ServerOp`], the
//!     `CONNECT` options, the `INFO` body and [`nats::ProtocolError`] with its `-ERR` text.
//!   - `nats::parse`: [`nats::parse_client`] (what a server reads) and [`nats::parse_server`]
//!     (what a client reads).
//!   - `nats::encode`: the server-side writers ([`nats::encode_msg`], [`nats::encode_msg_head`],
//!     [`nats::encode_info`], ...) and [`nats::encode_client`] / [`nats::encode_server`], which
//!     write any frame and are the inverse of the parsers.
//! - [`resp`]: the Redis protocol, RESP2 and RESP3.
//!   - `resp` (its `mod.rs`): [`resp::Request`], [`resp::RespLimits`], [`resp::Proto`], the
//!     owned [`resp::Value`] and [`resp::RespError`] with its exact `-ERR Protocol error` text.
//!   - `resp::parse`: [`resp::parse_request`] and [`resp::RequestParser`] (what a server reads:
//!     multibulk and inline requests).
//!   - `resp::encode`: the protocol-aware reply writers ([`resp::bulk`], [`resp::map_header`],
//!     ...), the pub/sub pushes ([`resp::message_push`], [`resp::subscription_push`], ...) and
//!     [`resp::encode_value`].
//!   - `resp::reply`: [`resp::parse_value`] (what a client reads), for tests and tools.
//! - [`mqtt`]: MQTT 3.1.1 and 5.0: every packet both ways, MQTT 5 properties and reason
//!   codes, topic names and filters (shared subscriptions), and the topic ↔ subject mapping.
//! - [`fuzzing`]: the fuzz targets' checks, shared by `fuzz/` and the test suite.

pub mod fuzzing;
pub mod limits;
pub mod mqtt;
pub mod nats;
pub mod resp;

pub use limits::Limits;
