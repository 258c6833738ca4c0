//! Property tests: requests and values round-trip through encode and parse, cutting a stream
//! anywhere changes nothing, and arbitrary bytes never panic or break a limit.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{
    DEFAULT_MAX_DEPTH, Proto, Request, RequestParser, RespError, RespLimits, Value, encode_request,
    encode_value, parse_request, parse_value,
};

type Args = Vec<Vec<u8>>;

fn binary_args() -> impl Strategy<Value = Args> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12)
}

fn to_args(request: &Request) -> Args {
    request.args.iter().map(|arg| arg.to_vec()).collect()
}

/// One request as a client could send it: multibulk, or inline with every argument in
/// double quotes (bytes outside printable ASCII, `"` and `\` as `\xHH`).
#[derive(Debug, Clone)]
enum Wire {
    Multibulk(Args),
    Inline(Args),
}

impl Wire {
    fn encode(&self, buf: &mut BytesMut) {
        match self {
            Self::Multibulk(args) => encode_request(buf, args),
            Self::Inline(args) => {
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        buf.extend_from_slice(b" ");
                    }
                    buf.extend_from_slice(b"\"");
                    for &byte in arg {
                        if (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\' {
                            buf.extend_from_slice(&[byte]);
                        } else {
                            buf.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
                        }
                    }
                    buf.extend_from_slice(b"\"");
                }
                buf.extend_from_slice(b"\r\n");
            }
        }
    }

    fn args(&self) -> &Args {
        match self {
            Self::Multibulk(args) | Self::Inline(args) => args,
        }
    }
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![
        binary_args().prop_map(Wire::Multibulk),
        binary_args().prop_map(Wire::Inline),
    ]
}

/// Feeds `input` in the given chunks to one stateful parser (and, in step, to the stateless
/// function on a copy); stops at the first error.
fn drain_chunks(
    input: &[u8],
    cuts: &[usize],
    limits: &RespLimits,
    authenticated: bool,
) -> (Vec<Args>, Result<(), RespError>) {
    let mut bounds: Vec<usize> = cuts.iter().map(|&cut| cut % (input.len() + 1)).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut done = Vec::new();
    let mut from = 0;
    for to in bounds {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            let stateless = parse_request(&mut buf.clone(), limits, authenticated);
            let result = parser.parse(&mut buf, limits, authenticated);
            assert_eq!(result, stateless, "stateful and stateless parsers agree");
            match result {
                Ok(Some(request)) => done.push(to_args(&request)),
                Ok(None) => break,
                Err(err) => return (done, Err(err)),
            }
        }
    }
    (done, Ok(()))
}

/// Mostly-protocol-shaped noise, so random inputs reach past the first header.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"*",
        b"$",
        b"*1\r\n",
        b"*2\r\n",
        b"*3\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*11\r\n",
        b"$0\r\n",
        b"$1\r\n",
        b"$3\r\n",
        b"$-1\r\n",
        b"$03\r\n",
        b"$16385\r\n",
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
        b"\t",
        b"\x0b",
        b"\"",
        b"'",
        b"\\",
        b"\\x4",
        b"\\x41",
        b"PING",
        b"PUBLISH",
        b"ch",
        b"abc",
        b"0",
        b"1",
        b"99999999999999999999",
        b"\0\xff",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(proptest::sample::select(PIECES), 0..40)
            .prop_map(|pieces| pieces.concat()),
    ]
}

fn small_limits() -> impl Strategy<Value = RespLimits> {
    (1usize..48, 0usize..24, 0usize..16, 1usize..160).prop_map(
        |(max_inline, max_bulk, max_multibulk, max_query_buffer)| RespLimits {
            max_inline,
            max_bulk,
            max_multibulk,
            max_query_buffer,
        },
    )
}

fn text() -> impl Strategy<Value = Bytes> {
    "[^\r\n]{0,12}".prop_map(Bytes::from)
}

fn blob() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

