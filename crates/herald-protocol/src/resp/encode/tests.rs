//! Byte-exact vectors for the reply writers (reference sections 1.1, 3 `HELLO` and 4.1).

use bytes::{Bytes, BytesMut};

use super::*;
use crate::resp::Proto::{Resp2, Resp3};

fn written(encode: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(&mut buf);
    buf.to_vec()
}

#[test]
fn subscription_confirmations() {
    assert_eq!(
        written(|buf| subscription_push(buf, Resp2, b"subscribe", Some(b"ch"), 1)),
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    );
    assert_eq!(
        written(|buf| subscription_push(buf, Resp2, b"unsubscribe", Some(b"ch"), 0)),
        b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n"
    );
    assert_eq!(
        written(|buf| subscription_push(buf, Resp2, b"psubscribe", Some(b"ch*"), 2)),
        b"*3\r\n$10\r\npsubscribe\r\n$3\r\nch*\r\n:2\r\n"
    );
    assert_eq!(
        written(|buf| subscription_push(buf, Resp2, b"punsubscribe", Some(b"ch*"), 1)),
        b"*3\r\n$12\r\npunsubscribe\r\n$3\r\nch*\r\n:1\r\n"
    );
    assert_eq!(
        written(|buf| subscription_push(buf, Resp2, b"ssubscribe", Some(b"sc"), 1)),
        b"*3\r\n$10\r\nssubscribe\r\n$2\r\nsc\r\n:1\r\n"
    );
    assert_eq!(
        written(|buf| subscription_push(buf, Resp2, b"sunsubscribe", Some(b"sc"), 0)),
        b"*3\r\n$12\r\nsunsubscribe\r\n$2\r\nsc\r\n:0\r\n"
    );
    assert_eq!(
        written(|buf| subscription_push(buf, Resp3, b"subscribe", Some(b"ch"), 1)),
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    );
}

#[test]
fn unsubscribe_with_nothing_subscribed_has_a_null_name() {
    assert_eq!(
        written(|buf| subscription_push(buf, Resp2, b"unsubscribe", None, 0)),
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    );
    assert_eq!(
        written(|buf| subscription_push(buf, Resp3, b"unsubscribe", None, 0)),
        b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
    );
}

#[test]
fn message_deliveries() {
    assert_eq!(
        written(|buf| message_push(buf, Resp2, b"ch", b"hello")),
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        written(|buf| message_push(buf, Resp3, b"ch", b"hello")),
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        written(|buf| pmessage_push(buf, Resp2, b"ch*", b"ch", b"hello")),
        b"*4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n$2\r\nch\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        written(|buf| pmessage_push(buf, Resp3, b"ch*", b"ch", b"hello")),
        b">4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n$2\r\nch\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        written(|buf| smessage_push(buf, Resp2, b"sc", b"hello")),
        b"*3\r\n$8\r\nsmessage\r\n$2\r\nsc\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        written(|buf| smessage_push(buf, Resp3, b"", b"")),
        b">3\r\n$8\r\nsmessage\r\n$0\r\n\r\n$0\r\n\r\n"
    );
}

#[test]
fn pushes_reserve_exactly_once() {
    let check = |encode: &dyn Fn(&mut BytesMut)| {
        let mut buf = BytesMut::new();
        encode(&mut buf);
        assert_eq!(
            buf.len(),
            buf.capacity(),
            "{:?}",
            String::from_utf8_lossy(&buf)
        );
    };
    let payload = [7u8; 1000];
    check(&|buf| message_push(buf, Resp3, b"channel", &payload));
    check(&|buf| message_push(buf, Resp2, b"", &payload[..9]));
    check(&|buf| message_push(buf, Resp2, &payload[..10], &payload[..99]));
    check(&|buf| pmessage_push(buf, Resp2, b"ch*", b"channel", &payload));
    check(&|buf| smessage_push(buf, Resp3, b"sc", &payload[..100]));
    check(&|buf| subscription_push(buf, Resp2, b"unsubscribe", None, 0));
    check(&|buf| subscription_push(buf, Resp3, b"psubscribe", Some(b"a*"), -12));
    check(&|buf| bulk(buf, &payload[..10]));
}

#[test]
fn hello_map_header_per_protocol() {
    assert_eq!(written(|buf| map_header(buf, Resp3, 7)), b"%7\r\n");
    assert_eq!(written(|buf| map_header(buf, Resp2, 7)), b"*14\r\n");
    let hello = |proto| {
        written(|buf| {
            map_header(buf, proto, 2);
            bulk(buf, b"server");
            bulk(buf, b"redis");
            bulk(buf, b"proto");
            integer(buf, 3);
        })
    };
    assert_eq!(
        hello(Resp3),
        b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
    );
    assert_eq!(
        hello(Resp2),
        b"*4\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
    );
}

