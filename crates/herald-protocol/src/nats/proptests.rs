//! Property tests: encode-then-parse is the identity, splitting a stream anywhere changes
//! nothing, and arbitrary bytes never panic or yield a frame over the limits.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{
    ClientOp, ConnectOptions, ProtocolError, ServerOp, encode_client, encode_server, parse_client,
    parse_server,
};
use crate::Limits;

/// Room for any generated `CONNECT` (arbitrary strings can escape to long JSON).
const ROOMY: Limits = Limits {
    max_control_line: 1 << 16,
    max_payload: 1 << 16,
};

fn token() -> impl Strategy<Value = Bytes> {
    "[!-~éλ✓]{1,12}".prop_map(Bytes::from)
}

fn payload() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..48).prop_map(Bytes::from)
}

/// A valid header block: `NATS/1.0[ status[ text]]\r\n(Name: value\r\n)*\r\n`.
fn header_block() -> impl Strategy<Value = Bytes> {
    let status = proptest::option::of(("[1-9][0-9]{2}", proptest::option::of("[ -~]{0,12}")));
    let lines = proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,16}"), 0..4);
    (status, lines).prop_map(|(status, lines)| {
        let mut block = String::from("NATS/1.0");
        if let Some((code, text)) = status {
            block.push(' ');
            block.push_str(&code);
            if let Some(text) = text {
                block.push(' ');
                block.push_str(&text);
            }
        }
        block.push_str("\r\n");
        for (name, value) in lines {
            block.push_str(&format!("{name}: {value}\r\n"));
        }
        block.push_str("\r\n");
        Bytes::from(block)
    })
}

fn connect_options() -> impl Strategy<Value = ConnectOptions> {
    let text = || proptest::option::of(any::<String>());
    (
        (any::<[bool; 6]>(), any::<i64>()),
        (text(), text(), text(), text(), text(), text()),
        (text(), text(), text()),
    )
        .prop_map(
            |(
                (
                    [
                        verbose,
                        pedantic,
                        tls_required,
                        echo,
                        headers,
                        no_responders,
                    ],
                    protocol,
                ),
                (auth_token, user, pass, name, lang, version),
                (sig, jwt, nkey),
            )| ConnectOptions {
                verbose,
                pedantic,
                tls_required,
                auth_token,
                user,
                pass,
                name,
                lang,
                version,
                protocol,
                echo,
                headers,
                no_responders,
                sig,
                jwt,
                nkey,
            },
        )
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        connect_options().prop_map(|opts| ClientOp::Connect(Box::new(opts))),
        (
            token(),
            proptest::option::of(token()),
            proptest::option::of(header_block()),
            payload()
        )
            .prop_map(|(subject, reply, headers, payload)| ClientOp::Pub {
                subject,
                reply,
                headers,
                payload
            }),
        (token(), proptest::option::of(token()), token()).prop_map(|(subject, queue, sid)| {
            ClientOp::Sub {
                subject,
                queue,
                sid,
            }
        }),
        (token(), proptest::option::of(any::<u64>()))
            .prop_map(|(sid, max)| ClientOp::Unsub { sid, max }),
        Just(ClientOp::Ping),
        Just(ClientOp::Pong),
    ]
}

fn server_op() -> impl Strategy<Value = ServerOp> {
    prop_oneof![
        "\\{[ -~]{0,40}\\}".prop_map(|json| ServerOp::Info(Bytes::from(json))),
        (
            token(),
            token(),
            proptest::option::of(token()),
            proptest::option::of(header_block()),
            payload()
        )
            .prop_map(|(subject, sid, reply, headers, payload)| ServerOp::Msg {
                subject,
                sid,
                reply,
                headers,
                payload
            }),
        Just(ServerOp::Ping),
        Just(ServerOp::Pong),
        Just(ServerOp::Ok),
        "[ -~]{0,30}".prop_map(|text| ServerOp::Err(Bytes::from(text))),
    ]
}

