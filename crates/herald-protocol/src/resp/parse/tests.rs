//! Hand-written vectors for the request parser (reference sections 1.2-1.4).

use bytes::BytesMut;

use super::{RequestParser, parse_request, string2ll};
use crate::resp::{RespError, RespLimits};

const AUTH: bool = true;

/// Argument lists of parsed requests, copied out.
type Requests = Vec<Vec<Vec<u8>>>;

/// Parses `input` (stateless) until `Ok(None)`; returns the argument lists and what is left.
fn requests_with(
    input: &[u8],
    limits: &RespLimits,
    authenticated: bool,
) -> Result<(Requests, Vec<u8>), RespError> {
    let mut buf = BytesMut::from(input);
    let mut requests = Vec::new();
    while let Some(request) = parse_request(&mut buf, limits, authenticated)? {
        requests.push(request.args.iter().map(|arg| arg.to_vec()).collect());
    }
    Ok((requests, buf.to_vec()))
}

fn requests(input: &[u8]) -> Requests {
    let (requests, rest) = requests_with(input, &RespLimits::default(), AUTH).expect("valid");
    assert!(rest.is_empty(), "input consumed entirely: {rest:?}");
    requests
}

/// Parses exactly one request that fills `input`.
#[track_caller]
fn one(input: &[u8]) -> Vec<Vec<u8>> {
    let mut all = requests(input);
    assert_eq!(
        all.len(),
        1,
        "one request in {:?}",
        String::from_utf8_lossy(input)
    );
    all.remove(0)
}

