//! herald's integration tests: one binary, one module per protocol or concern.
//! Every test starts a real server on ephemeral ports and talks to it with
//! real, independent clients (and raw bytes for edge cases).

// The harness in `common` is shared by every test module of this one binary.
#![allow(unreachable_pub)]

mod auth;
mod binary;
mod browser;
mod cluster;
mod cluster_api;
mod common;
mod durability;
mod fault_loop;
mod http;
mod jetstream;
mod jetstream_differential;
mod kv;
mod kv_cli;
mod kv_differential;
mod message_ttl;
mod metrics;
mod monitoring;
mod mqtt_client;
mod mqtt_differential;
mod mqtt_raw;
mod mqtt_tools;
mod mqtt_v5;
mod nats_client;
mod nats_differential;
mod nats_raw;
mod natsjs;
mod object_store;
mod operate;
mod partition;
mod redis_client;
mod redis_differential;
mod reload;
mod replicated;
mod replicated_consumers;
mod robustness;
mod schedules;
mod slow_consumers;
mod stored_reads;
mod tls;
