//! Raft's requests as route frames: the asking side (a [`Network`] per
//! group, a [`Peer`] per target node) and the answering side
//! ([`answer`], run for each `RPC` frame a route reads).
//!
//! Bodies are postcard-encoded openraft types. A node with no live route
//! is unreachable; a request unanswered in time is a network error (the
//! route may be slow or cut): openraft retries either way.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{NodeId, TypeConfig};
use crate::cluster::Inner;
use crate::route::Route;
use crate::wire::{self, Frame, Rpc};

/// Op codes of `RPC` frames.
pub(crate) mod op {
    pub(crate) const APPEND: u8 = 1;
    pub(crate) const VOTE: u8 = 2;
    pub(crate) const SNAPSHOT: u8 = 3;
    /// Meta: propose a command on the leader.
    pub(crate) const PROPOSE: u8 = 4;
    /// Meta: has this node a meta group yet?
    pub(crate) const STATUS: u8 = 5;
}

/// Requests this node is waiting on.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, String>>>>,
}

impl Pending {
    /// Sends a request to `node` over its route and waits for the answer.
    pub(crate) async fn call(
        &self,
        inner: &Inner,
        node: &str,
        group: &str,
        op: u8,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let route = inner.route_to(node).ok_or(CallError::Unreachable)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        send(&route, &body, |b| {
            wire::encode_rpc_head(b, id, op, group, body.len())
        });
        let answer = tokio::time::timeout(timeout, rx).await;
        self.waiting.lock().remove(&id);
        match answer {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(text))) => Err(CallError::Refused(text)),
            Ok(Err(_)) | Err(_) => Err(CallError::TimedOut),
        }
    }

    /// Hands an answer to whoever waits for it.
    pub(crate) fn answered(&self, id: u64, body: Result<Bytes, String>) {
        if let Some(tx) = self.waiting.lock().remove(&id) {
            let _ = tx.send(body);
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("no route to the node")]
    Unreachable,
    #[error("no answer in time")]
    TimedOut,
    #[error("{0}")]
    Refused(String),
}

/// A group's way to its peers.
pub(crate) struct Network {
    pub(crate) cluster: std::sync::Weak<Inner>,
    pub(crate) group: String,
}

/// One peer of a group.
pub(crate) struct Peer {
    cluster: std::sync::Weak<Inner>,
    group: String,
    node: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            cluster: self.cluster.clone(),
            group: self.group.clone(),
            node: node.addr.clone(),
        }
    }
}

type Failed<E> = RPCError<NodeId, BasicNode, E>;

impl Peer {
    async fn ask<Q: serde::Serialize, A: serde::de::DeserializeOwned, E: std::error::Error>(
        &self,
        op: u8,
        request: &Q,
        timeout: Duration,
    ) -> Result<A, Failed<E>> {
        let inner = self
            .cluster
            .upgrade()
            .ok_or_else(|| unreachable("cluster stopped"))?;
        let body = postcard::to_stdvec(request).map_err(|e| network(&e.to_string()))?;
        let answer = inner
            .rpcs
            .call(&inner, &self.node, &self.group, op, body.into(), timeout)
            .await;
        match answer {
            Ok(bytes) => postcard::from_bytes(&bytes).map_err(|e| network(&e.to_string())),
            Err(CallError::Unreachable) => Err(unreachable("no route")),
            Err(e) => Err(network(&e.to_string())),
        }
    }
}

fn unreachable<E: std::error::Error>(why: &str) -> Failed<E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why.to_owned())))
}

fn network<E: std::error::Error>(why: &str) -> Failed<E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(why.to_owned())))
}

/// Raft's own bound, or two seconds.
fn timeout_of(option: &RPCOption) -> Duration {
    option.hard_ttl().max(Duration::from_secs(2))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Failed<RaftError<NodeId>>> {
        self.ask(op::APPEND, &rpc, timeout_of(&option)).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Failed<RaftError<NodeId, InstallSnapshotError>>>
    {
        self.ask(
            op::SNAPSHOT,
            &rpc,
            timeout_of(&option).max(Duration::from_secs(30)),
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Failed<RaftError<NodeId>>> {
        self.ask(op::VOTE, &rpc, timeout_of(&option)).await
    }
}

/// Answers one `RPC` frame from `route`'s peer.
pub(crate) async fn answer(inner: Arc<Inner>, route: Arc<Route>, rpc: Rpc) {
    let body = if rpc.group == crate::api::API_GROUP {
        crate::api::answer(&inner, &rpc.body).await
    } else {
        match inner.consensus() {
            Some(consensus) => consensus.answer(&rpc).await,
            None => Err("this node runs no consensus groups".to_owned()),
        }
    };
    match body {
        Ok(body) => send(&route, &body, |b| {
            wire::encode_rpc_reply_head(b, rpc.id, true, body.len());
        }),
        Err(text) => {
            let frame = Frame::RpcReply {
                id: rpc.id,
                body: Err(text),
            };
            route
                .outbox
                .push_control(|b| wire::encode_control(b, &frame));
        }
    }
}

/// Queues a frame whose head `head` writes and whose body is `body`: a
/// large body (a batch of a stream's rounds) is written to the socket from
/// where it is, not copied into the outbox.
fn send(route: &Route, body: &Bytes, head: impl FnOnce(&mut bytes::BytesMut)) {
    let mut ctx = herald_core::DeliveryCtx::new();
    let _ = route.outbox.push_message(&mut ctx, 64 + body.len(), |w| {
        head(w.buf());
        w.put_payload(body);
    });
}

/// Decodes a request, runs it, encodes the answer.
pub(crate) async fn run<Q, A, E, F>(body: &[u8], f: impl FnOnce(Q) -> F) -> Result<Bytes, String>
where
    Q: serde::de::DeserializeOwned,
    A: serde::Serialize,
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<A, E>>,
{
    let request: Q = postcard::from_bytes(body).map_err(|e| format!("bad request: {e}"))?;
    let answer = f(request).await.map_err(|e| e.to_string())?;
    postcard::to_stdvec(&answer)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}
