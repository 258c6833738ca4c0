//! A raw MQTT client for tests: herald's own codec on the client side, packet by packet
//! (used by the raw, differential and tools tests).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use herald_protocol::mqtt::{
    ConnAck, Connect, ConnectProperties, MqttLimits, Packet, PacketId, Publish, QoS, QosPid,
    ReasonCode, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
    TopicName, Version, encode, parse_server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::raw::PATIENCE;

/// A raw MQTT connection: packets out with `encode`, packets in with `parse_server`.
pub struct RawMqtt {
    stream: TcpStream,
    buf: BytesMut,
    /// The version packets are encoded and decoded in.
    pub version: Version,
}

/// Shorthand for a packet id.
pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero packet id")
}

/// Shorthand for a topic name.
pub fn topic(s: &str) -> TopicName {
    TopicName::new(s).expect("valid topic")
}

/// A `CONNECT` with everything off: clean start, no Will, no credentials.
pub fn connect_packet(version: Version, client_id: &str) -> Connect {
    Connect {
        version,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

/// A `SUBSCRIBE` of one filter.
pub fn subscribe_packet(id: u16, filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        properties: SubscribeProperties::default(),
        subscriptions: vec![Subscription {
            filter: TopicFilter::new(filter).expect("valid filter"),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }],
    })
}

/// A `PUBLISH` at `qos` (id `id` when QoS > 0).
pub fn publish_packet(name: &str, payload: &str, qos: QoS, id: u16) -> Packet {
    let mut publish = Publish::new(topic(name), Bytes::copy_from_slice(payload.as_bytes()));
    publish.qos = match qos {
        QoS::AtMostOnce => QosPid::AtMostOnce,
        QoS::AtLeastOnce => QosPid::AtLeastOnce(pid(id)),
        QoS::ExactlyOnce => QosPid::ExactlyOnce(pid(id)),
    };
    Packet::Publish(publish)
}

impl RawMqtt {
    /// Opens a TCP connection; nothing is sent.
    pub async fn open(addr: SocketAddr, version: Version) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    /// Connects with `connect` and returns the `CONNACK`.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let mut client = Self::open(addr, connect.version).await;
        client.send(&Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Some(Packet::ConnAck(connack)) => (client, *connack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects a clean session with `client_id` and checks it is accepted.
    pub async fn connected(addr: SocketAddr, version: Version, client_id: &str) -> Self {
        let (client, connack) = Self::connect(addr, connect_packet(version, client_id)).await;
        assert_eq!(connack.reason_code, ReasonCode::Success, "{connack:?}");
        client
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        encode(&mut out, self.version, packet).expect("encodable");
        self.send_bytes(&out).await;
    }

    /// Sends bytes as they are (the server may have closed already).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next packet; `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        let limits = MqttLimits {
            max_packet_size: MqttLimits::PROTOCOL_MAX_PACKET_SIZE,
        };
        loop {
            match parse_server(&mut self.buf, &limits, self.version) {
                Ok(Some(packet)) => return Some(packet),
                Ok(None) => {}
                Err(error) => panic!("server sent an invalid packet: {error}"),
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("no packet within {PATIENCE:?}"),
            }
        }
    }

    /// The next packet, which must be a `PUBLISH`.
    pub async fn publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(publish)) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Sends `PINGREQ` and returns every packet before the `PINGRESP`: all the server had
    /// to say about what was sent before (it answers in order). Panics if the server closes
    /// first.
    pub async fn until_ping(&mut self) -> Vec<Packet> {
        let (packets, answered) = self.until_ping_or_closed().await;
        assert!(
            answered,
            "the server closed instead of answering PINGREQ: {packets:?}"
        );
        packets
    }

    /// [`RawMqtt::until_ping`] for scripts where the server may close: the packets before
    /// the `PINGRESP` or the close, and whether the `PINGRESP` came.
    pub async fn until_ping_or_closed(&mut self) -> (Vec<Packet>, bool) {
        self.send(&Packet::PingReq).await;
        let mut packets = Vec::new();
        while let Some(packet) = self.recv().await {
            if packet == Packet::PingResp {
                return (packets, true);
            }
            packets.push(packet);
        }
        (packets, false)
    }

    /// Waits for the server to close, returning what it sent first.
    pub async fn until_closed(&mut self) -> Vec<Packet> {
        let mut packets = Vec::new();
        while let Some(packet) = self.recv().await {
            packets.push(packet);
        }
        packets
    }
}