#[test]
fn scalars() {
    assert_eq!(written(|buf| simple(buf, b"OK")), b"+OK\r\n");
    assert_eq!(written(|buf| simple(buf, b"a\r\nb")), b"+a  b\r\n");
    assert_eq!(
        written(|buf| error(buf, b"ERR unknown command 'x\ny'")),
        b"-ERR unknown command 'x y'\r\n"
    );
    assert_eq!(written(|buf| integer(buf, 1000)), b":1000\r\n");
    assert_eq!(
        written(|buf| integer(buf, i64::MIN)),
        b":-9223372036854775808\r\n"
    );
    assert_eq!(written(|buf| bulk(buf, b"hello")), b"$5\r\nhello\r\n");
    assert_eq!(written(|buf| bulk(buf, b"")), b"$0\r\n\r\n");
    assert_eq!(written(|buf| null(buf, Resp2)), b"$-1\r\n");
    assert_eq!(written(|buf| null(buf, Resp3)), b"_\r\n");
    assert_eq!(written(|buf| null_array(buf, Resp2)), b"*-1\r\n");
    assert_eq!(written(|buf| null_array(buf, Resp3)), b"_\r\n");
    assert_eq!(written(|buf| array_header(buf, 0)), b"*0\r\n");
    assert_eq!(written(|buf| push_header(buf, Resp3, 3)), b">3\r\n");
    assert_eq!(written(|buf| push_header(buf, Resp2, 3)), b"*3\r\n");
    assert_eq!(written(|buf| set_header(buf, Resp3, 2)), b"~2\r\n");
    assert_eq!(written(|buf| set_header(buf, Resp2, 2)), b"*2\r\n");
    assert_eq!(written(|buf| boolean(buf, Resp3, true)), b"#t\r\n");
    assert_eq!(written(|buf| boolean(buf, Resp3, false)), b"#f\r\n");
    assert_eq!(written(|buf| boolean(buf, Resp2, true)), b":1\r\n");
    assert_eq!(written(|buf| boolean(buf, Resp2, false)), b":0\r\n");
    assert_eq!(
        written(|buf| verbatim(buf, Resp3, b"txt", b"Some string")),
        b"=15\r\ntxt:Some string\r\n"
    );
    assert_eq!(
        written(|buf| verbatim(buf, Resp2, b"txt", b"Some string")),
        b"$11\r\nSome string\r\n"
    );
    assert_eq!(written(|buf| big_number(buf, Resp3, b"-12")), b"(-12\r\n");
    assert_eq!(
        written(|buf| big_number(buf, Resp2, b"-12")),
        b"$3\r\n-12\r\n"
    );
    assert_eq!(
        written(|buf| encode_request(buf, &[&b"PING"[..]])),
        b"*1\r\n$4\r\nPING\r\n"
    );
}

#[test]
fn doubles_as_redis_prints_them() {
    let text = |v: f64| written(|buf| double(buf, Resp3, v));
    assert_eq!(text(1.23), b",1.23\r\n");
    assert_eq!(text(f64::INFINITY), b",inf\r\n");
    assert_eq!(text(f64::NEG_INFINITY), b",-inf\r\n");
    assert_eq!(text(f64::NAN), b",nan\r\n");
    assert_eq!(text(0.0), b",0\r\n");
    assert_eq!(text(-0.0), b",-0\r\n");
    assert_eq!(text(3.0), b",3\r\n");
    assert_eq!(text(-1e17), b",-100000000000000000\r\n");
    assert_eq!(text(1e300), b",1e+300\r\n");
    assert_eq!(text(0.0001), b",0.0001\r\n");
    assert_eq!(text(1.5e-5), b",1.5e-05\r\n");
    assert_eq!(text(1.0 / 3.0), b",0.3333333333333333\r\n");
    assert_eq!(written(|buf| double(buf, Resp2, 2.5)), b"$3\r\n2.5\r\n");
    for v in [
        1e300,
        -1.5e-5,
        1.0 / 3.0,
        4.7e18,
        123_456.789,
        f64::MIN_POSITIVE,
    ] {
        let text = format_double(v);
        assert_eq!(text.parse::<f64>().ok(), Some(v), "{text} reads back");
    }
}

#[test]
fn values_in_both_protocols() {
    let value = Value::Map(vec![(
        Value::Bulk(Bytes::from_static(b"flags")),
        Value::Set(vec![Value::Boolean(true), Value::Null, Value::Double(0.5)]),
    )]);
    assert_eq!(
        written(|buf| encode_value(buf, Resp3, &value)),
        b"%1\r\n$5\r\nflags\r\n~3\r\n#t\r\n_\r\n,0.5\r\n"
    );
    assert_eq!(
        written(|buf| encode_value(buf, Resp2, &value)),
        b"*2\r\n$5\r\nflags\r\n*3\r\n:1\r\n$-1\r\n$3\r\n0.5\r\n"
    );
    let push = Value::Push(vec![
        Value::Bulk(Bytes::from_static(b"message")),
        Value::Bulk(Bytes::from_static(b"ch")),
        Value::Bulk(Bytes::from_static(b"hello")),
    ]);
    assert_eq!(
        written(|buf| encode_value(buf, Resp3, &push)),
        written(|buf| message_push(buf, Resp3, b"ch", b"hello"))
    );
    assert_eq!(
        written(|buf| encode_value(buf, Resp2, &push)),
        written(|buf| message_push(buf, Resp2, b"ch", b"hello"))
    );
}
