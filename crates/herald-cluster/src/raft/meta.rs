//! The meta group and this node's consensus groups.
//!
//! The meta group's state is small — which replicated streams exist, with
//! their config and the nodes holding them — and is kept whole in memory
//! and in `raft/meta/state.json`, rewritten on each applied entry (they are
//! rare: stream creation and deletion).
//!
//! **Formation.** A cluster forms its meta group once at least three nodes
//! are meshed: the node whose name sorts first among them, having seen the
//! same mesh for two seconds and asked each peer that none has a meta group
//! yet, initializes it with all of them. A node that joins later is added by
//! the leader (as learner, then voter). A node restarted keeps its group.
//!
//! **Placement.** A stream asking for R replicas is placed on the node whose
//! API created it and the R-1 others (live voters) whose names sort first;
//! each of them, applying the entry, opens its replica and its stream group
//! (initialized by each with the same members, which openraft allows).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use herald_store::{ApiError, Store, StreamConfig};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, EntryPayload, LogId, StorageError, StorageIOError, StoredMembership};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::log_store::LogStore;
use super::network::{self, Network, op};
use super::{Applied, Command, Entry, NodeId, Raft, TypeConfig, node_id, raft_config};
use crate::cluster::Inner;
use crate::wire::Rpc;

/// The meta group's name on the wire.
const META: &str = "meta";
/// Prefix of a stream group's name.
const STREAM_GROUP: &str = "s:";

type Membership = StoredMembership<NodeId, BasicNode>;

/// Where a replicated stream lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Placement {
    /// Its config, as JetStream JSON.
    pub(crate) config: String,
    /// The nodes holding a replica.
    pub(crate) peers: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MetaData {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    streams: BTreeMap<String, Placement>,
}

/// What applying a meta entry asks this node to do.
enum Change {
    Added(String, Placement),
    Removed(String),
}

struct MetaMachine {
    data: Arc<Mutex<MetaData>>,
    path: PathBuf,
    changes: mpsc::UnboundedSender<Change>,
}

impl MetaMachine {
    fn save(&self, data: &MetaData) -> Result<(), StorageError<NodeId>> {
        super::log_store::write_json(&self.path, data)
    }

    fn snapshot(data: &MetaData) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let bytes = serde_json::to_vec(data).map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: data.applied,
                last_membership: data.membership.clone(),
                snapshot_id: format!("meta-{:?}", data.applied.map(|l| l.index)),
            },
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetaMachine {
    type SnapshotBuilder = MetaSnapshot;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        let data = self.data.lock();
        Ok((data.applied, data.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        let mut data = self.data.lock().clone();
        for entry in entries {
            data.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Membership(m) => {
                    data.membership = Membership::new(Some(entry.log_id), m);
                }
                EntryPayload::Normal(Command::AddStream { config, peers }) => {
                    let name = serde_json::from_str::<StreamConfig>(&config)
                        .map(|c| c.name)
                        .unwrap_or_default();
                    if !name.is_empty() && !data.streams.contains_key(&name) {
                        let placement = Placement { config, peers };
                        data.streams.insert(name.clone(), placement.clone());
                        let _ = self.changes.send(Change::Added(name, placement));
                    }
                }
                EntryPayload::Normal(Command::UpdateStream { config, .. }) => {
                    let name = serde_json::from_str::<StreamConfig>(&config)
                        .map(|c| c.name)
                        .unwrap_or_default();
                    if let Some(placement) = data.streams.get_mut(&name) {
                        placement.config = config;
                    }
                }
                EntryPayload::Normal(Command::RemoveStream { name }) => {
                    if data.streams.remove(&name).is_some() {
                        let _ = self.changes.send(Change::Removed(name));
                    }
                }
                EntryPayload::Blank | EntryPayload::Normal(_) => {}
            }
            out.push(Applied::default());
        }
        self.save(&data)?;
        *self.data.lock() = data;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> MetaSnapshot {
        MetaSnapshot(self.data.lock().clone())
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(super::receiving_buffer())
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let new: MetaData = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        self.save(&new)?;
        let old = std::mem::replace(&mut *self.data.lock(), new.clone());
        for name in old.streams.keys().filter(|n| !new.streams.contains_key(*n)) {
            let _ = self.changes.send(Change::Removed(name.clone()));
        }
        for (name, placement) in &new.streams {
            if !old.streams.contains_key(name) {
                let _ = self
                    .changes
                    .send(Change::Added(name.clone(), placement.clone()));
            }
        }
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let data = self.data.lock().clone();
        if data.applied.is_none() {
            return Ok(None);
        }
        Self::snapshot(&data).map(Some)
    }
}

struct MetaSnapshot(MetaData);

impl RaftSnapshotBuilder<TypeConfig> for MetaSnapshot {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        MetaMachine::snapshot(&self.0)
    }
}

