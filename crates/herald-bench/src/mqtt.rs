//! Throughput scenarios over MQTT 3.1.1 with a lean client built on
//! herald's own codec: batched `PUBLISH` writes, a streaming counter, and
//! `PUBACK`s written back in batches at QoS 1. It drives any MQTT broker
//! (herald's MQTT listener, mosquitto).

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use herald_protocol::mqtt::{
    Connect, MqttLimits, Packet, PacketId, Publish, QoS, QosPid, RetainHandling, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName, Version, encode, parse_server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scenario::{Outcome, Params, Protocol, Scenario, Tally, publish_and_finish};
use crate::wire_scan::{scan_mqtt, spawn_counter};

const TOPIC: &str = "bench/subject";
/// QoS 1 publishes in flight (unacknowledged) per publisher.
const WINDOW: u16 = 1024;

fn addr_of(url: &str) -> &str {
    url.split("://").nth(1).unwrap_or(url)
}

fn limits() -> MqttLimits {
    MqttLimits {
        max_packet_size: 64 * 1024 * 1024,
    }
}

fn put(buf: &mut BytesMut, packet: &Packet) -> anyhow::Result<()> {
    encode(buf, Version::V311, packet).map_err(|e| anyhow::anyhow!("encoding: {e}"))?;
    Ok(())
}

/// Connects with a clean session and waits for CONNACK.
async fn connect(url: &str, id: &str) -> anyhow::Result<(TcpStream, BytesMut)> {
    let mut stream = TcpStream::connect(addr_of(url))
        .await
        .with_context(|| format!("connecting to {url}"))?;
    stream.set_nodelay(true)?;
    let mut out = BytesMut::new();
    let connect = Connect {
        version: Version::V311,
        clean_start: true,
        keep_alive: 60,
        client_id: id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    };
    put(&mut out, &Packet::Connect(Box::new(connect)))?;
    stream.write_all(&out).await?;
    let mut buf = BytesMut::with_capacity(256 * 1024);
    loop {
        if let Some(packet) = parse_server(&mut buf, &limits(), Version::V311)? {
            match packet {
                Packet::ConnAck(ack) if !ack.reason_code.is_error() => return Ok((stream, buf)),
                Packet::ConnAck(ack) => bail!("connection refused: {:?}", ack.reason_code),
                other => bail!("expected CONNACK, got {other:?}"),
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("the broker closed the connection during CONNECT");
        }
    }
}

fn packet_id(n: u64) -> PacketId {
    PacketId::new((n % u64::from(u16::MAX)) as u16 + 1).unwrap_or_else(|| unreachable!("never 0"))
}

/// Publishes `count` messages at `qos`, in 64 KiB writes; at QoS 1 keeps at
/// most [`WINDOW`] unacknowledged and returns once all are acknowledged.
async fn publish(url: &str, id: &str, size: usize, count: u64, qos: QoS) -> anyhow::Result<u64> {
    let (mut stream, mut buf) = connect(url, id).await?;
    let topic = TopicName::new(TOPIC).map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = Bytes::from(vec![b'x'; size]);
    let mut out = BytesMut::with_capacity(128 * 1024);
    let (mut sent, mut acked) = (0u64, 0u64);
    while sent < count || (qos == QoS::AtLeastOnce && acked < count) {
        while sent < count && (qos == QoS::AtMostOnce || sent - acked < u64::from(WINDOW)) {
            let qos_pid = match qos {
                QoS::AtMostOnce => QosPid::AtMostOnce,
                _ => QosPid::AtLeastOnce(packet_id(sent)),
            };
            let publish = Publish {
                dup: false,
                qos: qos_pid,
                retain: false,
                topic: topic.clone(),
                properties: Default::default(),
                payload: payload.clone(),
            };
            put(&mut out, &Packet::Publish(publish))?;
            sent += 1;
            if out.len() >= 64 * 1024 {
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if qos == QoS::AtLeastOnce && (sent - acked >= u64::from(WINDOW) || sent == count) {
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the broker closed the publisher after {acked} acks");
            }
            while let Some(packet) = parse_server(&mut buf, &limits(), Version::V311)? {
                if let Packet::PubAck(_) = packet {
                    acked += 1;
                }
            }
        }
    }
    // A round trip (PINGREQ) so the broker has taken everything in.
    stream.write_all(&[0xC0, 0x00]).await?;
    loop {
        while let Some(packet) = parse_server(&mut buf, &limits(), Version::V311)? {
            if let Packet::PingResp = packet {
                return Ok(sent);
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("the broker closed the publisher");
        }
    }
}

/// Runs a throughput scenario over MQTT at the QoS `protocol` names.
///
/// # Errors
/// Connection failures; lost messages are reported, not errors.
pub(crate) async fn run(
    url: &str,
    protocol: Protocol,
    scenario: Scenario,
    params: &Params,
) -> anyhow::Result<Outcome> {
    let qos = match protocol {
        Protocol::MqttQos1 => QoS::AtLeastOnce,
        _ => QoS::AtMostOnce,
    };
    let Some(shape) = scenario.shape(params) else {
        bail!("{scenario:?} has no MQTT form");
    };
    if shape.queue {
        bail!("queue groups are not measured over MQTT");
    }
    let tally = Tally::new();
    let mut receivers = Vec::new();
    let run_id = std::process::id();
    for n in 0..shape.subscribers {
        let (mut stream, mut buf) = connect(url, &format!("bench-sub-{run_id}-{n}")).await?;
        let subscribe = Subscribe {
            packet_id: packet_id(1),
            properties: Default::default(),
            subscriptions: vec![Subscription {
                filter: TopicFilter::new(TOPIC).map_err(|e| anyhow::anyhow!("{e}"))?,
                options: SubscriptionOptions {
                    qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribe,
                },
            }],
        };
        let mut out = BytesMut::new();
        put(&mut out, &Packet::Subscribe(subscribe))?;
        stream.write_all(&out).await?;
        loop {
            if let Some(packet) = parse_server(&mut buf, &limits(), Version::V311)? {
                match packet {
                    Packet::SubAck(_) => break,
                    other => bail!("expected SUBACK, got {other:?}"),
                }
            }
            if stream.read_buf(&mut buf).await? == 0 {
                bail!("the broker closed the subscriber");
            }
        }
        receivers.push(spawn_counter(stream, buf, tally.clone(), scan_mqtt));
    }
    // Subscriptions are in place once each SUBACK arrived; give brokers that
    // confirm before wiring up a moment to finish.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let setup = (scenario, protocol, shape);
    publish_and_finish(setup, params, &tally, receivers, |n, share| {
        let id = format!("bench-pub-{run_id}-{n}");
        async move { publish(url, &id, params.size, share, qos).await }
    })
    .await
}
