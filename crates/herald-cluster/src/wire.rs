//! The route protocol between nodes, sans I/O: length-prefixed binary
//! frames, so subjects and Redis channel names (any bytes, spaces and
//! newlines included) need no escaping.
//!
//! A frame is `op: u8`, `len: u32` (big-endian, the body's length), body:
//!
//! | op | frame | body |
//! | --- | --- | --- |
//! | 1 | `INFO` | JSON [`Info`] |
//! | 2 | `AUTH` | 32-byte proof of the shared secret |
//! | 3 | `SUB` | kind `u8`, queue (`u32` length + bytes, 0 = none), name (the rest) |
//! | 4 | `UNSUB` | as `SUB` |
//! | 5 | `MSG` | flags `u8`; subject (`u32` + bytes); then by flag: reply, queue, the subject it is delivered on, headers, requester (JSON), protocol extension — each `u32` + bytes; payload (the rest) |
//! | 6 | `PING` | empty |
//! | 7 | `PONG` | empty |
//! | 8 | `ERR` | text |
//!
//! A `MSG` with a queue is for one member of that queue group on the
//! receiving node; without, for its plain subscribers. Flag bit 0 marks a
//! shard-channel publish (Redis `SPUBLISH`). A stream consumer's delivery
//! is matched on its inbox (the "delivered on" subject) but shows the
//! subject it was stored under.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// What a node says of itself when a route opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// The node's name (unique in the cluster).
    pub node: String,
    /// The cluster's name; routes between different clusters are refused.
    pub cluster: String,
    /// Where the node's route listener is, as others should dial it.
    pub route: String,
    /// Where its NATS clients connect (for `connect_urls`).
    #[serde(default)]
    pub client_urls: Vec<String>,
    /// Route addresses of the nodes it is connected to (gossip).
    #[serde(default)]
    pub peers: Vec<String>,
    /// A fresh random challenge (hex) for the peer's `AUTH`.
    pub nonce: String,
}

/// What kind of interest a `SUB` announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A token pattern (`*`, `>`).
    Pattern = 1,
    /// A Redis channel, exactly.
    Channel = 2,
    /// A Redis glob.
    Glob = 3,
    /// A Redis shard channel.
    Shard = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Pattern,
            2 => Self::Channel,
            3 => Self::Glob,
            4 => Self::Shard,
            _ => return None,
        })
    }
}

/// One announced interest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterestKey {
    /// Its kind.
    pub kind: Kind,
    /// The pattern, channel or glob.
    pub name: Bytes,
    /// Its queue group, if any.
    pub queue: Option<Bytes>,
}

/// A message crossing a route.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteMsg {
    /// A shard-channel publish.
    pub shard: bool,
    /// Its subject.
    pub subject: Bytes,
    /// Its reply subject.
    pub reply: Option<Bytes>,
    /// For one member of this queue group; `None`: for plain subscribers.
    pub queue: Option<Bytes>,
    /// The subject to match it on, when not its own (a consumer's inbox).
    pub on: Option<Bytes>,
    /// Its header block, as NATS writes it.
    pub headers: Option<Bytes>,
    /// The permissions of the user who sent a request (JSON), when it was
    /// stamped with them.
    pub requester: Option<Bytes>,
    /// What only the publisher's protocol understands (an MQTT publish's
    /// QoS and RETAIN flag), as that protocol's codec wrote it.
    pub ext: Option<Bytes>,
    /// Its payload.
    pub payload: Bytes,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The peer introduces itself.
    Info(Info),
    /// The peer's proof that it knows the secret.
    Auth([u8; 32]),
    /// The peer gained an interest.
    Sub(InterestKey),
    /// The peer lost an interest.
    Unsub(InterestKey),
    /// A message for this node's subscribers.
    Msg(RouteMsg),
    /// Are you there?
    Ping,
    /// Yes.
    Pong,
    /// The peer refuses something and will close.
    Err(String),
    /// Route addresses of nodes the peer has just met, to dial (routes
    /// formed after this one's handshake, whose `INFO` could not list them).
    Peers(Vec<String>),
    /// A request for one of this node's consensus groups.
    Rpc(Rpc),
    /// The answer to an [`Frame::Rpc`]: `Ok` the encoded response, `Err`
    /// why there is none.
    RpcReply {
        /// The request's id.
        id: u64,
        /// The response.
        body: Result<Bytes, String>,
    },
}