/// Any RESP3 value, with finite doubles (a `NaN` never equals itself).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::Simple),
        text().prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        blob().prop_map(Value::Bulk),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Boolean),
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            -1e6f64..1e6,
        ]
        .prop_map(Value::Double),
        (any::<[u8; 3]>(), blob()).prop_map(|(format, text)| Value::Verbatim { format, text }),
        "-?[0-9]{1,40}".prop_map(|digits| Value::BigNumber(Bytes::from(digits))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let items = proptest::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            items.clone().prop_map(Value::Array),
            items.clone().prop_map(Value::Set),
            items.prop_map(Value::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #[test]
    fn multibulk_round_trips(args in binary_args()) {
        let mut buf = BytesMut::new();
        encode_request(&mut buf, &args);
        let request = parse_request(&mut buf, &RespLimits::default(), true);
        prop_assert_eq!(request.map(|request| request.map(|request| to_args(&request))), Ok(Some(args)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn quoted_inline_round_trips(args in binary_args()) {
        let wire = Wire::Inline(args);
        let mut buf = BytesMut::new();
        wire.encode(&mut buf);
        let request = parse_request(&mut buf, &RespLimits::default(), true);
        let parsed = request.map(|request| request.map(|request| to_args(&request)));
        prop_assert_eq!(parsed, Ok(Some(wire.args().clone())));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn pipelined_stream_cut_anywhere(
        requests in proptest::collection::vec(wire(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut stream = BytesMut::new();
        for request in &requests {
            request.encode(&mut stream);
        }
        let (done, result) = drain_chunks(&stream, &cuts, &RespLimits::default(), true);
        prop_assert_eq!(result, Ok(()));
        let expected: Vec<Args> = requests.iter().map(|request| request.args().clone()).collect();
        prop_assert_eq!(done, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_respect_limits(
        input in noise(),
        limits in small_limits(),
        authenticated in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let whole = drain_chunks(&input, &[], &limits, authenticated);
        // Where the bytes are cut does not change the outcome.
        prop_assert_eq!(&drain_chunks(&input, &cuts, &limits, authenticated), &whole);
        let mut rest = BytesMut::from(&input[..]);
        for args in &whole.0 {
            let multibulk = rest.first() == Some(&b'*');
            let before = rest.len();
            let request = parse_request(&mut rest, &limits, authenticated);
            prop_assert!(matches!(request, Ok(Some(_))));
            let used = before - rest.len();
            prop_assert!(used <= limits.max_query_buffer);
            if multibulk {
                prop_assert!(args.len() <= limits.max_multibulk);
                prop_assert!(authenticated || args.len() <= 10);
                for arg in args {
                    prop_assert!(arg.len() <= limits.max_bulk);
                    prop_assert!(authenticated || arg.len() <= 16384);
                }
            } else {
                prop_assert!(used <= limits.max_inline + 1);
            }
            // Every parsed request survives a multibulk re-encode.
            let mut again = BytesMut::new();
            encode_request(&mut again, args);
            let reparsed = parse_request(&mut again, &RespLimits::default(), true);
            prop_assert_eq!(
                reparsed.map(|request| request.map(|request| to_args(&request))),
                Ok(Some(args.clone()))
            );
        }
    }

    #[test]
    fn resp3_values_round_trip(value in value()) {
        let mut buf = BytesMut::new();
        encode_value(&mut buf, Proto::Resp3, &value);
        prop_assert_eq!(parse_value(&mut buf, DEFAULT_MAX_DEPTH), Ok(Some(value)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn resp2_encoding_parses_as_the_fallback(value in value()) {
        let mut buf = BytesMut::new();
        encode_value(&mut buf, Proto::Resp2, &value);
        prop_assert_eq!(parse_value(&mut buf, DEFAULT_MAX_DEPTH), Ok(Some(value.to_resp2())));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn values_cut_anywhere(values in proptest::collection::vec(value(), 0..4), at in any::<usize>()) {
        let mut encoded = BytesMut::new();
        for value in &values {
            encode_value(&mut encoded, Proto::Resp3, value);
        }
        let at = at % (encoded.len() + 1);
        let mut buf = BytesMut::from(&encoded[..at]);
        let mut parsed = Vec::new();
        while let Some(value) = parse_value(&mut buf, DEFAULT_MAX_DEPTH).expect("valid prefix") {
            parsed.push(value);
        }
        buf.extend_from_slice(&encoded[at..]);
        while let Some(value) = parse_value(&mut buf, DEFAULT_MAX_DEPTH).expect("valid") {
            parsed.push(value);
        }
        prop_assert_eq!(parsed, values);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_to_parse_value(input in noise(), max_depth in 0usize..4) {
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(value)) = parse_value(&mut buf, max_depth) {
            // Whatever parsed re-encodes stably: encoding normalizes (CR/LF in simple strings
            // become spaces, `!` errors become `-` errors), so compare the bytes of a second
            // round instead of the values (which also sidesteps NaN != NaN).
            let mut first = BytesMut::new();
            encode_value(&mut first, Proto::Resp3, &value);
            let mut reread = first.clone();
            let again = parse_value(&mut reread, DEFAULT_MAX_DEPTH);
            prop_assert!(matches!(again, Ok(Some(_))), "re-encoded value parses: {again:?}");
            let mut second = BytesMut::new();
            if let Ok(Some(again)) = again {
                encode_value(&mut second, Proto::Resp3, &again);
            }
            prop_assert_eq!(first, second);
        }
    }
}