/// This node's consensus groups.
pub(crate) struct Consensus {
    me: String,
    me_id: NodeId,
    dir: PathBuf,
    fsync: bool,
    snapshot_entries: u64,
    store: Store,
    meta: Raft,
    data: Arc<Mutex<MetaData>>,
    streams: Mutex<HashMap<String, Raft>>,
    cluster: Weak<Inner>,
}

impl std::fmt::Debug for Consensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consensus").field("me", &self.me).finish()
    }
}

fn api_error(code: u16, err_code: u16, text: impl Into<String>) -> ApiError {
    ApiError::new(code, err_code, text)
}

/// JetStream's answer when the cluster cannot decide now.
fn unavailable(why: impl std::fmt::Display) -> ApiError {
    api_error(
        503,
        10008,
        format!("JetStream cluster not available: {why}"),
    )
}

impl Consensus {
    /// Opens this node's groups under `dir` (`<data dir>/raft`) and starts
    /// forming or joining the meta group.
    pub(crate) async fn start(
        cluster: Weak<Inner>,
        me: String,
        dir: PathBuf,
        store: Store,
        (fsync, snapshot_entries): (bool, u64),
    ) -> std::io::Result<Arc<Consensus>> {
        let me_id = node_id(&me);
        let meta_dir = dir.join("meta");
        let log = LogStore::open(&meta_dir, fsync)?;
        let data: MetaData = match std::fs::read(meta_dir.join("state.json")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetaData::default(),
            Err(e) => return Err(e),
        };
        let (changes, mut changed) = mpsc::unbounded_channel();
        for (name, placement) in &data.streams {
            let _ = changes.send(Change::Added(name.clone(), placement.clone()));
        }
        let data = Arc::new(Mutex::new(data));
        let machine = MetaMachine {
            data: data.clone(),
            path: meta_dir.join("state.json"),
            changes,
        };
        let network = Network {
            cluster: cluster.clone(),
            group: META.to_owned(),
        };
        let meta = Raft::new(me_id, raft_config(META, None), network, log, machine)
            .await
            .map_err(std::io::Error::other)?;
        let consensus = Arc::new(Consensus {
            me,
            me_id,
            dir,
            fsync,
            snapshot_entries,
            store,
            meta,
            data,
            streams: Mutex::new(HashMap::new()),
            cluster,
        });
        let weak = Arc::downgrade(&consensus);
        tokio::spawn(async move {
            while let Some(change) = changed.recv().await {
                let Some(consensus) = weak.upgrade() else {
                    return;
                };
                match change {
                    Change::Added(name, placement) => {
                        if let Err(e) = consensus.open_stream(&name, &placement).await {
                            tracing::error!(stream = %name, "opening the stream's replica: {e}");
                        }
                    }
                    Change::Removed(name) => consensus.close_stream(&name).await,
                }
            }
        });
        let weak = Arc::downgrade(&consensus);
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            let mut stable = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(consensus) = weak.upgrade() else {
                    return;
                };
                consensus.tend_membership(&mut seen, &mut stable).await;
            }
        });
        Ok(consensus)
    }

    /// Node names with a live route, and this node.
    fn meshed(&self) -> BTreeSet<String> {
        let mut nodes: BTreeSet<String> = self
            .cluster
            .upgrade()
            .map(|c| c.route_nodes())
            .unwrap_or_default()
            .into_iter()
            .collect();
        nodes.insert(self.me.clone());
        nodes
    }

    /// Forms the meta group, or (as its leader) adds nodes that joined.
    async fn tend_membership(&self, seen: &mut BTreeSet<String>, stable: &mut u32) {
        let membership = self.meta.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let nodes = self.meshed();
        if voters.is_empty() {
            *stable = if *seen == nodes { *stable + 1 } else { 0 };
            seen.clone_from(&nodes);
            if nodes.len() < 3 || nodes.first() != Some(&self.me) || *stable < 2 {
                return;
            }
            for node in nodes.iter().filter(|n| **n != self.me) {
                match self.call(node, META, op::STATUS, Bytes::new()).await {
                    Ok(b) if b.first() == Some(&0) => {}
                    _ => return,
                }
            }
            let members: BTreeMap<NodeId, BasicNode> = nodes
                .iter()
                .map(|n| (node_id(n), BasicNode::new(n)))
                .collect();
            tracing::info!(nodes = ?nodes, "forming the JetStream meta group");
            if let Err(e) = self.meta.initialize(members).await {
                tracing::warn!("forming the meta group: {e}");
            }
            return;
        }
        if self.meta.metrics().borrow().current_leader != Some(self.me_id) {
            return;
        }
        for node in nodes {
            let id = node_id(&node);
            if voters.contains(&id) {
                continue;
            }
            tracing::info!(node = %node, "adding a node to the meta group");
            if let Err(e) = self.meta.add_learner(id, BasicNode::new(&node), true).await {
                tracing::warn!(node = %node, "adding to the meta group: {e}");
                return;
            }
            let mut all = voters.clone();
            all.insert(id);
            if let Err(e) = self.meta.change_membership(all, false).await {
                tracing::warn!(node = %node, "making a meta voter: {e}");
            }
            return;
        }
    }

    async fn call(&self, node: &str, group: &str, op: u8, body: Bytes) -> Result<Bytes, String> {
        let inner = self.cluster.upgrade().ok_or("cluster stopped")?;
        inner
            .rpcs
            .call(&inner, node, group, op, body, Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())
    }

    /// Answers a consensus request from a peer.
    pub(crate) async fn answer(&self, rpc: &Rpc) -> Result<Bytes, String> {
        let raft = if rpc.group == META {
            self.meta.clone()
        } else {
            let name = rpc.group.strip_prefix(STREAM_GROUP).unwrap_or_default();
            self.streams
                .lock()
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no group {}", rpc.group))?
        };
        let body = &rpc.body[..];
        match rpc.op {
            op::APPEND => network::run(body, |r| raft.append_entries(r)).await,
            op::VOTE => network::run(body, |r| raft.vote(r)).await,
            op::SNAPSHOT => network::run(body, |r| raft.install_snapshot(r)).await,
            op::PROPOSE => {
                network::run(body, |c: Command| async {
                    raft.client_write(c).await.map(|r| r.data.answer)
                })
                .await
            }
            op::STATUS => {
                let formed = raft.is_initialized().await.unwrap_or(false);
                Ok(Bytes::from_static(if formed { &[1] } else { &[0] }))
            }
            other => Err(format!("unknown consensus op {other}")),
        }
    }

    /// Opens this node's replica of a placed stream and its group.
    async fn open_stream(&self, name: &str, placement: &Placement) -> Result<(), String> {
        if !placement.peers.contains(&self.me) || self.streams.lock().contains_key(name) {
            return Ok(());
        }
        let config: StreamConfig =
            serde_json::from_str(&placement.config).map_err(|e| e.to_string())?;
        // A replica already here is opened as it is: its config is what its
        // group last applied (an update may not have reached the meta group).
        if self.store.stream(name).is_err() {
            self.store
                .create_replica(config)
                .map_err(|e| e.description.clone())?;
        }
        let dir = self.group_dir(name);
        let log = LogStore::open(&dir, self.fsync).map_err(|e| e.to_string())?;
        let machine = super::stream::StreamMachine::open(self.store.clone(), name, dir)
            .map_err(|e| e.to_string())?;
        let group = format!("{STREAM_GROUP}{name}");
        let network = Network {
            cluster: self.cluster.clone(),
            group: group.clone(),
        };
        let snapshots = Some(self.snapshot_entries);
        let raft = Raft::new(
            self.me_id,
            raft_config(&group, snapshots),
            network,
            log,
            machine,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.streams.lock().insert(name.to_owned(), raft.clone());
        let members: BTreeMap<NodeId, BasicNode> = placement
            .peers
            .iter()
            .map(|n| (node_id(n), BasicNode::new(n)))
            .collect();
        if !raft.is_initialized().await.unwrap_or(true)
            && let Err(e) = raft.initialize(members).await
        {
            tracing::debug!(stream = %name, "initializing its group: {e}");
        }
        super::stream::follow_leadership(raft, self.store.clone(), name, self.me_id);
        Ok(())
    }

    async fn close_stream(&self, name: &str) {
        let raft = self.streams.lock().remove(name);
        if let Some(raft) = raft {
            let _ = raft.shutdown().await;
        }
        if let Err(e) = self.store.delete_stream(name) {
            tracing::warn!(stream = %name, "deleting the replica: {}", e.description);
        }
        let _ = std::fs::remove_dir_all(self.group_dir(name));
    }

    fn group_dir(&self, stream: &str) -> PathBuf {
        self.dir.join("streams").join(stream)
    }

    /// Proposes a meta command on the meta leader, wherever it is.
    async fn propose_meta(&self, command: Command) -> Result<(), ApiError> {
        let leader = self.meta.metrics().borrow().current_leader;
        let Some(leader) = leader else {
            return Err(unavailable("no meta leader"));
        };
        if leader == self.me_id {
            return self
                .meta
                .client_write(command)
                .await
                .map(|_| ())
                .map_err(unavailable);
        }
        let name = self
            .node_name(leader)
            .ok_or_else(|| unavailable("meta leader unknown"))?;
        let body = postcard::to_stdvec(&command).map_err(unavailable)?;
        self.call(&name, META, op::PROPOSE, body.into())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Proposes `command` to the group of replicated stream `name`, on its
    /// leader wherever it is; the operation's JetStream answer.
    pub(crate) async fn stream_write(
        &self,
        name: &str,
        command: Command,
    ) -> Result<serde_json::Value, ApiError> {
        let raft = self
            .streams
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| unavailable("this node holds no replica of the stream"))?;
        let leader = raft.metrics().borrow().current_leader;
        let Some(leader) = leader else {
            return Err(unavailable("the stream has no leader"));
        };
        if leader == self.me_id {
            let written = raft.client_write(command).await.map_err(unavailable)?;
            return Applied::outcome(written.data.answer.as_deref());
        }
        let node = {
            let m = raft.metrics().borrow().membership_config.clone();
            m.nodes()
                .find(|(id, _)| **id == leader)
                .map(|(_, n)| n.addr.clone())
        }
        .ok_or_else(|| unavailable("the stream's leader is unknown"))?;
        let body = postcard::to_stdvec(&command).map_err(unavailable)?;
        let group = format!("{STREAM_GROUP}{name}");
        let answer = self
            .call(&node, &group, op::PROPOSE, body.into())
            .await
            .map_err(unavailable)?;
        let answer: Option<String> = postcard::from_bytes(&answer).map_err(unavailable)?;
        Applied::outcome(answer.as_deref())
    }

    fn node_name(&self, id: NodeId) -> Option<String> {
        let membership = self.meta.metrics().borrow().membership_config.clone();
        membership
            .nodes()
            .find(|(n, _)| **n == id)
            .map(|(_, node)| node.addr.clone())
    }

    /// Creates a replicated stream: placed, agreed by the meta group, and
    /// open here with a leader elected. Returns once this node's replica
    /// exists (it is always one of the peers).
    pub(crate) async fn create_stream(&self, config: &StreamConfig) -> Result<(), ApiError> {
        let replicas = usize::try_from(config.num_replicas).unwrap_or(1);
        let existing = self.data.lock().streams.get(&config.name).cloned();
        if let Some(existing) = existing {
            let same =
                serde_json::from_str::<StreamConfig>(&existing.config).is_ok_and(|c| c == *config);
            if !same {
                return Err(api_error(
                    400,
                    10058,
                    "stream name already in use with a different configuration",
                ));
            }
            return self.wait_for_stream(&config.name).await;
        }
        let membership = self.meta.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<String> = membership
            .nodes()
            .filter(|(id, _)| membership.voter_ids().any(|v| v == **id))
            .map(|(_, n)| n.addr.clone())
            .collect();
        if voters.is_empty() {
            return Err(unavailable(
                "the meta group has not formed (it needs 3 nodes)",
            ));
        }
        let live = self.meshed();
        let mut peers = vec![self.me.clone()];
        peers.extend(
            voters
                .iter()
                .filter(|n| **n != self.me && live.contains(*n))
                .take(replicas.saturating_sub(1))
                .cloned(),
        );
        if peers.len() < replicas {
            return Err(api_error(503, 10023, "insufficient resources"));
        }
        let json = serde_json::to_string(config).map_err(unavailable)?;
        self.propose_meta(Command::AddStream {
            config: json,
            peers,
        })
        .await?;
        self.wait_for_stream(&config.name).await
    }

    /// Waits until this node's replica is open and its group has a leader.
    async fn wait_for_stream(&self, name: &str) -> Result<(), ApiError> {
        for _ in 0..100 {
            let raft = self.streams.lock().get(name).cloned();
            if let Some(raft) = raft
                && raft.metrics().borrow().current_leader.is_some()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(unavailable("the stream's group elected no leader in time"))
    }

    /// Updates a replicated stream's config: through its group (every
    /// replica at the same point), then recorded in the meta group.
    pub(crate) async fn update_stream(
        &self,
        config: &StreamConfig,
    ) -> Result<serde_json::Value, ApiError> {
        let json = serde_json::to_string(config).map_err(unavailable)?;
        let command = Command::UpdateStream {
            now: herald_store::time::now_nanos(),
            config: json.clone(),
        };
        let info = self.stream_write(&config.name, command).await?;
        self.propose_meta(Command::UpdateStream {
            now: 0,
            config: json,
        })
        .await?;
        Ok(info)
    }

    /// Deletes a replicated stream everywhere.
    pub(crate) async fn delete_stream(&self, name: &str) -> Result<(), ApiError> {
        self.propose_meta(Command::RemoveStream {
            name: name.to_owned(),
        })
        .await?;
        for _ in 0..50 {
            if !self.streams.lock().contains_key(name) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Whether `name` is a replicated stream this cluster knows.
    pub(crate) fn is_replicated(&self, name: &str) -> bool {
        self.data.lock().streams.contains_key(name)
    }

    /// The nodes holding replicated stream `name`.
    pub(crate) fn placement(&self, name: &str) -> Vec<String> {
        self.data
            .lock()
            .streams
            .get(name)
            .map(|p| p.peers.clone())
            .unwrap_or_default()
    }

    /// JetStream's `cluster` object for a replicated stream held here.
    pub(crate) fn stream_cluster(
        &self,
        cluster_name: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let raft = self.streams.lock().get(name).cloned()?;
        let m = raft.metrics().borrow().clone();
        let name_of = |id: NodeId| {
            m.membership_config
                .nodes()
                .find(|(n, _)| **n == id)
                .map(|(_, node)| node.addr.clone())
        };
        let leader = m.current_leader.and_then(name_of);
        let last = m.last_log_index.unwrap_or(0);
        let replicas: Vec<serde_json::Value> = m
            .membership_config
            .voter_ids()
            .filter(|id| Some(*id) != m.current_leader)
            .map(|id| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map(|l| l.index);
                let lag = matched.map_or(0, |i| last.saturating_sub(i));
                let mut replica = serde_json::json!({
                    "name": name_of(id).unwrap_or_default(),
                    "current": matched.is_some_and(|_| lag == 0) || m.replication.is_none(),
                    "active": 0,
                });
                if matched.is_some() {
                    replica["lag"] = lag.into();
                }
                replica
            })
            .collect();
        let mut cluster = serde_json::json!({ "name": cluster_name, "replicas": replicas });
        if let Some(leader) = leader {
            cluster["leader"] = leader.into();
        }
        Some(cluster)
    }

    /// Where the meta group stands, for `/jsz`-like views and tests.
    pub(crate) fn meta_leader(&self) -> Option<String> {
        let leader = self.meta.metrics().borrow().current_leader?;
        self.node_name(leader)
    }

    /// Stops every group.
    pub(crate) async fn shutdown(&self) {
        let groups: Vec<Raft> = self.streams.lock().drain().map(|(_, r)| r).collect();
        for raft in groups {
            let _ = raft.shutdown().await;
        }
        let _ = self.meta.shutdown().await;
    }
}
