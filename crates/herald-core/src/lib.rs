//! herald's broker as a library: subjects, the subject index, publish and
//! subscribe, queue groups and request/reply — no sockets, no files, no
//! wire protocol.
//!
//! | module | what it owns |
//! | --- | --- |
//! | [`subject`] | [`Subject`], [`Pattern`], [`QueueName`]: validation, tokens, wildcards |
//! | [`index`] | [`SubjectIndex`]: the token trie with a cache of match results |
//! | [`glob`] | Redis-style glob matching for pattern subscriptions |
//! | [`channels`] | Redis's exact, shard and glob subscription tables beside the trie |
//! | [`message`] | [`Message`] and [`Headers`] (a NATS header block), payloads as shared `Bytes` |
//! | [`broker`] | [`Broker`]: publish, subscribe, queue groups, request/reply, flush |
//! | [`sink`] | [`Subscriber`] and the [`Sink`] trait every receiver implements; slow-consumer policy |
//! | [`subscription`] | [`Subscription`]: an in-process subscriber as a `Stream` of messages |
//! | [`outbox`] | [`Outbox`]: a connection's bounded, coalescing output queue |
//! | [`stats`] | counters for metrics |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), herald_core::Error> {
//! use futures::StreamExt;
//! let broker = herald_core::Broker::new();
//! let mut orders = broker.subscribe("orders.>")?;
//! broker.publish("orders.eu.created", "order 1")?;
//! let msg = orders.next().await.expect("a message");
//! assert_eq!(msg.payload, "order 1");
//! # Ok(()) }
//! ```

pub mod broker;
pub mod channels;
pub mod error;
pub mod filter;
pub mod glob;
pub mod index;
pub mod interest;
pub mod message;
pub mod outbox;
pub mod perm;
pub mod sink;
pub mod stats;
pub mod subject;
pub mod subscription;
pub mod timings;

pub use broker::{Broker, BrokerConfig, InterestObserver, LOCAL_CONN, Publisher, SubscribeOptions};
pub use error::Error;
pub use filter::{FilterError, HeaderFilter};
pub use index::{MatchResult, QueueGroupMatch, RoutingStats, SubjectIndex};
pub use interest::InterestWaiter;
pub use message::{Extension, HeaderError, Headers, HeadersBuilder, Message};
pub use outbox::{FrameWriter, Outbox, OutboxBatch, SoftLimit, wait_for_room_all};
pub use perm::{MQTT_RETAINED_PREFIX, Permissions, Requester, Rules};
pub use sink::{
    CloseReason, ConnId, Deferred, Delivery, DeliveryCtx, Interest, PendingLimits, Sink,
    SlowConsumerPolicy, SubId, SubscribeSpec, Subscriber,
};
pub use stats::StatsSnapshot;
pub use subject::{Pattern, QueueName, Subject, SubjectError};
pub use subscription::{JsonSubscription, Subscription};
pub use timings::{HistogramSnapshot, LatencyHistogram, Timings};
