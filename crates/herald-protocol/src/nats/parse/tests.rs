//! Hand-written vectors for the NATS parsers (reference sections 2-4).

use bytes::{Bytes, BytesMut};

use super::{parse_client, parse_server};
use crate::Limits;
use crate::nats::{ClientOp, ConnectOptions, ProtocolError, ServerOp};

fn bytes(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(data)
}

/// Parses `input` until `Ok(None)`; returns the frames and what is left in the buffer.
fn client_frames(input: &[u8], limits: &Limits) -> Result<(Vec<ClientOp>, Vec<u8>), ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut ops = Vec::new();
    while let Some(op) = parse_client(&mut buf, limits)? {
        ops.push(op);
    }
    Ok((ops, buf.to_vec()))
}

/// Parses exactly one client frame that fills `input`.
#[track_caller]
fn client_one(input: &[u8]) -> ClientOp {
    let (mut ops, rest) = client_frames(input, &Limits::default()).expect("valid frame");
    assert_eq!(
        ops.len(),
        1,
        "one frame in {:?}",
        String::from_utf8_lossy(input)
    );
    assert!(rest.is_empty(), "frame consumed entirely");
    ops.remove(0)
}

#[track_caller]
fn client_err_with(input: &[u8], limits: &Limits) -> ProtocolError {
    match client_frames(input, limits) {
        Err(err) => err,
        Ok(ops) => panic!(
            "expected an error for {:?}, got {ops:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[track_caller]
fn client_err(input: &[u8]) -> ProtocolError {
    client_err_with(input, &Limits::default())
}

#[track_caller]
fn server_one(input: &[u8]) -> ServerOp {
    let mut buf = BytesMut::from(input);
    let op = parse_server(&mut buf, &Limits::default())
        .expect("valid frame")
        .expect("whole frame");
    assert!(buf.is_empty(), "frame consumed entirely");
    op
}

#[track_caller]
fn server_err(input: &[u8]) -> ProtocolError {
    let mut buf = BytesMut::from(input);
    loop {
        match parse_server(&mut buf, &Limits::default()) {
            Err(err) => return err,
            Ok(Some(_)) => {}
            Ok(None) => panic!("expected an error for {:?}", String::from_utf8_lossy(input)),
        }
    }
}

fn publish(
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> ClientOp {
    ClientOp::Pub {
        subject: bytes(subject),
        reply: reply.map(bytes),
        headers: headers.map(bytes),
        payload: bytes(payload),
    }
}

fn message(
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> ServerOp {
    ServerOp::Msg {
        subject: bytes(subject),
        sid: bytes(sid),
        reply: reply.map(bytes),
        headers: headers.map(bytes),
        payload: bytes(payload),
    }
}

fn small(max_control_line: usize, max_payload: usize) -> Limits {
    Limits {
        max_control_line,
        max_payload,
    }
}

// ---- client operations ----

#[test]
fn every_client_op() {
    assert_eq!(
        client_one(b"PUB orders.new 5\r\nhello\r\n"),
        publish(b"orders.new", None, None, b"hello")
    );
    assert_eq!(
        client_one(b"PUB svc.echo _INBOX.k1.q9 0\r\n\r\n"),
        publish(b"svc.echo", Some(b"_INBOX.k1.q9"), None, b"")
    );
    assert_eq!(
        client_one(b"HPUB orders.new 23 28\r\nNATS/1.0\r\nTrace: on\r\n\r\nhello\r\n"),
        publish(
            b"orders.new",
            None,
            Some(b"NATS/1.0\r\nTrace: on\r\n\r\n"),
            b"hello"
        )
    );
    assert_eq!(
        client_one(b"SUB foo.* 7\r\n"),
        ClientOp::Sub {
            subject: bytes(b"foo.*"),
            queue: None,
            sid: bytes(b"7"),
        }
    );
    assert_eq!(
        client_one(b"SUB foo.> workers 8\r\n"),
        ClientOp::Sub {
            subject: bytes(b"foo.>"),
            queue: Some(bytes(b"workers")),
            sid: bytes(b"8"),
        }
    );
    assert_eq!(
        client_one(b"UNSUB 7\r\n"),
        ClientOp::Unsub {
            sid: bytes(b"7"),
            max: None
        }
    );
    assert_eq!(
        client_one(b"UNSUB 7 18446744073709551615\r\n"),
        ClientOp::Unsub {
            sid: bytes(b"7"),
            max: Some(u64::MAX),
        }
    );
    assert_eq!(client_one(b"PING\r\n"), ClientOp::Ping);
    assert_eq!(client_one(b"PONG\r\n"), ClientOp::Pong);
    assert_eq!(
        client_one(b"CONNECT {\"verbose\":false,\"name\":\"x\"}\r\n"),
        ClientOp::Connect(Box::new(ConnectOptions {
            verbose: false,
            name: Some("x".into()),
            ..ConnectOptions::default()
        }))
    );
}

#[test]
fn hpub_byte_counts_from_the_reference() {
    // `NATS/1.0\r\nNats-Msg-Id: abc-1\r\n\r\n` is 32 bytes.
    let headers: &[u8] = b"NATS/1.0\r\nNats-Msg-Id: abc-1\r\n\r\n";
    assert_eq!(headers.len(), 32);
    assert_eq!(
        client_one(b"HPUB orders.new 32 37\r\nNATS/1.0\r\nNats-Msg-Id: abc-1\r\n\r\nhello\r\n"),
        publish(b"orders.new", None, Some(headers), b"hello")
    );
    assert_eq!(
        client_one(b"HPUB orders.new _INBOX.r 32 32\r\nNATS/1.0\r\nNats-Msg-Id: abc-1\r\n\r\n\r\n"),
        publish(b"orders.new", Some(b"_INBOX.r"), Some(headers), b"")
    );
    assert_eq!(
        client_one(b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"),
        publish(b"a", None, Some(b"NATS/1.0\r\n\r\n"), b"")
    );
}

#[test]
fn hpub_with_an_empty_header_block_is_a_message_without_headers() {
    // nats.js publishes to streams this way; nats-server delivers a plain MSG.
    assert_eq!(
        client_one(b"HPUB js.in _INBOX.r 0 5\r\nhello\r\n"),
        publish(b"js.in", Some(b"_INBOX.r"), None, b"hello")
    );
    assert_eq!(
        client_one(b"HPUB a 0 0\r\n\r\n"),
        publish(b"a", None, None, b"")
    );
}

#[test]
fn zero_byte_payload() {
    assert_eq!(
        client_one(b"PUB a 0\r\n\r\n"),
        publish(b"a", None, None, b"")
    );
}

#[test]
fn payload_may_contain_line_ends() {
    assert_eq!(
        client_one(b"PUB a 6\r\nPING\r\n\r\n"),
        publish(b"a", None, None, b"PING\r\n")
    );
}

#[test]
fn op_names_are_case_insensitive() {
    assert_eq!(
        client_one(b"pub foo 1\r\nx\r\n"),
        publish(b"foo", None, None, b"x")
    );
    assert_eq!(
        client_one(b"Pub foo 1\r\nx\r\n"),
        publish(b"foo", None, None, b"x")
    );
    assert_eq!(
        client_one(b"hPuB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n"),
        publish(b"foo", None, Some(b"NATS/1.0\r\n\r\n"), b"")
    );
    assert!(matches!(client_one(b"sub foo 1\r\n"), ClientOp::Sub { .. }));
    assert!(matches!(client_one(b"unsub 1\r\n"), ClientOp::Unsub { .. }));
    assert_eq!(client_one(b"ping\r\n"), ClientOp::Ping);
    assert_eq!(client_one(b"pOnG\r\n"), ClientOp::Pong);
    assert!(matches!(
        client_one(b"connect {}\r\n"),
        ClientOp::Connect(_)
    ));
}

#[test]
fn tabs_and_runs_of_blanks_separate_arguments() {
    assert_eq!(
        client_one(b"PUB\tfoo \t reply\t\t5  \r\nhello\r\n"),
        publish(b"foo", Some(b"reply"), None, b"hello")
    );
    assert_eq!(
        client_one(b"SUB \t foo\t\tq  9\t\r\n"),
        ClientOp::Sub {
            subject: bytes(b"foo"),
            queue: Some(bytes(b"q")),
            sid: bytes(b"9"),
        }
    );
    assert_eq!(client_one(b"PING  \t\r\n"), ClientOp::Ping);
    assert_eq!(client_one(b"PONG \r\n"), ClientOp::Pong);
    assert!(matches!(
        client_one(b"CONNECT\t {}\r\n"),
        ClientOp::Connect(_)
    ));
}

#[test]
fn bare_lf_ends_a_control_line() {
    assert_eq!(
        client_one(b"PUB foo 5\nhello\r\n"),
        publish(b"foo", None, None, b"hello")
    );
    assert_eq!(client_one(b"PING\n"), ClientOp::Ping);
    assert!(matches!(client_one(b"SUB foo 1\n"), ClientOp::Sub { .. }));
    assert!(matches!(client_one(b"CONNECT {}\n"), ClientOp::Connect(_)));
}

#[test]
fn several_frames_in_one_buffer() {
    let input = b"CONNECT {\"verbose\":false}\r\nPING\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nHPUB a r 12 13\r\nNATS/1.0\r\n\r\n!\r\nUNSUB 1\r\nPONG\r\nPUB a 3\r\nhe";
    let (ops, rest) = client_frames(input, &Limits::default()).expect("valid stream");
    assert_eq!(ops.len(), 7);
    assert!(matches!(ops[0], ClientOp::Connect(_)));
    assert_eq!(ops[1], ClientOp::Ping);
    assert_eq!(ops[3], publish(b"a", None, None, b"hi"));
    assert_eq!(
        ops[4],
        publish(b"a", Some(b"r"), Some(b"NATS/1.0\r\n\r\n"), b"!")
    );
    assert_eq!(ops[6], ClientOp::Pong);
    assert_eq!(rest, b"PUB a 3\r\nhe", "the partial frame stays buffered");
}

#[test]
fn frames_fed_byte_by_byte_complete_only_on_their_last_byte() {
    let frames: &[&[u8]] = &[
        b"PUB foo.bar 16\r\n0123456789abcdef\r\n",
        b"PUB a r 0\r\n\r\n",
        b"HPUB orders.new 23 28\r\nNATS/1.0\r\nTrace: on\r\n\r\nhello\r\n",
        b"SUB foo q 1\r\n",
        b"UNSUB 1 5\r\n",
        b"PING\r\n",
        b"PONG\n",
        b"CONNECT {\"echo\":false}\r\n",
    ];
    let limits = Limits::default();
    for frame in frames {
        let mut buf = BytesMut::new();
        for (i, &byte) in frame.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let result = parse_client(&mut buf, &limits).expect("valid prefix");
            if i + 1 < frame.len() {
                assert!(result.is_none(), "early frame at byte {i} of {frame:?}");
                assert_eq!(&buf[..], &frame[..=i], "buffer not advanced");
            } else {
                assert!(result.is_some(), "frame complete: {frame:?}");
                assert!(buf.is_empty());
            }
        }
    }
}

#[test]
fn fields_share_the_read_buffer() {
    let input = b"PUB foo 5\r\nhello\r\n";
    let mut buf = BytesMut::from(&input[..]);
    let base = buf.as_ptr() as usize;
    let Some(ClientOp::Pub {
        subject, payload, ..
    }) = parse_client(&mut buf, &Limits::default()).expect("valid")
    else {
        panic!("expected a PUB");
    };
    assert_eq!(subject.as_ptr() as usize, base + 4);
    assert_eq!(payload.as_ptr() as usize, base + 11);
}

#[test]
fn connect_with_nulls_unknown_fields_and_echo_default() {
    let line = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"jwt\":null,\"nkey\":null,\"sig\":null,\"name\":null,\"echo\":null,\"lang\":\"rust\",\"version\":\"0.51.0\",\"protocol\":1,\"tls_required\":false,\"user\":null,\"pass\":null,\"auth_token\":null,\"headers\":true,\"no_responders\":true,\"future_field\":[1,{}]}\r\n";
    let ClientOp::Connect(opts) = client_one(line) else {
        panic!("expected CONNECT");
    };
    assert!(opts.echo, "null echo means the default, true");
    assert_eq!(opts.protocol, 1);
    assert!(opts.headers && opts.no_responders);
    assert_eq!(opts.name, None);
    let ClientOp::Connect(opts) = client_one(b"CONNECT {}\r\n") else {
        panic!("expected CONNECT");
    };
    assert!(opts.echo, "absent echo means true");
    let ClientOp::Connect(opts) = client_one(b"CONNECT {\"echo\":false,\"verbose\":null}\r\n")
    else {
        panic!("expected CONNECT");
    };
    assert!(
        !opts.echo && opts.verbose,
        "null keeps verbose at its default"
    );
}

// ---- client errors ----

#[test]
fn unknown_operations() {
    assert_eq!(client_err(b"FOO bar\r\n"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PUBX foo 1\r\nx\r\n"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"\r\n"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b" PING\r\n"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PINGX\r\n"), ProtocolError::UnknownOp);
    assert_eq!(
        client_err(b"MSG foo 1 1\r\nx\r\n"),
        ProtocolError::UnknownOp,
        "server op from a client"
    );
    assert_eq!(client_err(b"INFO {}\r\n"), ProtocolError::UnknownOp);
}

#[test]
fn unknown_operation_is_seen_before_the_newline() {
    assert_eq!(client_err(b"XYZ"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PUBLISH"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PUX foo"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PUBX "), ProtocolError::UnknownOp);
    // Prefixes of real names wait for more bytes.
    for partial in [&b"P"[..], b"pu", b"CONNEC", b"PING\r", b"PUB ", b"SUB foo"] {
        let (ops, rest) = client_frames(partial, &Limits::default()).expect("valid prefix");
        assert!(ops.is_empty());
        assert_eq!(rest, partial);
    }
}

#[test]
fn wrong_argument_counts() {
    for input in [
        &b"PUB\r\n"[..],
        b"PUB foo\r\n",
        b"PUB a b c 1\r\n",
        b"HPUB foo 12\r\n",
        b"HPUB a b c 12 12\r\n",
        b"SUB foo\r\n",
        b"SUB a b c d\r\n",
        b"UNSUB\r\n",
        b"UNSUB 1 2 3\r\n",
        b"PING x\r\n",
        b"PONG 1\r\n",
    ] {
        assert_eq!(
            client_err(input),
            ProtocolError::InvalidArguments,
            "{input:?}"
        );
    }
}

#[test]
fn bad_sizes() {
    for input in [
        &b"PUB foo -1\r\n"[..],
        b"PUB foo +1\r\n",
        b"PUB foo abc\r\n",
        b"PUB foo 1x\r\n",
        b"PUB foo 99999999999999999999999\r\n",
        b"HPUB foo x 12\r\n",
        b"HPUB foo 12 -12\r\n",
        b"UNSUB 1 x\r\n",
        b"UNSUB 1 -1\r\n",
        b"UNSUB 1 18446744073709551616\r\n",
    ] {
        assert_eq!(
            client_err(input),
            ProtocolError::InvalidArguments,
            "{input:?}"
        );
    }
}

#[test]
fn header_block_checks() {
    // hdr > total
    assert_eq!(
        client_err(b"HPUB foo 20 12\r\n"),
        ProtocolError::InvalidArguments
    );
    // shorter than `NATS/1.0\r\n\r\n` (but not empty)
    assert_eq!(
        client_err(b"HPUB foo 5 5\r\n"),
        ProtocolError::InvalidArguments
    );
    // not a NATS/1.0 block
    assert_eq!(
        client_err(b"HPUB foo 12 12\r\nHTTP/1.1\r\n\r\n\r\n"),
        ProtocolError::InvalidArguments
    );
    // block does not end with an empty line
    assert_eq!(
        client_err(b"HPUB foo 12 14\r\nNATS/1.0\r\nA:hi\r\n\r\n"),
        ProtocolError::InvalidArguments
    );
}

#[test]
fn payload_must_be_followed_by_crlf() {
    assert_eq!(client_err(b"PUB foo 1\r\nxy\r\n"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PUB foo 1\r\nx\n\n"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PUB foo 1\r\nx\r\r"), ProtocolError::UnknownOp);
    // Seen as soon as the wrong byte arrives.
    assert_eq!(client_err(b"PUB foo 1\r\nxZ"), ProtocolError::UnknownOp);
    assert_eq!(client_err(b"PUB foo 0\r\n\n"), ProtocolError::UnknownOp);
}

#[test]
fn payload_over_the_limit_is_refused_before_it_arrives() {
    let limits = small(4096, 10);
    assert_eq!(
        client_err_with(b"PUB foo 11\r\n", &limits),
        ProtocolError::MaxPayload
    );
    assert_eq!(
        client_err_with(b"HPUB foo 12 11\r\n", &limits),
        ProtocolError::InvalidArguments,
        "hdr > total is checked first, as nats-server does"
    );
    assert_eq!(
        client_err_with(b"HPUB foo 12 13\r\n", &small(4096, 12)),
        ProtocolError::MaxPayload
    );
    assert_eq!(
        client_err(b"PUB foo 1048577\r\n"),
        ProtocolError::MaxPayload
    );
    // Exactly at the limit is fine.
    let (ops, rest) = client_frames(b"PUB foo 10\r\n0123456789\r\n", &limits).expect("at limit");
    assert_eq!(ops, vec![publish(b"foo", None, None, b"0123456789")]);
    assert!(rest.is_empty());
}

#[test]
fn control_line_limit_counts_argument_bytes() {
    let limits = small(10, 1024);
    // "foo.bar 12" is 10 argument bytes: allowed.
    let (ops, _) =
        client_frames(b"PUB foo.bar 2\r\nhi\r\nSUB foo.bar 12\r\n", &limits).expect("fits");
    assert_eq!(ops.len(), 2);
    assert_eq!(
        client_err_with(b"SUB foo.bar 123\r\n", &limits),
        ProtocolError::MaxControlLine
    );
    assert_eq!(
        client_err_with(b"CONNECT {\"ab\":1234}\r\n", &limits),
        ProtocolError::MaxControlLine
    );
}

#[test]
fn control_line_limit_without_a_newline() {
    let mut line = b"SUB ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 5000));
    assert_eq!(client_err(&line), ProtocolError::MaxControlLine);

    let limits = small(100, 1024);
    let mut buf = BytesMut::from(&b"PUB "[..]);
    buf.extend(std::iter::repeat_n(b'x', 100));
    assert_eq!(
        parse_client(&mut buf, &limits),
        Ok(None),
        "could still end in time"
    );
    buf.extend(std::iter::repeat_n(b'x', 40));
    assert_eq!(
        parse_client(&mut buf, &limits),
        Err(ProtocolError::MaxControlLine)
    );
}

#[test]
fn invalid_connect_json() {
    assert!(matches!(
        client_err(b"CONNECT {\r\n"),
        ProtocolError::InvalidConnect(_)
    ));
    assert!(matches!(
        client_err(b"CONNECT\r\n"),
        ProtocolError::InvalidConnect(_)
    ));
    assert!(matches!(
        client_err(b"CONNECT {\"verbose\":1}\r\n"),
        ProtocolError::InvalidConnect(_)
    ));
    assert!(matches!(
        client_err(b"CONNECT []\r\n"),
        ProtocolError::InvalidConnect(_)
    ));
    assert!(matches!(
        client_err(b"CONNECT null\r\n"),
        ProtocolError::InvalidConnect(_)
    ));
    assert_eq!(
        client_err(b"CONNECT {\r\n").err_text(),
        "Unknown Protocol Operation"
    );
}

#[test]
fn errors_leave_the_buffer_alone_until_whole_frames() {
    let mut buf = BytesMut::from(&b"PUB foo 5\r\nhel"[..]);
    assert_eq!(parse_client(&mut buf, &Limits::default()), Ok(None));
    assert_eq!(&buf[..], b"PUB foo 5\r\nhel");
}

// ---- server operations ----

#[test]
fn every_server_op() {
    assert_eq!(
        server_one(b"INFO {\"server_id\":\"N\",\"max_payload\":1048576}\r\n"),
        ServerOp::Info(bytes(b"{\"server_id\":\"N\",\"max_payload\":1048576}"))
    );
    assert_eq!(
        server_one(b"MSG foo.bar 9 5\r\nhello\r\n"),
        message(b"foo.bar", b"9", None, None, b"hello")
    );
    assert_eq!(
        server_one(b"MSG foo 1 _INBOX.x 0\r\n\r\n"),
        message(b"foo", b"1", Some(b"_INBOX.x"), None, b"")
    );
    assert_eq!(
        server_one(b"HMSG svc.none 0 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"),
        message(b"svc.none", b"0", None, Some(b"NATS/1.0 503\r\n\r\n"), b"")
    );
    assert_eq!(
        server_one(
            b"HMSG _INBOX.a.b 3 40 40\r\nNATS/1.0 503\r\nNats-Subject: svc.none\r\n\r\n\r\n"
        ),
        message(
            b"_INBOX.a.b",
            b"3",
            None,
            Some(b"NATS/1.0 503\r\nNats-Subject: svc.none\r\n\r\n"),
            b""
        )
    );
    assert_eq!(
        server_one(b"HMSG a 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
        message(b"a", b"1", Some(b"r"), Some(b"NATS/1.0\r\n\r\n"), b"hi")
    );
    assert_eq!(server_one(b"PING\r\n"), ServerOp::Ping);
    assert_eq!(server_one(b"PONG\r\n"), ServerOp::Pong);
    assert_eq!(server_one(b"+OK\r\n"), ServerOp::Ok);
    assert_eq!(
        server_one(b"-ERR 'Unknown Protocol Operation'\r\n"),
        ServerOp::Err(bytes(b"Unknown Protocol Operation"))
    );
}

#[test]
fn server_op_details() {
    assert_eq!(
        server_one(b"msg a 1 1\nx\r\n"),
        message(b"a", b"1", None, None, b"x")
    );
    assert_eq!(server_one(b"+ok\r\n"), ServerOp::Ok);
    assert_eq!(server_one(b"-err 'x'  \r\n"), ServerOp::Err(bytes(b"x")));
    assert_eq!(
        server_one(b"-ERR unquoted text\r\n"),
        ServerOp::Err(bytes(b"unquoted text"))
    );
    assert_eq!(server_one(b"-ERR ''\r\n"), ServerOp::Err(bytes(b"")));
    assert_eq!(server_one(b"-ERR\r\n"), ServerOp::Err(bytes(b"")));
    assert_eq!(server_one(b"INFO\t{}\r\n"), ServerOp::Info(bytes(b"{}")));
}

#[test]
fn server_errors() {
    assert_eq!(server_err(b"PUB foo 1\r\nx\r\n"), ProtocolError::UnknownOp);
    assert_eq!(
        server_err(b"MSG foo 1\r\n"),
        ProtocolError::InvalidArguments
    );
    assert_eq!(
        server_err(b"MSG a b c d e\r\n"),
        ProtocolError::InvalidArguments
    );
    assert_eq!(
        server_err(b"HMSG a 1 12\r\n"),
        ProtocolError::InvalidArguments
    );
    assert_eq!(
        server_err(b"HMSG a 1 13 12\r\n"),
        ProtocolError::InvalidArguments
    );
    assert_eq!(
        server_err(b"MSG a 1 2000000\r\n"),
        ProtocolError::MaxPayload
    );
    assert_eq!(server_err(b"MSG a 1 1\r\nxx"), ProtocolError::UnknownOp);
    assert_eq!(server_err(b"+OK x\r\n"), ProtocolError::InvalidArguments);
    assert_eq!(server_err(b"+OKAY\r\n"), ProtocolError::UnknownOp);
}
