//! herald's cluster: several herald nodes acting as one broker.
//!
//! Each node keeps a route (one TCP connection) to every other node, a full
//! mesh learned from the configured peers and from what they tell of theirs.
//! Over a route a node announces its interests — every subscription of
//! every protocol, counted so a pattern is announced once however many
//! subscribe it — with a full snapshot when the route opens, and forwards a
//! published message only to the nodes interested in its subject, once per
//! node. A message that arrived over a route is delivered to local
//! subscribers only (one hop). A queue group spanning nodes gets each
//! message once: a member on the publishing node is preferred, otherwise one
//! node is chosen and delivers to one of its members.
//!
//! | module | what it owns |
//! | --- | --- |
//! | [`wire`] | the route protocol's frames, sans I/O |
//! | `route` | one route: its sink, the peer's interests as route subscriptions |
//! | `cluster` | the mesh: dialing, handshake, registration, interest counting |
//! | `api` | JetStream API requests carried to the node holding the stream |
//! | [`raft`] | consensus: the meta group and replicated streams on openraft |

mod api;
mod cluster;
pub mod raft;
mod route;
pub mod wire;

pub use api::{ApiFuture, ApiReply, ApiRequest, ApiResponder};
pub use cluster::{Cluster, ClusterConfig, RouteSummary, RouteTls};
pub use route::ExtensionCodec;