#[track_caller]
fn err_with(input: &[u8], limits: &RespLimits, authenticated: bool) -> RespError {
    match requests_with(input, limits, authenticated) {
        Err(err) => err,
        Ok(ok) => panic!(
            "expected an error for {:?}, got {ok:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[track_caller]
fn err(input: &[u8]) -> RespError {
    err_with(input, &RespLimits::default(), AUTH)
}

/// The reply the connection gets before it is closed.
#[track_caller]
fn err_line(input: &[u8]) -> String {
    format!("-{}\r\n", err(input).reply_text())
}

fn args(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|arg| arg.to_vec()).collect()
}

// ---- multibulk ----

#[test]
fn multibulk_publish() {
    assert_eq!(
        one(b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\nhello\r\n"),
        args(&[b"PUBLISH", b"ch", b"hello"])
    );
}

#[test]
fn bulk_data_is_binary() {
    assert_eq!(
        one(b"*2\r\n$4\r\nECHO\r\n$6\r\n\r\n\0\xff*$\r\n"),
        args(&[b"ECHO", b"\r\n\0\xff*$"])
    );
    assert_eq!(one(b"*1\r\n$0\r\n\r\n"), args(&[b""]));
}

#[test]
fn empty_multibulk_is_consumed_silently() {
    for input in [&b"*0\r\n"[..], b"*-1\r\n", b"*-9223372036854775808\r\n"] {
        let mut buf = BytesMut::from(input);
        let request = parse_request(&mut buf, &RespLimits::default(), false)
            .expect("valid")
            .expect("whole");
        assert!(request.is_empty(), "{input:?}");
        assert!(buf.is_empty());
    }
}

#[test]
fn redis_skips_the_bytes_after_a_cr_and_after_bulk_data() {
    // Redis finds header lines by their `\r` and skips the next byte unchecked; it also skips
    // the two bytes after bulk data. Being as lax keeps every Redis client working.
    assert_eq!(one(b"*1\rX$4\r\nPING\r\n"), args(&[b"PING"]));
    assert_eq!(one(b"*1\r\n$4\r?PINGxy"), args(&[b"PING"]));
}

#[test]
fn header_ended_by_lf_alone_is_never_complete() {
    let (done, rest) =
        requests_with(b"*1\n$4\nPING\n", &RespLimits::default(), AUTH).expect("no error yet");
    assert!(done.is_empty());
    assert_eq!(rest, b"*1\n$4\nPING\n");
    let limits = RespLimits {
        max_inline: 16,
        ..RespLimits::default()
    };
    assert_eq!(
        err_with(b"*1\n$4\nPING\nPING\nPING\n", &limits, AUTH),
        RespError::TooBigMbulkCount
    );
}

#[test]
fn strict_integers() {
    assert_eq!(string2ll(b"0"), Some(0));
    assert_eq!(string2ll(b"-1"), Some(-1));
    assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"-0",
        b"+1",
        b"01",
        b"00",
        b" 1",
        b"1 ",
        b"1x",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"18446744073709551616",
        b"000000000000000000001",
    ] {
        assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn multibulk_errors_with_their_exact_text() {
    let invalid_mbulk = "-ERR Protocol error: invalid multibulk length\r\n";
    let invalid_bulk = "-ERR Protocol error: invalid bulk length\r\n";
    assert_eq!(err_line(b"*abc\r\n"), invalid_mbulk);
    assert_eq!(err_line(b"*\r\n"), invalid_mbulk);
    assert_eq!(err_line(b"*+1\r\n"), invalid_mbulk);
    assert_eq!(err_line(b"*01\r\n"), invalid_mbulk);
    assert_eq!(err_line(b"* 1\r\n"), invalid_mbulk);
    assert_eq!(err_line(b"*-0\r\n"), invalid_mbulk);
    assert_eq!(err_line(b"*1048577\r\n"), invalid_mbulk);
    assert_eq!(
        err_line(b"*1\r\nX\r\n"),
        "-ERR Protocol error: expected '$', got 'X'\r\n"
    );
    assert_eq!(
        err_line(b"*2\r\n$1\r\na\r\n:1\r\n"),
        "-ERR Protocol error: expected '$', got ':'\r\n"
    );
    assert_eq!(
        err_line(b"*1\r\n\r\n"),
        "-ERR Protocol error: expected '$', got ' '\r\n"
    );
    assert_eq!(err_line(b"*1\r\n$-1\r\n"), invalid_bulk);
    assert_eq!(err_line(b"*1\r\n$03\r\nabc\r\n"), invalid_bulk);
    assert_eq!(err_line(b"*1\r\n$\r\n"), invalid_bulk);
    assert_eq!(err_line(b"*1\r\n$3x\r\n"), invalid_bulk);
    assert_eq!(err_line(b"*1\r\n$536870913\r\n"), invalid_bulk);
    // The largest bulk is announced fine; the parser then waits for its data.
    let (done, _) =
        requests_with(b"*1\r\n$536870912\r\n", &RespLimits::default(), AUTH).expect("valid so far");
    assert!(done.is_empty());
}

#[test]
fn unauthenticated_limits() {
    let limits = RespLimits::default();
    assert_eq!(
        err_with(b"*11\r\n", &limits, false),
        RespError::UnauthenticatedMultibulkLength
    );
    assert_eq!(
        err_with(b"*11\r\n", &limits, false).reply_text(),
        "ERR Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(
        err_with(b"*1\r\n$16385\r\n", &limits, false).reply_text(),
        "ERR Protocol error: unauthenticated bulk length"
    );
    // Invalid counts are reported before the authentication check, as in Redis.
    assert_eq!(
        err_with(b"*1048577\r\n", &limits, false),
        RespError::InvalidMultibulkLength
    );
    assert_eq!(
        err_with(b"*1\r\n$536870913\r\n", &limits, false),
        RespError::InvalidBulkLength
    );
    // At the limits themselves everything is fine.
    let mut ten = b"*10\r\n".to_vec();
    for _ in 0..10 {
        ten.extend_from_slice(b"$1\r\na\r\n");
    }
    assert_eq!(
        requests_with(&ten, &limits, false).expect("valid").0.len(),
        1
    );
    let (_, rest) = requests_with(b"*1\r\n$16384\r\n", &limits, false).expect("valid");
    assert_eq!(rest, b"*1\r\n$16384\r\n");
    // Authenticated, the same requests pass.
    assert!(requests_with(b"*11\r\n$16385\r\n", &limits, AUTH).is_ok());
}

#[test]
fn header_lines_without_cr_are_too_big_after_64_kib() {
    let mut input = b"*".to_vec();
    input.resize(65536, b'1');
    let (done, rest) = requests_with(&input, &RespLimits::default(), AUTH).expect("not yet");
    assert!(done.is_empty() && rest.len() == 65536);
    input.push(b'1');
    assert_eq!(
        format!("-{}\r\n", err(&input).reply_text()),
        "-ERR Protocol error: too big mbulk count string\r\n"
    );

    let mut input = b"*1\r\n$".to_vec();
    input.resize(4 + 65536, b'1');
    assert!(requests_with(&input, &RespLimits::default(), AUTH).is_ok());
    input.push(b'1');
    assert_eq!(
        err(&input).reply_text(),
        "ERR Protocol error: too big bulk count string"
    );

    // A `\r` inside the window makes a (long, invalid) line instead.
    let mut input = b"*".to_vec();
    input.resize(65536, b'1');
    input.extend_from_slice(b"\r\n");
    assert_eq!(err(&input), RespError::InvalidMultibulkLength);
}

#[test]
fn element_header_is_judged_only_once_its_line_is_complete() {
    // As in Redis: `X` without its `\r` yet is not an error yet.
    let (done, rest) = requests_with(b"*1\r\nX", &RespLimits::default(), AUTH).expect("not yet");
    assert!(done.is_empty());
    assert_eq!(rest, b"*1\r\nX");
}

#[test]
fn query_buffer_limit_closes_silently() {
    let limits = RespLimits {
        max_query_buffer: 16,
        ..RespLimits::default()
    };
    // 16 bytes exactly: fine.
    assert_eq!(
        requests_with(b"*1\r\n$6\r\nabcdef\r\n", &limits, AUTH)
            .expect("fits")
            .0,
        vec![args(&[b"abcdef"])]
    );
    let err = err_with(b"*1\r\n$7\r\nabcdefg\r\n", &limits, AUTH);
    assert_eq!(err, RespError::QueryBufferLimit);
    assert!(!err.has_reply());
    // Errors proven within the limit come first.
    assert_eq!(
        err_with(b"*1\r\nX\r\n.....................", &limits, AUTH),
        RespError::ExpectedDollar(b'X')
    );
    // The limit is per request: a buffer of many small requests is fine.
    let many = b"*1\r\n$4\r\nPING\r\n".repeat(10);
    assert_eq!(
        requests_with(&many, &limits, AUTH).expect("fine").0.len(),
        10
    );
}

// ---- inline ----

#[test]
fn inline_ping() {
    assert_eq!(one(b"PING\r\n"), args(&[b"PING"]));
    assert_eq!(one(b"PING\n"), args(&[b"PING"]));
    assert_eq!(
        one(b"ping  hello\tworld\r\n"),
        args(&[b"ping", b"hello", b"world"])
    );
}

#[test]
fn inline_quotes_and_escapes() {
    assert_eq!(
        one(b"SET \"a b\" 'c\\'d' \"\\x41\"\r\n"),
        args(&[b"SET", b"a b", b"c'd", b"A"])
    );
    assert_eq!(
        one(b"X \"\\n\\r\\t\\b\\a\\\\\\\"\\q\\xZZ\\x4a\\X41\"\n"),
        args(&[b"X", b"\n\r\t\x08\x07\\\"qxZZJX41"])
    );
    assert_eq!(one(b"X 'a\\nb\\'c'\n"), args(&[b"X", b"a\\nb'c"]));
    assert_eq!(one(b"X \"\" ''\n"), args(&[b"X", b"", b""]));
    assert_eq!(one(b"a\"b c\" d\r\n"), args(&[b"ab c", b"d"]));
    assert_eq!(one(b"\"a\"\x0bb\n"), args(&[b"a", b"b"]));
    // An unquoted argument ends only at space, tab, CR or LF; leading VT/FF are skipped.
    assert_eq!(one(b"\x0b\x0ca\x0bb c\n"), args(&[b"a\x0bb", b"c"]));
    // A `\r` inside the line is a separator; inside quotes it is kept.
    assert_eq!(one(b"a\rb \"c\rd\"\r\n"), args(&[b"a", b"b", b"c\rd"]));
    // NUL is an ordinary byte here (Redis would never see the line; see the module docs).
    assert_eq!(one(b"a\0b\n"), args(&[b"a\0b"]));
}

#[test]
fn unbalanced_quotes() {
    let text = "-ERR Protocol error: unbalanced quotes in request\r\n";
    for bad in [
        &b"SET \"a\n"[..],
        b"SET 'a\n",
        b"SET \"a\"b\n",
        b"SET 'a'b\n",
        b"\"a\"\"b\"\n",
        b"SET \"a\\\"\n",
        b"SET \"\\x4\n",
    ] {
        assert_eq!(err_line(bad), text, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn blank_lines_are_empty_requests() {
    for input in [&b"\r\n"[..], b"\n", b"   \t \r\n", b"\x0b\x0c\n"] {
        let mut buf = BytesMut::from(input);
        let request = parse_request(&mut buf, &RespLimits::default(), false)
            .expect("valid")
            .expect("whole");
        assert!(request.is_empty());
        assert!(buf.is_empty());
    }
}

#[test]
fn too_big_inline_request() {
    let mut input = vec![b'a'; 65536];
    let (done, _) = requests_with(&input, &RespLimits::default(), AUTH).expect("not yet");
    assert!(done.is_empty());
    input.push(b'a');
    assert_eq!(
        err_line(&input),
        "-ERR Protocol error: too big inline request\r\n"
    );
    // The newline may be the 65537th byte.
    input.pop();
    input.push(b'\n');
    assert_eq!(one(&input).len(), 1);
}

#[test]
fn inline_args_slice_the_line_when_unquoted() {
    let mut buf = BytesMut::from(&b"PUBLISH ch hi\r\n"[..]);
    let base = buf.as_ptr() as usize;
    let request = parse_request(&mut buf, &RespLimits::default(), AUTH)
        .expect("valid")
        .expect("whole");
    assert_eq!(request.args[1].as_ptr() as usize, base + 8);
    let mut buf = BytesMut::from(&b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\nhello\r\n"[..]);
    let base = buf.as_ptr() as usize;
    let request = parse_request(&mut buf, &RespLimits::default(), AUTH)
        .expect("valid")
        .expect("whole");
    assert_eq!(request.args[0].as_ptr() as usize, base + 8);
    assert_eq!(request.args[2].as_ptr() as usize, base + 29);
}

// ---- pipelining and partial input ----

#[test]
fn pipelined_mixed_inline_and_multibulk() {
    let input = b"PING\r\n*0\r\n*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$3\r\nmsg\r\n\r\nECHO \"x y\"\n\
                  *1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET";
    let (done, rest) = requests_with(input, &RespLimits::default(), AUTH).expect("valid");
    assert_eq!(
        done,
        vec![
            args(&[b"PING"]),
            args(&[]),
            args(&[b"PUBLISH", b"ch", b"msg"]),
            args(&[]),
            args(&[b"ECHO", b"x y"]),
            args(&[b"PING"]),
        ]
    );
    assert_eq!(
        rest, b"*2\r\n$3\r\nGET",
        "the partial request stays buffered"
    );
}

#[test]
fn errors_stop_the_stream() {
    // The requests before the bad one are parsed; nothing after it is.
    let mut buf = BytesMut::from(&b"PING\r\n*1\r\nX\r\nPING\r\n"[..]);
    let limits = RespLimits::default();
    assert!(
        parse_request(&mut buf, &limits, AUTH)
            .expect("ping")
            .is_some()
    );
    assert_eq!(
        parse_request(&mut buf, &limits, AUTH),
        Err(RespError::ExpectedDollar(b'X'))
    );
    assert_eq!(
        &buf[..],
        b"*1\r\nX\r\nPING\r\n",
        "buffer unchanged on error"
    );
}

const FRAMES: &[&[u8]] = &[
    b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$5\r\nhello\r\n",
    b"*1\r\n$0\r\n\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b"PING\r\n",
    b"PING\n",
    b"\r\n",
    b"SET \"a b\" 'c\\'d' \"\\x41\"\r\n",
    b"*12\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n\
      $1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n$1\r\nj\r\n$1\r\nk\r\n$10\r\n0123456789\r\n",
];

#[test]
fn frames_fed_byte_by_byte_complete_only_on_their_last_byte() {
    let limits = RespLimits::default();
    for frame in FRAMES {
        let expected = one(frame);
        let mut buf = BytesMut::new();
        let mut parser = RequestParser::new();
        for (i, &byte) in frame.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let whole = parse_request(&mut buf.clone(), &limits, AUTH).expect("valid prefix");
            let result = parser.parse(&mut buf, &limits, AUTH).expect("valid prefix");
            assert_eq!(result, whole, "stateful and stateless agree");
            if i + 1 < frame.len() {
                assert!(result.is_none(), "early request at byte {i} of {frame:?}");
                assert_eq!(&buf[..], &frame[..=i], "buffer not advanced");
            } else {
                let request = result.expect("request complete");
                let got: Vec<Vec<u8>> = request.args.iter().map(|arg| arg.to_vec()).collect();
                assert_eq!(got, expected);
                assert!(buf.is_empty());
            }
        }
    }
}

#[test]
fn partial_frames_at_every_split_point() {
    let stream = FRAMES.concat();
    let expected = requests(&stream);
    let limits = RespLimits::default();
    for cut in 0..=stream.len() {
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut parser = RequestParser::new();
        let mut got = Vec::new();
        for more in [&[][..], &stream[cut..]] {
            buf.extend_from_slice(more);
            while let Some(request) = parser.parse(&mut buf, &limits, AUTH).expect("valid") {
                got.push(
                    request
                        .args
                        .iter()
                        .map(|arg| arg.to_vec())
                        .collect::<Vec<_>>(),
                );
            }
        }
        assert_eq!(got, expected, "cut at {cut}");
        assert!(buf.is_empty());
    }
}

#[test]
fn parser_reset_and_contract_breaks_do_not_panic() {
    let limits = RespLimits::default();
    let mut parser = RequestParser::new();
    let partial: &[u8] = b"*2\r\n$1\r\na\r\n$1";
    let others: [&[u8]; 4] = [
        b"*1\r\n$1\r\nb\r\n",
        b"*1\r\n",
        b"*3\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n",
        b"PING\r\n",
    ];
    for other in others {
        parser.reset();
        assert_eq!(
            parser.parse(&mut BytesMut::from(partial), &limits, AUTH),
            Ok(None)
        );
        // Another buffer without a reset breaks the contract: any outcome but a panic.
        let _ = parser.parse(&mut BytesMut::from(other), &limits, AUTH);
        parser.reset();
        assert_eq!(
            parser.parse(&mut BytesMut::from(other), &limits, AUTH),
            parse_request(&mut BytesMut::from(other), &limits, AUTH),
            "after a reset the parser starts from scratch"
        );
    }
}
