//! Fuzzes the RESP parsers (`cargo +nightly fuzz run resp_parse fuzz/seeds/resp_parse`).
//!
//! The first input byte picks where the rest is cut into two reads; the rest is fed to
//! `parse_request` (authenticated and not, with small limits so the fuzzer reaches them) and
//! to `parse_value` until they stop. Checked for every input:
//! - no panic;
//! - every request respects the limits: multibulk element count and bulk sizes (and the
//!   tighter unauthenticated ones), inline line length, request size;
//! - every parsed request, re-encoded as multibulk, parses back to the same arguments;
//! - cutting the input into two reads yields the same requests and the same outcome, and a
//!   kept `RequestParser` agrees with the stateless `parse_request` at every step;
//! - every parsed reply value re-encodes to bytes that parse and re-encode identically.

use crate::resp::{
    Proto, RequestParser, RespError, RespLimits, encode_request, encode_value, parse_request,
    parse_value,
};
use bytes::BytesMut;

/// Small enough for the fuzzer to reach every limit.
const LIMITS: RespLimits = RespLimits {
    max_inline: 64,
    max_bulk: 48,
    max_multibulk: 16,
    max_query_buffer: 512,
};

/// Nesting allowed when parsing replies.
const MAX_DEPTH: usize = 8;

type Outcome = (Vec<(bool, usize, Vec<Vec<u8>>)>, Result<(), RespError>);

/// Parses `input` in two reads cut at `cut`; records for each request whether it was
/// multibulk, how many bytes it used, and its arguments.
fn run(input: &[u8], cut: usize, authenticated: bool) -> Outcome {
    let mut buf = BytesMut::from(&input[..cut]);
    let mut parser = RequestParser::new();
    let mut requests = Vec::new();
    for read in [None, Some(&input[cut..])] {
        if let Some(more) = read {
            buf.extend_from_slice(more);
        }
        loop {
            let multibulk = buf.first() == Some(&b'*');
            let before = buf.len();
            let stateless = parse_request(&mut buf.clone(), &LIMITS, authenticated);
            let result = parser.parse(&mut buf, &LIMITS, authenticated);
            assert_eq!(result, stateless, "kept parser and parse_request disagree");
            match result {
                Ok(Some(request)) => {
                    let args = request.args.iter().map(|arg| arg.to_vec()).collect();
                    requests.push((multibulk, before - buf.len(), args));
                }
                Ok(None) => break,
                Err(err) => return (requests, Err(err)),
            }
        }
    }
    (requests, Ok(()))
}

fn check_requests(input: &[u8], cut: usize, authenticated: bool) {
    let whole = run(input, input.len(), authenticated);
    for (multibulk, used, args) in &whole.0 {
        assert!(
            *used <= LIMITS.max_query_buffer,
            "request over the query buffer limit"
        );
        if *multibulk {
            assert!(args.len() <= LIMITS.max_multibulk, "too many elements");
            assert!(
                authenticated || args.len() <= 10,
                "unauthenticated element count"
            );
            for arg in args {
                assert!(arg.len() <= LIMITS.max_bulk, "bulk over the limit");
                assert!(authenticated || arg.len() <= 16384, "unauthenticated bulk");
            }
        } else {
            assert!(*used <= LIMITS.max_inline + 1, "inline line over the limit");
        }
        let mut again = BytesMut::new();
        encode_request(&mut again, args);
        let reparsed = parse_request(&mut again, &RespLimits::default(), true)
            .expect("a re-encoded request is valid")
            .expect("a re-encoded request is whole");
        let reparsed: Vec<Vec<u8>> = reparsed.args.iter().map(|arg| arg.to_vec()).collect();
        assert_eq!(&reparsed, args, "re-encoded request differs");
        assert!(again.is_empty(), "re-encoded request not consumed entirely");
    }
    assert_eq!(
        run(input, cut, authenticated),
        whole,
        "cutting the input changed the outcome"
    );
}

fn check_values(input: &[u8]) {
    let mut buf = BytesMut::from(input);
    while let Ok(Some(value)) = parse_value(&mut buf, MAX_DEPTH) {
        for proto in [Proto::Resp2, Proto::Resp3] {
            // Encoding normalizes (CR/LF in simple strings, `!` errors), so compare the bytes
            // of two rounds rather than the values (which also sidesteps NaN != NaN).
            let mut first = BytesMut::new();
            encode_value(&mut first, proto, &value);
            let mut reread = first.clone();
            let again = parse_value(&mut reread, MAX_DEPTH)
                .expect("an encoded value is valid")
                .expect("an encoded value is whole");
            assert!(reread.is_empty(), "encoded value not consumed entirely");
            let mut second = BytesMut::new();
            encode_value(&mut second, proto, &again);
            assert_eq!(first, second, "re-encoded value differs");
        }
    }
}

/// Checks one fuzz input (see the module docs); panics on a finding.
pub fn check_input(data: &[u8]) {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) % (input.len() + 1);
    check_requests(input, cut, true);
    check_requests(input, cut, false);
    check_values(input);
}