/// Runs `parse` on `buf` until it stops; returns the frames and how it stopped.
fn drain<T>(
    buf: &mut BytesMut,
    limits: &Limits,
    parse: fn(&mut BytesMut, &Limits) -> Result<Option<T>, ProtocolError>,
) -> (Vec<T>, Result<(), ProtocolError>) {
    let mut frames = Vec::new();
    loop {
        match parse(buf, limits) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, Ok(())),
            Err(err) => return (frames, Err(err)),
        }
    }
}

/// Parses `input` in two reads split at `at`; stops at the first error.
fn drain_split<T>(
    input: &[u8],
    at: usize,
    limits: &Limits,
    parse: fn(&mut BytesMut, &Limits) -> Result<Option<T>, ProtocolError>,
) -> (Vec<T>, Result<(), ProtocolError>, BytesMut) {
    let at = at.min(input.len());
    let mut buf = BytesMut::from(&input[..at]);
    let (mut frames, result) = drain(&mut buf, limits, parse);
    if result.is_err() {
        return (frames, result, buf);
    }
    buf.extend_from_slice(&input[at..]);
    let (more, result) = drain(&mut buf, limits, parse);
    frames.extend(more);
    (frames, result, buf)
}

/// Mostly-protocol-shaped noise, so random inputs reach past the operation name.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"PUB ",
        b"HPUB ",
        b"SUB ",
        b"UNSUB ",
        b"PING",
        b"PONG",
        b"CONNECT ",
        b"MSG ",
        b"HMSG ",
        b"INFO ",
        b"+OK",
        b"-ERR ",
        b"pub\t",
        b" ",
        b"\t",
        b"\r\n",
        b"\n",
        b"\r",
        b"0",
        b"1",
        b"5",
        b"12",
        b"16",
        b"99999999999999999999",
        b"-1",
        b"foo",
        b"bar.baz",
        b"{}",
        b"'x'",
        b"NATS/1.0",
        b"NATS/1.0\r\n\r\n",
        b"hello",
        b"\x00\xff",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(proptest::sample::select(PIECES), 0..40)
            .prop_map(|pieces| pieces.concat()),
    ]
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (0usize..64, 0usize..32).prop_map(|(max_control_line, max_payload)| Limits {
        max_control_line,
        max_payload,
    })
}

fn frame_size_client(op: &ClientOp) -> usize {
    match op {
        ClientOp::Pub {
            headers, payload, ..
        } => headers.as_ref().map_or(0, Bytes::len) + payload.len(),
        _ => 0,
    }
}

fn frame_size_server(op: &ServerOp) -> usize {
    match op {
        ServerOp::Msg {
            headers, payload, ..
        } => headers.as_ref().map_or(0, Bytes::len) + payload.len(),
        _ => 0,
    }
}

/// Bytes around the plain `PUB` shortcut's edges: odd case and blanks, a reply, sizes that
/// lie, bad trailers, truncation; `at` cuts the input.
fn pub_like() -> impl Strategy<Value = Vec<u8>> {
    // Mostly the plain form, so each odd part is tried against otherwise valid frames.
    let op = prop_oneof![
        6 => Just("PUB "),
        1 => Just("pub "),
        1 => Just("PUB  "),
        1 => Just("PUB\t"),
        1 => Just("HPUB "),
        1 => Just("PUB"),
    ];
    let sep = prop_oneof![6 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just(" x ")];
    let size_delta = prop_oneof![6 => Just(0i64), 1 => Just(1), 1 => Just(-1), 1 => Just(1 << 20)];
    let end = prop_oneof![
        6 => Just("\r\n"),
        1 => Just("\n"),
        1 => Just("\r"),
        1 => Just("\rX"),
        1 => Just(""),
    ];
    let trailer =
        prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("X\n"), 1 => Just("\rX")];
    let cut = proptest::option::weighted(0.3, any::<usize>());
    (op, token(), sep, size_delta, end, payload(), trailer, cut).prop_map(
        |(op, subject, sep, delta, end, payload, trailer, cut)| {
            let size = (payload.len() as i64 + delta).max(0);
            let mut bytes = op.as_bytes().to_vec();
            bytes.extend_from_slice(&subject);
            bytes.extend_from_slice(sep.as_bytes());
            bytes.extend_from_slice(size.to_string().as_bytes());
            bytes.extend_from_slice(end.as_bytes());
            bytes.extend_from_slice(&payload);
            bytes.extend_from_slice(trailer.as_bytes());
            bytes.extend_from_slice(b"PING\r\n");
            if let Some(at) = cut {
                bytes.truncate(at % (bytes.len() + 1));
            }
            bytes
        },
    )
}

