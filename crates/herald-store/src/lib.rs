//! herald's durable streams: a JetStream-shaped store.
//!
//! - [`store`]: [`Store`], every stream and consumer under the data
//!   directory, and the routing of acks to consumers.
//! - [`stream`]: [`Stream`], one log with its index, capture of its
//!   subjects, publish checks (expected sequences, de-duplication, limits),
//!   retention, reads, deletes and purges; a writer thread per stream with
//!   group commit.
//! - [`consumer`]: [`Consumer`], pull and push delivery with acks,
//!   redelivery, backoff, dead letters, flow control and heartbeats.
//! - [`log`]: the segment files, their indexes and crash recovery;
//!   [`record`]: what the log holds.
//! - [`dir_lock`]: [`DataDirLock`], one process per data directory.
//! - [`config`], [`consumer_config`], [`info`]: the JetStream JSON shapes;
//!   [`ApiError`]: refusals with JetStream's codes.

pub mod api_error;
pub mod config;
pub mod consumer;
pub mod consumer_config;
pub mod dir_lock;
pub mod error;
pub mod info;
pub mod log;
pub mod record;
mod segment;
mod serde_util;
mod state_file;
pub mod store;
pub mod stream;
pub mod time;

pub use api_error::ApiError;
pub use config::{Discard, Retention, StorageType, StreamConfig};
pub use consumer::{Consumer, ConsumerExport, ConsumerUpdate};
pub use consumer_config::{AckPolicy, ConsumerConfig, DeliverPolicy, ReplayPolicy};
pub use dir_lock::DataDirLock;
pub use error::StoreError;
pub use info::{ConsumerInfo, PubAck, PurgeRequest, SequencePair, StreamInfo, StreamState};
pub use log::{FileLog, LogOptions, LogState, RecoveryReport};
pub use record::{AppliedMark, Location, Record, RecoveredRecord, StoredMessage};
pub use state_file::write_atomic;
pub use store::{CreateAction, Store, SyncPolicy, Usage, generate_name};
pub use stream::Stream;
pub use stream::replica::{ConsumerApplied, Export, Proposal, ProposalAcks, Replicator};
