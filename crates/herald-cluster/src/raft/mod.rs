//! Consensus: openraft groups whose messages ride the routes.
//!
//! A node in a cluster with JetStream runs one **meta group** (every node a
//! voter once it has joined) that holds which replicated streams exist and
//! where they are placed, and one **stream group** per replicated stream it
//! holds a replica of, whose log is that stream's rounds of publishes.
//! Raft's requests travel as `RPC` frames over the route to the peer (a
//! node with no route is unreachable: a partition of routes is a partition
//! of the groups too). Each group's log lives in the data directory under
//! `raft/<group>/` ([`log_store`]).
//!
//! | module | what it owns |
//! | --- | --- |
//! | [`log_store`] | a group's log, vote and purge point on disk |
//! | `network` | Raft's requests as route frames, and their dispatch |
//! | `meta` | the meta group: formation, joining nodes, stream placement |
//! | `stream` | a stream group: the stream as state machine, leadership |

// openraft's storage traits return its `StorageError` by value; the
// helpers that build one do too.
#[allow(clippy::result_large_err)]
pub mod log_store;
#[allow(clippy::result_large_err)]
pub(crate) mod meta;
pub(crate) mod network;
#[allow(clippy::result_large_err)]
pub(crate) mod stream;

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{Headers, Message, Subject};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// herald's Raft types: commands are [`Command`]s, nodes are named.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node's id in every group: derived from its name, which is what the
/// group's membership records (as the node's `addr`).
pub type NodeId = u64;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A running group.
pub type Raft = openraft::Raft<TypeConfig>;

/// The id of the node named `name`.
pub fn node_id(name: &str) -> NodeId {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let mut id = [0; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(id)
}

/// What a group's log holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Meta: a replicated stream, its config (JetStream JSON) and the
    /// nodes holding it, the first of them preferred as leader.
    AddStream {
        /// `StreamConfig` as JSON.
        config: String,
        /// Node names.
        peers: Vec<String>,
    },
    /// Meta: a replicated stream is gone.
    RemoveStream {
        /// Its name.
        name: String,
    },
    /// A replicated stream's new config (JetStream JSON): in its group,
    /// applied by every replica at the same point (limits enforced at the
    /// leader's time); then in the meta group, which records it.
    UpdateStream {
        /// ns since the epoch.
        now: i64,
        /// `StreamConfig` as JSON.
        config: String,
    },
    /// Stream: a purge (JetStream's purge request, JSON) at the leader's time.
    Purge {
        /// ns since the epoch.
        now: i64,
        /// The `PurgeRequest` as JSON.
        request: String,
    },
    /// Stream: one message deleted.
    DeleteMsg {
        /// ns since the epoch.
        now: i64,
        /// Its sequence.
        seq: u64,
    },
    /// Stream: a consumer created or updated (decided on every replica
    /// alike: the same consumers are there at this point of the log).
    ConsumerCreate {
        /// ns since the epoch: its creation time.
        now: i64,
        /// Its name (chosen by the node asked when the request had none).
        name: String,
        /// `ConsumerConfig` as JSON.
        config: String,
        /// 0 create or update, 1 create, 2 update.
        action: u8,
    },
    /// Stream: a consumer deleted through the API (an interest stream drops
    /// what no consumer left wants, at the leader's time).
    ConsumerDelete {
        /// ns since the epoch.
        now: i64,
        /// Its name.
        name: String,
    },
    /// Stream: a consumer's progress (or its removal for inactivity), from
    /// the consumer on the leader.
    Consumer {
        /// ns since the epoch.
        now: i64,
        /// The update.
        update: herald_store::ConsumerUpdate,
    },
    /// Stream: a round of publishes (empty: timed work) at the leader's time.
    Round {
        /// ns since the epoch.
        now: i64,
        /// The publishes.
        messages: Vec<WireMessage>,
    },
}

/// A published message as a stream stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    subject: Bytes,
    headers: Option<Bytes>,
    payload: Bytes,
}

impl WireMessage {
    pub(crate) fn of(msg: &Message) -> Self {
        Self {
            subject: msg.subject.to_bytes(),
            headers: msg.headers.as_ref().map(|h| h.raw().clone()),
            payload: msg.payload.clone(),
        }
    }

    pub(crate) fn message(&self) -> Message {
        let mut msg = Message::new(
            Subject::from_wire_unchecked(self.subject.clone()),
            self.payload.clone(),
        );
        msg.headers = self.headers.clone().map(Headers::from_raw_unchecked);
        msg
    }
}

/// What applying an entry gave, for whoever proposed it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    /// Each publish's outcome, for a stream round (only on the leader,
    /// which sends the acks: not serialized).
    #[serde(skip)]
    pub outcomes: Arc<Vec<Result<herald_store::PubAck, herald_store::ApiError>>>,
    /// A purge's or delete's JetStream answer, as JSON (`{"ok": …}` or
    /// `{"error": …}`), for a proposal forwarded from another node.
    pub answer: Option<String>,
}

impl Applied {
    /// The answer of an operation's outcome.
    pub(crate) fn answer(result: Result<serde_json::Value, herald_store::ApiError>) -> Self {
        let json = match result {
            Ok(value) => serde_json::json!({ "ok": value }),
            Err(error) => serde_json::json!({ "error": error }),
        };
        Self {
            answer: Some(json.to_string()),
            ..Self::default()
        }
    }

    /// The outcome an answer carries.
    pub(crate) fn outcome(
        answer: Option<&str>,
    ) -> Result<serde_json::Value, herald_store::ApiError> {
        let broken = || herald_store::ApiError::new(500, 10003, "no answer from the stream group");
        let mut json: serde_json::Value =
            serde_json::from_str(answer.ok_or_else(broken)?).map_err(|_| broken())?;
        if let Some(error) = json.get("error") {
            return Err(serde_json::from_value(error.clone()).map_err(|_| broken())?);
        }
        Ok(json["ok"].take())
    }
}

/// Where a snapshot being received is written: memory, handed whole to
/// the state machine's install.
pub(crate) fn receiving_buffer() -> Box<std::io::Cursor<Vec<u8>>> {
    Box::new(std::io::Cursor::new(Vec::new()))
}

/// Raft timing for every group: a leader heard from twice a second (also
/// openraft's deadline for one append), an election after one and a half
/// to three silent seconds. With `snapshot_entries`, a
/// snapshot every that many entries and as many kept behind it; without,
/// the whole log is kept (the meta group's, which only grows with streams).
pub(crate) fn raft_config(group: &str, snapshot_entries: Option<u64>) -> Arc<openraft::Config> {
    let snapshot_policy = match snapshot_entries {
        Some(n) => openraft::SnapshotPolicy::LogsSinceLast(n.max(1)),
        None => openraft::SnapshotPolicy::Never,
    };
    let config = openraft::Config {
        cluster_name: group.to_owned(),
        heartbeat_interval: 500,
        election_timeout_min: 1500,
        election_timeout_max: 3000,
        install_snapshot_timeout: 60_000,
        max_payload_entries: 8,
        replication_lag_threshold: 100_000,
        snapshot_policy,
        max_in_snapshot_log_to_keep: snapshot_entries.unwrap_or(1000),
        purge_batch_size: snapshot_entries.unwrap_or(256).clamp(1, 256),
        ..Default::default()
    };
    // Valid by construction (timeouts above the heartbeat).
    Arc::new(config.validate().unwrap_or_default())
}