proptest! {
    #[test]
    fn the_plain_pub_shortcut_changes_nothing(
        input in pub_like(),
        tight in any::<bool>(),
    ) {
        let limits = if tight {
            Limits { max_control_line: 12, max_payload: 16 }
        } else {
            ROOMY
        };
        let mut fast = BytesMut::from(&input[..]);
        let mut general = fast.clone();
        for _ in 0..3 {
            let a = parse_client(&mut fast, &limits);
            let b = super::parse::parse_client_general(&mut general, &limits);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&fast, &general);
            if !matches!(a, Ok(Some(_))) {
                break;
            }
        }
    }

    #[test]
    fn client_op_round_trips(op in client_op()) {
        let mut buf = BytesMut::new();
        encode_client(&mut buf, &op);
        let parsed = parse_client(&mut buf, &ROOMY);
        prop_assert_eq!(parsed, Ok(Some(op)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn server_op_round_trips(op in server_op()) {
        let mut buf = BytesMut::new();
        encode_server(&mut buf, &op);
        let parsed = parse_server(&mut buf, &ROOMY);
        prop_assert_eq!(parsed, Ok(Some(op)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn client_stream_split_anywhere(ops in proptest::collection::vec(client_op(), 0..8), at in any::<usize>()) {
        let mut encoded = BytesMut::new();
        for op in &ops {
            encode_client(&mut encoded, op);
        }
        let at = if encoded.is_empty() { 0 } else { at % (encoded.len() + 1) };
        let (frames, result, rest) = drain_split(&encoded, at, &ROOMY, parse_client);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(frames, ops);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn server_stream_split_anywhere(ops in proptest::collection::vec(server_op(), 0..8), at in any::<usize>()) {
        let mut encoded = BytesMut::new();
        for op in &ops {
            encode_server(&mut encoded, op);
        }
        let at = if encoded.is_empty() { 0 } else { at % (encoded.len() + 1) };
        let (frames, result, rest) = drain_split(&encoded, at, &ROOMY, parse_server);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(frames, ops);
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn arbitrary_bytes_to_parse_client(input in noise(), limits in small_limits(), at in any::<usize>()) {
        let mut buf = BytesMut::from(&input[..]);
        let (frames, result) = drain(&mut buf, &limits, parse_client);
        for op in &frames {
            prop_assert!(frame_size_client(op) <= limits.max_payload);
            // Every parsed frame survives a re-encode.
            let mut again = BytesMut::new();
            encode_client(&mut again, op);
            prop_assert_eq!(parse_client(&mut again, &ROOMY), Ok(Some(op.clone())));
        }
        // Where the bytes are cut does not change the outcome.
        let at = at % (input.len() + 1);
        let (split_frames, split_result, _) = drain_split(&input, at, &limits, parse_client);
        prop_assert_eq!(split_frames, frames);
        prop_assert_eq!(split_result, result);
    }

    #[test]
    fn arbitrary_bytes_to_parse_server(input in noise(), limits in small_limits(), at in any::<usize>()) {
        let mut buf = BytesMut::from(&input[..]);
        let (frames, result) = drain(&mut buf, &limits, parse_server);
        for op in &frames {
            prop_assert!(frame_size_server(op) <= limits.max_payload);
        }
        let at = at % (input.len() + 1);
        let (split_frames, split_result, _) = drain_split(&input, at, &limits, parse_server);
        prop_assert_eq!(split_frames, frames);
        prop_assert_eq!(split_result, result);
    }
}
