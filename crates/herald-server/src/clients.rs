//! Every client connection the server has open (and the last closed ones),
//! with what monitoring reports about each: nats-server's `/connz`.
//!
//! A connection's [`ClientRecord`] is made by its `ClientPort` and leaves
//! the open set when the port is dropped; counters are atomics the
//! connection bumps as it reads, its outbox counts what it was sent.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use herald_core::{CloseReason, ConnId, Outbox};
use parking_lot::Mutex;

/// Closed connections kept for `/connz?state=closed` (nats-server's default).
const CLOSED_KEPT: usize = 10_000;

/// The protocol a client speaks, as `/connz` reports it in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// NATS over TCP.
    Nats,
    /// NATS over WebSocket (`/nats`).
    NatsWebSocket,
    /// Redis (RESP).
    Redis,
    /// MQTT over TCP.
    Mqtt,
    /// MQTT over WebSocket (`/mqtt`).
    MqttWebSocket,
}

impl ClientKind {
    /// `type` in `/connz` (nats-server says `nats`, `websocket`, `mqtt`).
    pub fn type_name(self) -> &'static str {
        match self {
            ClientKind::Nats => "nats",
            ClientKind::NatsWebSocket => "websocket",
            ClientKind::Redis => "redis",
            ClientKind::Mqtt | ClientKind::MqttWebSocket => "mqtt",
        }
    }

    /// `protocol`, herald's addition: which of its protocols.
    pub fn protocol(self) -> &'static str {
        match self {
            ClientKind::Nats | ClientKind::NatsWebSocket => "nats",
            ClientKind::Redis => "redis",
            ClientKind::Mqtt | ClientKind::MqttWebSocket => "mqtt",
        }
    }
}

/// What a client said about itself, and who it is.
#[derive(Debug, Clone, Default)]
pub struct ClientDescription {
    /// NATS `CONNECT` name, Redis `CLIENT SETNAME`.
    pub name: Option<String>,
    /// NATS `CONNECT` lang.
    pub lang: Option<String>,
    /// NATS `CONNECT` version.
    pub version: Option<String>,
    /// The authenticated user.
    pub user: Option<String>,
    /// The MQTT client id.
    pub mqtt_client: Option<String>,
}

/// One connection, as monitoring sees it.
#[derive(Debug)]
pub struct ClientRecord {
    /// The broker's connection id (`cid`).
    pub cid: u64,
    /// Its protocol.
    pub kind: ClientKind,
    /// The client's address.
    pub addr: SocketAddr,
    /// When it connected (ns since the epoch).
    pub start: i64,
    last_activity: AtomicI64,
    in_msgs: AtomicU64,
    in_bytes: AtomicU64,
    outbox: Arc<Outbox>,
    description: Mutex<ClientDescription>,
}

impl ClientRecord {
    /// Counts what a read batch received from the client (counted by the
    /// connection as it goes, added here once per batch).
    pub fn received(&self, msgs: u64, bytes: u64) {
        self.in_msgs.fetch_add(msgs, Ordering::Relaxed);
        self.in_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_activity
            .store(herald_store::time::now_nanos(), Ordering::Relaxed);
    }

    /// Messages and bytes received from the client.
    pub fn received_totals(&self) -> (u64, u64) {
        (
            self.in_msgs.load(Ordering::Relaxed),
            self.in_bytes.load(Ordering::Relaxed),
        )
    }

    /// Messages and (frame) bytes sent to the client.
    pub fn sent_totals(&self) -> (u64, u64) {
        self.outbox.delivered()
    }

    /// Bytes waiting to be written to the client.
    pub fn pending_bytes(&self) -> usize {
        self.outbox.pending_bytes()
    }

    /// When the client last published (its start if never), ns since the epoch.
    pub fn last_activity(&self) -> i64 {
        self.last_activity.load(Ordering::Relaxed)
    }

    /// Updates what the client said about itself.
    pub fn describe(&self, update: impl FnOnce(&mut ClientDescription)) {
        update(&mut self.description.lock());
    }

