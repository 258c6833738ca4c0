//! herald-bench: scenarios driven through real client crates, and the
//! side-by-side comparison of herald with nats-server and redis-server.
//!
//! | module | what it owns |
//! | --- | --- |
//! | [`scenario`] | scenarios, parameters, outcomes |
//! | [`nats`] | scenarios over NATS (async-nats) |
//! | [`raw_nats`] | NATS throughput scenarios with a lean client of our own |
//! | [`mqtt`] | MQTT throughput scenarios (QoS 0 and 1) with a lean client on herald's codec |
//! | [`jetstream`] | stream scenarios: persisted publish with acks, pull consume with acks |
//! | [`redis`] | scenarios over Redis pub/sub (redis crate) |
//! | [`redis_benchmark`] | `redis-benchmark` PUBLISH runs with server and client CPU |
//! | [`noop_redis`] | a Redis endpoint that only answers: the client-bound ceiling |
//! | [`raw_redis`] | Redis throughput scenarios with a lean client of our own |
//! | [`wire_scan`] | the lean clients' counting scanners (NATS and RESP) |
//! | [`servers`] | server processes, memory, idle connections |
//! | [`stuck`] | subscribers that stop reading, next to a healthy one |
//! | [`compare`] | the interleaved comparison |
//! | [`passes`] | its async-nats, stream-size and stuck-subscriber passes |
//! | [`summary`] | its markdown summary |
//! | [`chart`] | the PNG chart |

pub mod chart;
pub mod compare;
pub mod jetstream;
pub mod mqtt;
pub mod nats;
pub mod noop_redis;
pub mod passes;
pub mod raw_nats;
pub mod raw_redis;
pub mod redis;
pub mod redis_benchmark;
pub mod scenario;
pub mod servers;
pub mod stuck;
pub mod summary;
pub mod wire_scan;
