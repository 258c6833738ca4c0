//! Fuzzes the MQTT decoders (`cargo +nightly fuzz run mqtt_parse fuzz/seeds/mqtt_parse`).
//!
//! The first input byte picks where the rest is cut into two reads; the rest is fed to
//! `parse_client` and to `parse_server`, as MQTT 3.1.1 and as MQTT 5, until they stop, with a
//! small packet size limit so the fuzzer reaches it. Checked for every input:
//! - no panic;
//! - `Ok(None)` and errors leave the buffer as it was; `Ok(Some)` removes exactly one packet,
//!   no larger than the limit;
//! - every decoded packet encodes (to the size `encoded_len` predicts) and decodes back to
//!   itself;
//! - cutting the input into two reads yields the same packets and the same outcome.

use bytes::BytesMut;

use crate::mqtt::{
    MqttError, MqttLimits, Packet, Version, encode, encoded_len, parse_client, parse_server,
};

/// Small enough for the fuzzer to reach the limit.
const LIMITS: MqttLimits = MqttLimits {
    max_packet_size: 256,
};

type Parser = fn(&mut BytesMut, &MqttLimits, Version) -> Result<Option<Packet>, MqttError>;

type Outcome = (Vec<Packet>, Result<(), MqttError>);

/// Decodes `input` in two reads cut at `cut`, until the decoder stops.
fn run(input: &[u8], cut: usize, parse: Parser, version: Version) -> Outcome {
    let mut buf = BytesMut::from(&input[..cut]);
    let mut packets = Vec::new();
    for read in [None, Some(&input[cut..])] {
        if let Some(more) = read {
            buf.extend_from_slice(more);
        }
        loop {
            let before = buf.clone();
            match parse(&mut buf, &LIMITS, version) {
                Ok(Some(packet)) => {
                    let used = before.len() - buf.len();
                    assert!(used <= LIMITS.max_packet_size, "packet over the limit");
                    assert_eq!(&before[used..], &buf[..], "not exactly one packet consumed");
                    packets.push(packet);
                }
                Ok(None) => {
                    assert_eq!(before, buf, "Ok(None) changed the buffer");
                    break;
                }
                Err(err) => {
                    assert_eq!(before, buf, "an error changed the buffer");
                    return (packets, Err(err));
                }
            }
        }
    }
    (packets, Ok(()))
}

fn check(input: &[u8], cut: usize, parse: Parser, version: Version) {
    let whole = run(input, input.len(), parse, version);
    for packet in &whole.0 {
        let mut again = BytesMut::new();
        let written = encode(&mut again, version, packet).expect("a decoded packet encodes");
        assert_eq!(written, again.len(), "encode misreports its size");
        assert_eq!(
            encoded_len(version, packet),
            Ok(written),
            "encoded_len disagrees"
        );
        let reparsed = parse(&mut again, &MqttLimits::default(), version)
            .expect("a re-encoded packet is valid")
            .expect("a re-encoded packet is whole");
        assert!(again.is_empty(), "re-encoded packet not consumed entirely");
        assert_eq!(&reparsed, packet, "re-encoded packet differs");
    }
    assert_eq!(
        run(input, cut, parse, version),
        whole,
        "cutting the input changed the outcome"
    );
}

/// Checks one fuzz input (see the module docs); panics on a finding.
pub fn check_input(data: &[u8]) {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) % (input.len() + 1);
    for version in [Version::V311, Version::V5] {
        check(input, cut, parse_client, version);
        check(input, cut, parse_server, version);
    }
}
