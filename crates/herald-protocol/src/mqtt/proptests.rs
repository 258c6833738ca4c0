//! Property tests: every packet of either version round-trips through encode and decode,
//! splitting a stream anywhere changes nothing, arbitrary bytes never panic, never consume a
//! partial packet and re-encode to what they decoded to, and the subject mapping round-trips.

mod strategy;

use bytes::BytesMut;
use proptest::prelude::*;

use super::{
    MqttError, MqttLimits, Packet, TopicFilter, TopicName, Version, encode, encoded_len,
    filter_to_subject, parse_client, parse_server, subject_to_topic, topic_to_subject,
};
use strategy::{client_packet, noise, server_packet, version};

type Parser = fn(&mut BytesMut, &MqttLimits, Version) -> Result<Option<Packet>, MqttError>;

/// Small enough that generated noise reaches the limit.
const SMALL: MqttLimits = MqttLimits {
    max_packet_size: 96,
};

/// Feeds `input` in chunks cut at `cuts`; checks the contract at every call: `Ok(None)` and
/// errors leave the buffer as it was, `Ok(Some)` removes exactly one packet within the
/// limit. Stops at the first error.
fn drain(
    parse: Parser,
    input: &[u8],
    cuts: &[usize],
    limits: &MqttLimits,
    version: Version,
) -> (Vec<Packet>, Result<(), MqttError>) {
    let mut bounds: Vec<usize> = cuts.iter().map(|&cut| cut % (input.len() + 1)).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut from = 0;
    for to in bounds {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            let before = buf.clone();
            match parse(&mut buf, limits, version) {
                Ok(Some(packet)) => {
                    let used = before.len() - buf.len();
                    assert!(used >= 2 && used <= limits.max_packet_size);
                    assert_eq!(&before[used..], &buf[..], "more than one packet consumed");
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

/// Encodes `packet` and decodes it again with `parse`.
fn reencode(parse: Parser, version: Version, packet: &Packet) -> Packet {
    let mut buf = BytesMut::new();
    let written = encode(&mut buf, version, packet).expect("a decoded packet encodes");
    assert_eq!(encoded_len(version, packet), Ok(written));
    assert_eq!(written, buf.len());
    let again = parse(&mut buf, &MqttLimits::default(), version)
        .expect("a re-encoded packet is valid")
        .expect("a re-encoded packet is whole");
    assert!(buf.is_empty(), "re-encoded packet not consumed entirely");
    again
}

fn stream(version: Version, packets: &[Packet]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for packet in packets {
        encode(&mut buf, version, packet).expect("generated packets encode");
    }
    buf.to_vec()
}

proptest! {
    #[test]
    fn client_packets_round_trip(
        (version, packet) in version().prop_flat_map(|v| (Just(v), client_packet(v)))
    ) {
        prop_assert_eq!(reencode(parse_client, version, &packet), packet);
    }

    #[test]
    fn server_packets_round_trip(
        (version, packet) in version().prop_flat_map(|v| (Just(v), server_packet(v)))
    ) {
        prop_assert_eq!(reencode(parse_server, version, &packet), packet);
    }

    #[test]
    fn cutting_a_valid_stream_changes_nothing(
        (version, packets) in version().prop_flat_map(|v| {
            (Just(v), proptest::collection::vec(client_packet(v), 1..6))
        }),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let input = stream(version, &packets);
        let limits = MqttLimits::default();
        let (decoded, outcome) = drain(parse_client, &input, &cuts, &limits, version);
        prop_assert_eq!(outcome, Ok(()));
        prop_assert_eq!(decoded, packets);
    }

    #[test]
    fn arbitrary_bytes_keep_the_contract(
        input in noise(),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        for version in [Version::V311, Version::V5] {
            for (parse, limits) in [
                (parse_client as Parser, SMALL),
                (parse_server as Parser, SMALL),
                (parse_client as Parser, MqttLimits::default()),
            ] {
                let whole = drain(parse, &input, &[], &limits, version);
                let cut = drain(parse, &input, &cuts, &limits, version);
                prop_assert_eq!(&cut, &whole, "cutting the input changed the outcome");
                for packet in &whole.0 {
                    prop_assert_eq!(&reencode(parse, version, packet), packet);
                }
            }
        }
    }

    #[test]
    fn topics_map_to_subjects_and_back(topic in "[a-zé0-9.*>$/]{1,16}") {
        let levels: Vec<&str> = topic.split('/').collect();
        let name = TopicName::new(&topic).expect("no wildcards");
        match topic_to_subject(&name) {
            Ok(subject) => {
                let tokens: Vec<&str> = subject.split('.').collect();
                prop_assert_eq!(tokens.len(), levels.len());
                prop_assert!(tokens.iter().all(|t| !t.is_empty() && *t != "*" && *t != ">"));
                prop_assert_eq!(subject_to_topic(subject.as_bytes()), Ok(topic.clone()));
            }
            Err(_) => prop_assert!(levels.iter().any(|l| *l == "*" || *l == ">")),
        }
    }

    #[test]
    fn whitespace_never_reaches_a_subject(
        before in "[a-z/.]{0,6}",
        space in prop::sample::select(&[' ', '\t', '\r', '\n', '\x0c', '\x7f'][..]),
        after in "[a-z/.]{0,6}",
    ) {
        let topic = format!("{before}{space}{after}");
        let name = TopicName::new(&topic).expect("no wildcards");
        prop_assert!(topic_to_subject(&name).is_err());
    }

    #[test]
    fn filters_map_level_by_level(
        levels in proptest::collection::vec(
            prop_oneof![Just("+".to_owned()), "[a-z.]{0,3}"], 1..5),
        hash in any::<bool>(),
    ) {
        let mut text = levels.join("/");
        if hash {
            text.push_str("/#");
        }
        if text.is_empty() {
            text.push('+');
        }
        let filter = TopicFilter::new(&text).expect("valid filter");
        let subject = filter_to_subject(&filter).expect("mappable");
        let tokens: Vec<&str> = subject.split('.').collect();
        let mqtt: Vec<&str> = text.split('/').collect();
        prop_assert_eq!(tokens.len(), mqtt.len());
        for (token, level) in tokens.iter().zip(&mqtt) {
            match *level {
                "+" => prop_assert_eq!(*token, "*"),
                "#" => prop_assert_eq!(*token, ">"),
                literal => {
                    let name = TopicName::new(literal).expect("literal");
                    let alone = if literal.is_empty() {
                        "/".to_owned()
                    } else {
                        topic_to_subject(&name).expect("mappable")
                    };
                    prop_assert_eq!(*token, alone.as_str());
                }
            }
        }
    }
}