/// A consensus request between nodes (its body is the group's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpc {
    /// Chosen by the asking node, to match the reply.
    pub id: u64,
    /// The consensus group it is for.
    pub group: String,
    /// What it asks (a group op code).
    pub op: u8,
    /// The encoded request.
    pub body: Bytes,
}

/// Why the bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An op code that is none of ours.
    #[error("unknown frame op {0}")]
    UnknownOp(u8),
    /// A frame longer than allowed.
    #[error("frame of {0} bytes is over the limit")]
    TooLong(usize),
    /// The body does not hold what its op says.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
}

const INFO: u8 = 1;
const AUTH: u8 = 2;
const SUB: u8 = 3;
const UNSUB: u8 = 4;
const MSG: u8 = 5;
const PING: u8 = 6;
const PONG: u8 = 7;
const ERR: u8 = 8;
const RPC: u8 = 9;
const RPC_REPLY: u8 = 10;
const PEERS: u8 = 11;

const HEAD: usize = 5;

const SHARD: u8 = 1;
const HAS_REPLY: u8 = 2;
const HAS_QUEUE: u8 = 4;
const HAS_HEADERS: u8 = 8;
const HAS_REQUESTER: u8 = 16;
const HAS_ON: u8 = 32;
const HAS_EXT: u8 = 64;

