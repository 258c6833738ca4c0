//! Persistent sessions on disk: one small JSON file per session under
//! `<data dir>/mqtt/sessions/`, named by a digest of the client id, replaced atomically
//! (write a temporary file, fsync, rename, fsync the directory), as herald-store writes
//! its state files.
//!
//! A file holds what a session must not lose across a restart: its owner, expiry and
//! disconnection time, subscriptions with their options, the unacknowledged QoS 1/2
//! messages with their packet ids and stage, the queued messages, the QoS 2 ids awaiting
//! `PUBREL`, and a pending Will. Only sessions that outlive their connection (Session
//! Expiry Interval > 0, or 3.1.1 clean session 0) have one.
//!
//! Changes are saved by one task, shortly after they happen ([`SAVE_DELAY`]), many changes
//! of a session sharing one write; shutdown saves whatever is left. So a graceful restart
//! loses nothing, and a crash loses at most the last fraction of a second of session
//! changes (mosquitto, by comparison, saves every 30 minutes and at shutdown).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use herald_protocol::mqtt::{
    PacketId, QoS, RetainHandling, SubscriptionId, SubscriptionOptions, TopicName,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::delivery::Outgoing;
use super::retained::{decode_props, encode_props};
use super::session::{Inflight, Session, Stage, State, Will, WillState};

/// How long a change waits before it is written, so a burst of messages costs one write.
pub(super) const SAVE_DELAY: Duration = Duration::from_millis(50);

/// A session as its file holds it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SessionFile {
    pub(super) client_id: String,
    pub(super) user: String,
    /// Session Expiry Interval (s); 4294967295 = never.
    pub(super) expiry: u32,
    /// When its last connection ended (ms since the epoch); absent if it was connected
    /// when saved (the restart then counts as the disconnection).
    #[serde(default)]
    pub(super) disconnected_at: Option<u64>,
    pub(super) next_pid: u16,
    #[serde(default)]
    pub(super) subscriptions: Vec<SubscriptionFile>,
    #[serde(default)]
    pub(super) inflight: Vec<InflightFile>,
    #[serde(default)]
    pub(super) queued: Vec<MessageFile>,
    #[serde(default)]
    pub(super) incoming_qos2: Vec<u16>,
    #[serde(default)]
    pub(super) will: Option<WillFile>,
}

/// One subscription.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SubscriptionFile {
    pub(super) filter: String,
    pub(super) qos: u8,
    #[serde(default)]
    pub(super) no_local: bool,
    #[serde(default)]
    pub(super) retain_as_published: bool,
    #[serde(default)]
    pub(super) retain_handling: u8,
    #[serde(default)]
    pub(super) id: Option<u32>,
}

/// A message sent and not acknowledged.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct InflightFile {
    pub(super) pid: u16,
    /// `PUBREL` was sent (waiting for `PUBCOMP`).
    #[serde(default)]
    pub(super) released: bool,
    pub(super) message: MessageFile,
}

/// A message to the client.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct MessageFile {
    pub(super) topic: String,
    /// Base64.
    pub(super) payload: String,
    pub(super) qos: u8,
    #[serde(default)]
    pub(super) retain: bool,
    /// MQTT 5 properties, base64 (see `retained::encode_props`).
    #[serde(default)]
    pub(super) props: Option<String>,
    #[serde(default)]
    pub(super) sub_id: Option<u32>,
    #[serde(default)]
    pub(super) expires_at: Option<u64>,
}

/// A Will waiting for its delay (or for the connection that owns it, if saved while the
/// client was connected).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WillFile {
    pub(super) message: MessageFile,
    #[serde(default)]
    pub(super) expiry_interval: Option<u32>,
    #[serde(default)]
    pub(super) delay: u32,
    #[serde(default)]
    pub(super) due: Option<u64>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl MessageFile {
    fn from_outgoing(out: &Outgoing) -> Self {
        Self {
            topic: out.topic.as_str().to_owned(),
            payload: b64().encode(&out.payload),
            qos: out.qos.bits(),
            retain: out.retain,
            props: out.props.as_deref().and_then(encode_props),
            sub_id: out.sub_id.map(SubscriptionId::get),
            expires_at: out.expires_at,
        }
    }

    fn to_outgoing(&self) -> Option<Outgoing> {
        Some(Outgoing {
            topic: TopicName::new(&self.topic).ok()?,
            payload: Bytes::from(b64().decode(&self.payload).ok()?),
            qos: QoS::from_bits(self.qos)?,
            retain: self.retain,
            props: self.props.as_deref().and_then(decode_props).map(Arc::new),
            sub_id: self.sub_id.and_then(SubscriptionId::new),
            expires_at: self.expires_at,
        })
    }
}

impl SessionFile {
    /// The file for a session's state.
    pub(super) fn from_state(client_id: &str, state: &State) -> Self {
        let will = state.will.as_ref().map(|w| WillFile {
            message: MessageFile::from_outgoing(&Outgoing {
                topic: w.will.topic.clone(),
                payload: w.will.payload.clone(),
                qos: w.will.qos,
                retain: w.will.retain,
                props: w.will.props.clone(),
                sub_id: None,
                expires_at: None,
            }),
            expiry_interval: w.will.expiry_interval,
            delay: w.will.delay,
            due: w.due,
        });
        Self {
            client_id: client_id.to_owned(),
            user: state.user.clone(),
            expiry: state.expiry,
            disconnected_at: state.disconnected_at.filter(|_| state.link.is_none()),
            next_pid: state.next_pid,
            subscriptions: state
                .subs
                .values()
                .map(|entry| SubscriptionFile {
                    filter: entry.filter.as_str().to_owned(),
                    qos: entry.options.qos.bits(),
                    no_local: entry.options.no_local,
                    retain_as_published: entry.options.retain_as_published,
                    retain_handling: entry.options.retain_handling as u8,
                    id: entry.id.map(SubscriptionId::get),
                })
                .collect(),
            inflight: state
                .inflight
                .iter()
                .map(|f| InflightFile {
                    pid: f.pid.get(),
                    released: f.stage == Stage::Released,
                    message: MessageFile::from_outgoing(&f.msg),
                })
                .collect(),
            queued: state.queue.iter().map(MessageFile::from_outgoing).collect(),
            incoming_qos2: state.incoming.iter().copied().collect(),
            will,
        }
    }

