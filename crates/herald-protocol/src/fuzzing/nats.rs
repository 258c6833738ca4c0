//! Fuzzes the NATS parsers (`cargo +nightly fuzz run nats_parse fuzz/seeds/nats_parse`).
//!
//! The first input byte picks where the rest is cut into two reads; the rest is fed to
//! `parse_client` and to `parse_server` until they stop. Checked for every input:
//! - no panic;
//! - no frame carries more header and payload bytes than `max_payload`;
//! - every parsed client or server op, encoded again, parses back to itself;
//! - cutting the input into two reads yields the same frames and the same outcome.

use crate::Limits;
use crate::nats::{
    ClientOp, ProtocolError, ServerOp, encode_client, encode_server, parse_client, parse_server,
};
use bytes::BytesMut;

/// Small enough for the fuzzer to reach both limits.
const LIMITS: Limits = Limits {
    max_control_line: 512,
    max_payload: 128,
};

/// For re-parsing re-encoded frames: a re-serialized `CONNECT` may be longer than the original.
const ROOMY: Limits = Limits {
    max_control_line: 1 << 20,
    max_payload: 1 << 20,
};

type Parser<T> = fn(&mut BytesMut, &Limits) -> Result<Option<T>, ProtocolError>;

/// Parses `input` in two reads cut at `cut`, until the parser stops.
fn run<T>(input: &[u8], cut: usize, parse: Parser<T>) -> (Vec<T>, Result<(), ProtocolError>) {
    let mut buf = BytesMut::from(&input[..cut]);
    let mut frames = Vec::new();
    for read in [None, Some(&input[cut..])] {
        if let Some(more) = read {
            buf.extend_from_slice(more);
        }
        loop {
            match parse(&mut buf, &LIMITS) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(err) => return (frames, Err(err)),
            }
        }
    }
    (frames, Ok(()))
}

fn check<T: Clone + PartialEq + std::fmt::Debug>(
    input: &[u8],
    cut: usize,
    parse: Parser<T>,
    size: fn(&T) -> usize,
    encode: fn(&mut BytesMut, &T),
) {
    let whole = run(input, input.len(), parse);
    for frame in &whole.0 {
        assert!(
            size(frame) <= LIMITS.max_payload,
            "frame over the limit: {frame:?}"
        );
        let mut again = BytesMut::new();
        encode(&mut again, frame);
        let reparsed = parse(&mut again, &ROOMY);
        assert_eq!(
            reparsed,
            Ok(Some(frame.clone())),
            "re-encoded frame differs"
        );
        assert!(again.is_empty(), "re-encoded frame not consumed entirely");
    }
    assert_eq!(
        run(input, cut, parse),
        whole,
        "cutting the input changed the outcome"
    );
}

fn client_size(op: &ClientOp) -> usize {
    match op {
        ClientOp::Pub {
            headers, payload, ..
        } => headers.as_ref().map_or(0, |h| h.len()) + payload.len(),
        _ => 0,
    }
}

fn server_size(op: &ServerOp) -> usize {
    match op {
        ServerOp::Msg {
            headers, payload, ..
        } => headers.as_ref().map_or(0, |h| h.len()) + payload.len(),
        _ => 0,
    }
}

/// Checks one fuzz input (see the module docs); panics on a finding.
pub fn check_input(data: &[u8]) {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) % (input.len() + 1);
    check(input, cut, parse_client, client_size, encode_client);
    check(input, cut, parse_server, server_size, encode_server);
}