    /// What the client said about itself.
    pub fn description(&self) -> ClientDescription {
        self.description.lock().clone()
    }

    /// Why it closed, in nats-server's words.
    fn close_reason(&self) -> &'static str {
        match self.outbox.closed() {
            Some(CloseReason::SlowConsumer) => "Slow Consumer (Pending Bytes)",
            Some(CloseReason::Shutdown) => "Server Shutdown",
            _ => "Client Closed",
        }
    }
}

/// A closed connection: what it was and how it ended.
#[derive(Debug, Clone)]
pub struct ClosedClient {
    /// The connection as it was when it closed.
    pub client: ClientSnapshot,
    /// When it closed (ns since the epoch).
    pub stop: i64,
    /// Why, in nats-server's words.
    pub reason: &'static str,
    /// Its subscriptions when it closed.
    pub subscriptions: Vec<String>,
}

/// A connection's numbers at one moment (what a closed one keeps: not its
/// outbox, whose buffers could be large).
#[derive(Debug, Clone)]
pub struct ClientSnapshot {
    /// `cid`.
    pub cid: u64,
    /// Its protocol.
    pub kind: ClientKind,
    /// The client's address.
    pub addr: SocketAddr,
    /// When it connected (ns since the epoch).
    pub start: i64,
    /// When it last published (ns since the epoch).
    pub last_activity: i64,
    /// Messages and bytes received from it.
    pub received: (u64, u64),
    /// Messages and (frame) bytes sent to it.
    pub sent: (u64, u64),
    /// Bytes waiting to be written to it.
    pub pending_bytes: usize,
    /// What it said about itself.
    pub description: ClientDescription,
}

impl ClientRecord {
    /// Its numbers now.
    pub fn snapshot(&self) -> ClientSnapshot {
        ClientSnapshot {
            cid: self.cid,
            kind: self.kind,
            addr: self.addr,
            start: self.start,
            last_activity: self.last_activity(),
            received: self.received_totals(),
            sent: self.sent_totals(),
            pending_bytes: self.pending_bytes(),
            description: self.description(),
        }
    }
}

/// Open and recently closed client connections.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    open: Mutex<BTreeMap<u64, Arc<ClientRecord>>>,
    closed: Mutex<VecDeque<ClosedClient>>,
}

impl ClientRegistry {
    /// Registers a new connection.
    pub fn open(
        &self,
        id: ConnId,
        kind: ClientKind,
        addr: SocketAddr,
        outbox: Arc<Outbox>,
    ) -> Arc<ClientRecord> {
        let now = herald_store::time::now_nanos();
        let record = Arc::new(ClientRecord {
            cid: id.0,
            kind,
            addr,
            start: now,
            last_activity: AtomicI64::new(now),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            outbox,
            description: Mutex::new(ClientDescription::default()),
        });
        self.open.lock().insert(id.0, record.clone());
        record
    }

    /// Moves a connection to the closed ones (unless a newer connection
    /// took its id: an MQTT session resumed elsewhere keeps its cid).
    pub fn close(&self, record: &Arc<ClientRecord>, subscriptions: Vec<String>) {
        {
            let mut open = self.open.lock();
            match open.get(&record.cid) {
                Some(current) if Arc::ptr_eq(current, record) => {
                    open.remove(&record.cid);
                }
                _ => return,
            }
        }
        let mut client = record.snapshot();
        client.pending_bytes = 0;
        let mut closed = self.closed.lock();
        if closed.len() == CLOSED_KEPT {
            closed.pop_front();
        }
        closed.push_back(ClosedClient {
            client,
            stop: herald_store::time::now_nanos(),
            reason: record.close_reason(),
            subscriptions,
        });
    }

    /// The open connections, by cid.
    pub fn open_clients(&self) -> Vec<Arc<ClientRecord>> {
        self.open.lock().values().cloned().collect()
    }

    /// How many are open.
    pub fn open_count(&self) -> usize {
        self.open.lock().len()
    }

    /// The closed connections kept, oldest first.
    pub fn closed_clients(&self) -> Vec<ClosedClient> {
        self.closed.lock().iter().cloned().collect()
    }
}