    /// Fills a restored session's messages, ids and Will (subscriptions are the caller's:
    /// they need the broker).
    /// `requester` is the session's user, whom a restored Will speaks for.
    pub(super) fn restore_into(&self, state: &mut State, requester: &herald_core::Requester) {
        state.next_pid = self.next_pid.max(1);
        state.inflight = self
            .inflight
            .iter()
            .filter_map(|f| {
                Some(Inflight {
                    pid: PacketId::new(f.pid)?,
                    msg: f.message.to_outgoing()?,
                    stage: if f.released {
                        Stage::Released
                    } else {
                        Stage::Published
                    },
                })
            })
            .collect();
        state.queue = self
            .queued
            .iter()
            .filter_map(MessageFile::to_outgoing)
            .collect();
        state.incoming = self.incoming_qos2.iter().copied().collect();
        state.will = self.will.as_ref().and_then(|w| {
            let out = w.message.to_outgoing()?;
            let subject = herald_protocol::mqtt::topic_to_subject(&out.topic).ok()?;
            Some(WillState {
                will: Will {
                    subject: herald_core::Subject::new(&subject).ok()?,
                    topic: out.topic,
                    payload: out.payload,
                    qos: out.qos,
                    retain: out.retain,
                    props: out.props,
                    expiry_interval: w.expiry_interval,
                    delay: w.delay,
                    requester: requester.clone(),
                },
                // A Will saved while its connection was up: the restart lost that
                // connection, so it is due after its delay from now.
                due: Some(
                    w.due
                        .unwrap_or_else(|| super::delivery::now_ms() + u64::from(w.delay) * 1000),
                ),
            })
        });
    }

    /// The options of a saved subscription.
    pub(super) fn options(sub: &SubscriptionFile) -> Option<SubscriptionOptions> {
        Some(SubscriptionOptions {
            qos: QoS::from_bits(sub.qos)?,
            no_local: sub.no_local,
            retain_as_published: sub.retain_as_published,
            retain_handling: RetainHandling::from_bits(sub.retain_handling)?,
        })
    }
}

/// Writes session files, shortly after sessions change.
#[derive(Debug)]
pub(crate) struct Saver {
    dir: PathBuf,
    queue: Mutex<Vec<Arc<Session>>>,
    wake: Notify,
}

impl Saver {
    /// A saver for `dir` (created if missing).
    pub(super) fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            queue: Mutex::new(Vec::new()),
            wake: Notify::new(),
        })
    }

    /// Queues `session` for a save (its `dirty` flag was just set).
    pub(super) fn enqueue(&self, session: Arc<Session>) {
        self.queue.lock().push(session);
        self.wake.notify_one();
    }

    fn path(&self, client_id: &str) -> PathBuf {
        let digest = sha2::Sha256::digest(client_id.as_bytes());
        let mut name = String::with_capacity(69);
        for byte in digest {
            name.push_str(&format!("{byte:02x}"));
        }
        name.push_str(".json");
        self.dir.join(name)
    }

    /// Saves changes until `stop` is cancelled.
    pub(super) async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(SAVE_DELAY) => {}
            }
            self.flush().await;
        }
    }

    /// Writes every queued session now: its state file, or its removal once the session
    /// ended or stopped outliving its connection. Sessions are taken in the order they
    /// changed, so a client id's ended session is removed before its new one is written.
    pub(super) async fn flush(self: &Arc<Self>) {
        let sessions = std::mem::take(&mut *self.queue.lock());
        if sessions.is_empty() {
            return;
        }
        let writes: Vec<(PathBuf, Option<Vec<u8>>)> = sessions
            .iter()
            .map(|session| {
                session.dirty.store(false, Ordering::Release);
                let state = session.state.lock();
                let file = (!state.ended && state.expiry > 0)
                    .then(|| SessionFile::from_state(&session.client_id, &state));
                drop(state);
                let body = file.and_then(|f| serde_json::to_vec(&f).ok());
                session.on_disk.store(body.is_some(), Ordering::Relaxed);
                (self.path(&session.client_id), body)
            })
            .collect();
        let result = tokio::task::spawn_blocking(move || {
            for (path, body) in writes {
                let outcome = match body {
                    Some(body) => {
                        herald_store::write_atomic(&path, &body).map_err(|e| e.to_string())
                    }
                    None => match std::fs::remove_file(&path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                        _ => Ok(()),
                    },
                };
                if let Err(error) = outcome {
                    tracing::error!(%error, path = %path.display(), "cannot save an MQTT session");
                }
            }
        })
        .await;
        if let Err(error) = result {
            tracing::error!(%error, "MQTT session saver failed");
        }
    }

    /// Reads every session file (blocking). Files that cannot be read are logged and
    /// moved aside (`.bad`), so one damaged file never stops the server.
    pub(super) fn load(&self) -> Vec<SessionFile> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                // Leftover temporary files of an interrupted write.
                if path.extension().and_then(|e| e.to_str()) == Some("tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|body| {
                    serde_json::from_slice::<SessionFile>(&body).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(file) => files.push(file),
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "unreadable MQTT session file; set aside");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        files
    }
}