/// Takes one whole frame off the front of `buf`; `Ok(None)` until one has
/// arrived. Frames over `max` bytes are refused before they are buffered.
///
/// # Errors
/// A [`WireError`]: the route is then closed.
pub fn parse(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, WireError> {
    if buf.len() < HEAD {
        return Ok(None);
    }
    let op = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > max {
        return Err(WireError::TooLong(len));
    }
    if !(INFO..=PEERS).contains(&op) {
        return Err(WireError::UnknownOp(op));
    }
    if buf.len() < HEAD + len {
        buf.reserve(HEAD + len - buf.len());
        return Ok(None);
    }
    buf.advance(HEAD);
    let mut body = buf.split_to(len).freeze();
    let frame = match op {
        INFO => {
            Frame::Info(serde_json::from_slice(&body).map_err(|_| WireError::Malformed("INFO"))?)
        }
        AUTH => Frame::Auth(
            body.as_ref()
                .try_into()
                .map_err(|_| WireError::Malformed("AUTH"))?,
        ),
        SUB => Frame::Sub(interest(&mut body).ok_or(WireError::Malformed("SUB"))?),
        UNSUB => Frame::Unsub(interest(&mut body).ok_or(WireError::Malformed("UNSUB"))?),
        MSG => Frame::Msg(message(&mut body).ok_or(WireError::Malformed("MSG"))?),
        PING => Frame::Ping,
        PONG => Frame::Pong,
        ERR => Frame::Err(String::from_utf8_lossy(&body).into_owned()),
        RPC => Frame::Rpc(rpc(&mut body).ok_or(WireError::Malformed("RPC"))?),
        RPC_REPLY => rpc_reply(&mut body).ok_or(WireError::Malformed("RPC_REPLY"))?,
        _ => {
            Frame::Peers(serde_json::from_slice(&body).map_err(|_| WireError::Malformed("PEERS"))?)
        }
    };
    Ok(Some(frame))
}

fn long(body: &mut Bytes) -> Option<Bytes> {
    if body.remaining() < 4 {
        return None;
    }
    let len = body.get_u32() as usize;
    (body.remaining() >= len).then(|| body.split_to(len))
}

fn rpc(body: &mut Bytes) -> Option<Rpc> {
    if body.remaining() < 9 {
        return None;
    }
    let id = body.get_u64();
    let op = body.get_u8();
    let group = String::from_utf8(long(body)?.to_vec()).ok()?;
    Some(Rpc {
        id,
        group,
        op,
        body: std::mem::take(body),
    })
}

fn rpc_reply(body: &mut Bytes) -> Option<Frame> {
    if body.remaining() < 9 {
        return None;
    }
    let id = body.get_u64();
    let body = match body.get_u8() {
        0 => Ok(std::mem::take(body)),
        1 => Err(String::from_utf8_lossy(body).into_owned()),
        _ => return None,
    };
    Some(Frame::RpcReply { id, body })
}

fn interest(body: &mut Bytes) -> Option<InterestKey> {
    if body.is_empty() {
        return None;
    }
    let kind = Kind::from_u8(body.get_u8())?;
    let queue = long(body)?;
    Some(InterestKey {
        kind,
        name: std::mem::take(body),
        queue: (!queue.is_empty()).then_some(queue),
    })
}

fn message(body: &mut Bytes) -> Option<RouteMsg> {
    if body.is_empty() {
        return None;
    }
    let flags = body.get_u8();
    let subject = long(body)?;
    let mut field = |bit: u8| -> Option<Option<Bytes>> {
        if flags & bit == 0 {
            Some(None)
        } else {
            long(body).map(Some)
        }
    };
    let reply = field(HAS_REPLY)?;
    let queue = field(HAS_QUEUE)?;
    let on = field(HAS_ON)?;
    let headers = field(HAS_HEADERS)?;
    let requester = field(HAS_REQUESTER)?;
    let ext = field(HAS_EXT)?;
    Some(RouteMsg {
        shard: flags & SHARD != 0,
        subject,
        reply,
        queue,
        on,
        headers,
        requester,
        ext,
        payload: std::mem::take(body),
    })
}

fn head(buf: &mut BytesMut, op: u8, len: usize) {
    buf.put_u8(op);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

/// Appends an `INFO` frame.
pub fn encode_info(buf: &mut BytesMut, info: &Info) {
    let body = serde_json::to_vec(info).unwrap_or_default();
    head(buf, INFO, body.len());
    buf.put_slice(&body);
}

/// Appends an `AUTH` frame.
pub fn encode_auth(buf: &mut BytesMut, proof: &[u8; 32]) {
    head(buf, AUTH, proof.len());
    buf.put_slice(proof);
}

/// Appends a `SUB` (`added`) or `UNSUB` frame.
pub fn encode_interest(buf: &mut BytesMut, key: &InterestKey, added: bool) {
    let queue = key.queue.as_deref().unwrap_or_default();
    head(
        buf,
        if added { SUB } else { UNSUB },
        1 + 4 + queue.len() + key.name.len(),
    );
    buf.put_u8(key.kind as u8);
    put_long(buf, queue);
    buf.put_slice(&key.name);
}

/// A `MSG` frame's head: everything before the payload, whose length the
/// frame's length counts. The caller appends the payload (by reference
/// when it is large).
pub fn encode_msg_head(buf: &mut BytesMut, msg: &RouteMsg, payload_len: usize) {
    // In the order they are parsed.
    let optional = [
        (HAS_REPLY, &msg.reply),
        (HAS_QUEUE, &msg.queue),
        (HAS_ON, &msg.on),
        (HAS_HEADERS, &msg.headers),
        (HAS_REQUESTER, &msg.requester),
        (HAS_EXT, &msg.ext),
    ];
    let len = 1
        + 4
        + msg.subject.len()
        + optional
            .iter()
            .map(|(_, f)| f.as_ref().map_or(0, |b| 4 + b.len()))
            .sum::<usize>()
        + payload_len;
    head(buf, MSG, len);
    let flags = optional
        .iter()
        .filter(|(_, f)| f.is_some())
        .fold(if msg.shard { SHARD } else { 0 }, |flags, (bit, _)| {
            flags | bit
        });
    buf.put_u8(flags);
    put_long(buf, &msg.subject);
    for field in optional.iter().filter_map(|(_, f)| f.as_ref()) {
        put_long(buf, field);
    }
}

/// A field as its `u32` length and its bytes. Frames are bounded far
/// below 4 GiB (see [`parse`]), so the length always fits.
fn put_long(buf: &mut BytesMut, field: &[u8]) {
    buf.put_u32(u32::try_from(field.len()).unwrap_or(u32::MAX));
    buf.put_slice(field);
}

/// Appends an `RPC` frame's head; `body_len` bytes of body must follow.
pub fn encode_rpc_head(buf: &mut BytesMut, id: u64, op: u8, group: &str, body_len: usize) {
    head(buf, RPC, 8 + 1 + 4 + group.len() + body_len);
    buf.put_u64(id);
    buf.put_u8(op);
    put_long(buf, group.as_bytes());
}

/// Appends an `RPC_REPLY` frame's head (`ok`: the body is the answer, else
/// why there is none); `body_len` bytes of body must follow.
pub fn encode_rpc_reply_head(buf: &mut BytesMut, id: u64, ok: bool, body_len: usize) {
    head(buf, RPC_REPLY, 8 + 1 + body_len);
    buf.put_u64(id);
    buf.put_u8(if ok { 0 } else { 1 });
}

/// Appends a whole `MSG` frame.
pub fn encode_msg(buf: &mut BytesMut, msg: &RouteMsg) {
    encode_msg_head(buf, msg, msg.payload.len());
    buf.put_slice(&msg.payload);
}

/// Appends any frame (those without a payload to share, in one piece).
pub fn encode_control(buf: &mut BytesMut, frame: &Frame) {
    match frame {
        Frame::Ping => head(buf, PING, 0),
        Frame::Pong => head(buf, PONG, 0),
        Frame::Err(text) => {
            head(buf, ERR, text.len());
            buf.put_slice(text.as_bytes());
        }
        Frame::Info(info) => encode_info(buf, info),
        Frame::Auth(proof) => encode_auth(buf, proof),
        Frame::Sub(key) => encode_interest(buf, key, true),
        Frame::Unsub(key) => encode_interest(buf, key, false),
        Frame::Msg(msg) => encode_msg(buf, msg),
        Frame::Peers(peers) => {
            let json = serde_json::to_vec(peers).unwrap_or_default();
            head(buf, PEERS, json.len());
            buf.put_slice(&json);
        }
        Frame::Rpc(rpc) => {
            encode_rpc_head(buf, rpc.id, rpc.op, &rpc.group, rpc.body.len());
            buf.put_slice(&rpc.body);
        }
        Frame::RpcReply { id, body } => {
            let (ok, bytes) = match body {
                Ok(b) => (true, b.as_ref()),
                Err(e) => (false, e.as_bytes()),
            };
            encode_rpc_reply_head(buf, *id, ok, bytes.len());
            buf.put_slice(bytes);
        }
    }
}

/// What the fuzz target (`fuzz/fuzz_targets/route_parse.rs`) and the
/// tests check on any input: parsing never panics, and every frame parsed
/// encodes back to bytes that parse to the same frame.
pub fn check_input(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = parse(&mut buf, 1 << 20) {
        let mut again = BytesMut::new();
        encode_control(&mut again, &frame);
        let reparsed = parse(&mut again, 1 << 20);
        assert_eq!(reparsed, Ok(Some(frame)), "re-encoded frame differs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let kind = prop_oneof![
            Just(Kind::Pattern),
            Just(Kind::Channel),
            Just(Kind::Glob),
            Just(Kind::Shard)
        ];
        let key = (kind, bytes(40), proptest::option::of(bytes(20)))
            .prop_map(|(kind, name, queue)| InterestKey {
                kind,
                name,
                queue: queue.filter(|q| !q.is_empty()),
            })
            .boxed();
        let msg = (
            any::<bool>(),
            bytes(40),
            proptest::option::of(bytes(20)),
            proptest::option::of(bytes(20)),
            proptest::option::of(bytes(20)),
            proptest::option::of(bytes(60)),
            proptest::option::of(bytes(30)),
            (proptest::option::of(bytes(12)), bytes(200)),
        )
            .prop_map(
                |(shard, subject, reply, queue, on, headers, requester, (ext, payload))| RouteMsg {
                    shard,
                    subject,
                    reply,
                    queue,
                    on,
                    headers,
                    requester,
                    ext,
                    payload,
                },
            );
        prop_oneof![
            key.clone().prop_map(Frame::Sub),
            key.prop_map(Frame::Unsub),
            msg.prop_map(Frame::Msg),
            Just(Frame::Ping),
            Just(Frame::Pong),
            "[a-z ]{0,20}".prop_map(Frame::Err),
            any::<[u8; 32]>().prop_map(Frame::Auth),
            proptest::collection::vec("[0-9.:]{1,21}", 0..4).prop_map(Frame::Peers),
            (any::<u64>(), "[a-z:]{0,12}", any::<u8>(), bytes(100)).prop_map(
                |(id, group, op, body)| Frame::Rpc(Rpc {
                    id,
                    group,
                    op,
                    body
                })
            ),
            (
                any::<u64>(),
                proptest::result::maybe_ok(bytes(60), "[a-z ]{0,20}")
            )
                .prop_map(|(id, body)| Frame::RpcReply { id, body }),
            ("[a-z0-9]{1,8}", "[a-z]{1,8}").prop_map(|(node, cluster)| Frame::Info(Info {
                node,
                cluster,
                route: "127.0.0.1:6222".into(),
                client_urls: vec!["127.0.0.1:4222".into()],
                peers: vec![],
                nonce: "00ff".into(),
            })),
        ]
    }

    proptest! {
        /// Whatever is encoded parses back the same, one byte at a time or all at once.
        #[test]
        fn frames_round_trip(frames in proptest::collection::vec(frame(), 1..8), split in 0usize..64) {
            let mut wire = BytesMut::new();
            for f in &frames {
                encode_control(&mut wire, f);
            }
            let wire = wire.freeze();
            let split = split.min(wire.len());
            let mut buf = BytesMut::from(&wire[..split]);
            let mut got = Vec::new();
            while let Some(f) = parse(&mut buf, 1 << 20).expect("valid") {
                got.push(f);
            }
            buf.extend_from_slice(&wire[split..]);
            while let Some(f) = parse(&mut buf, 1 << 20).expect("valid") {
                got.push(f);
            }
            prop_assert_eq!(got, frames);
            prop_assert!(buf.is_empty());
        }

        /// Garbage is an error or a wait for more, never a panic; what
        /// parses re-encodes to itself.
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            check_input(&data);
        }
    }

    #[test]
    fn a_subject_longer_than_64_kib_survives() {
        let msg = RouteMsg {
            subject: Bytes::from(vec![b'a'; 70_000]),
            reply: Some(Bytes::from_static(b"r")),
            payload: Bytes::from_static(b"p"),
            ..RouteMsg::default()
        };
        let mut buf = BytesMut::new();
        encode_msg(&mut buf, &msg);
        assert_eq!(parse(&mut buf, 1 << 20), Ok(Some(Frame::Msg(msg))));
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut buf = BytesMut::new();
        buf.put_u8(MSG);
        buf.put_u32(10_000_000);
        assert_eq!(
            parse(&mut buf, 1 << 20),
            Err(WireError::TooLong(10_000_000))
        );
    }
}
