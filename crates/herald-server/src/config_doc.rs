//! `herald config`: the whole default configuration as TOML with a comment
//! on every key, and commented examples of what is off by default (TLS,
//! users with permissions). The keys and values come from the real
//! defaults; a test fails when a key has no comment here.

use crate::config::Config;

/// A comment for every key, by `table.key` (top-level keys without a table).
const COMMENTS: &[(&str, &str)] = &[
    (
        "data_dir",
        "Where streams, consumers and MQTT sessions are kept (one herald per directory).",
    ),
    (
        "log",
        "Log filter (`info`, `herald=debug`, ...). --log and HERALD_LOG win over RUST_LOG, which wins over this.",
    ),
    (
        "log_format",
        "`text` (colours only on a terminal) or `json` (one object per line).",
    ),
    (
        "threads",
        "Worker threads serving connections; 0 = one per CPU.",
    ),
    (
        "nats.listen",
        "NATS clients: `host:port` (port 0 = any free port) or `off`.",
    ),
    (
        "redis.listen",
        "Redis clients (RESP2/RESP3 pub/sub): `host:port` or `off`.",
    ),
    (
        "redis.output_buffer_hard",
        "A Redis subscriber with this much unread output is closed at once (bytes, or `32MiB`).",
    ),
    (
        "redis.output_buffer_soft",
        "... or with this much for longer than the window below (Redis's pubsub 32mb 8mb 60).",
    ),
    (
        "redis.output_buffer_soft_window",
        "How long output may stay above the soft limit.",
    ),
    (
        "mqtt.listen",
        "MQTT 3.1.1 / 5 clients: `host:port` or `off`.",
    ),
    (
        "mqtt.max_inflight",
        "QoS 1/2 messages in flight to a client, unacknowledged.",
    ),
    (
        "mqtt.max_queued",
        "QoS 1/2 messages queued per session beyond those in flight; more are dropped and counted.",
    ),
    (
        "mqtt.max_session_expiry",
        "Longest a persistent session is kept after its client leaves; 0s = as the client asks.",
    ),
    (
        "mqtt.receive_maximum",
        "QoS 2 publishes a client may leave incomplete (MQTT 5 Receive Maximum; past it: 0x93).",
    ),
    (
        "mqtt.max_keepalive",
        "Longest keep-alive a client may ask for (MQTT 5 Server Keep Alive); 0s = any.",
    ),
    (
        "http.listen",
        "Web port: pages, REST, WebSocket, SSE, /nats, /mqtt, /metrics, nats-server's monitoring; or `off`.",
    ),
    (
        "http.monitor",
        "nats-server's /varz /connz /subsz /jsz /healthz alone, without authentication (8222); `off` by default.",
    ),
    (
        "streams.sync",
        "When stream writes reach the disk: an interval (`1s`: a killed process loses nothing acked) or `always` (fsync before each ack).",
    ),
    (
        "limits.max_payload",
        "Largest message accepted, headers included (bytes, or `1MiB`).",
    ),
    ("limits.max_control_line", "Longest protocol line (bytes)."),
    (
        "limits.max_pending",
        "Unread output a connection may have before it is a slow consumer (bytes, or `64MiB`).",
    ),
    (
        "limits.slow_consumer",
        "What happens to a slow consumer: `close`, or `drop_newest` and count.",
    ),
    (
        "limits.write_deadline",
        "A write waiting this long for the client makes it a slow consumer.",
    ),
    (
        "limits.max_subscriptions",
        "Subscriptions per connection; 0 = unlimited.",
    ),
    (
        "limits.max_connections",
        "Connections at once; 0 = unlimited.",
    ),
    (
        "limits.ping_interval",
        "PINGs to idle NATS clients; `max_pings_out` unanswered close the connection.",
    ),
    (
        "limits.max_pings_out",
        "Unanswered PINGs before a NATS client is closed.",
    ),
    (
        "limits.max_connections_per_ip",
        "Connections from one address at once; 0 = unlimited.",
    ),
    (
        "cluster.listen",
        "Route listener for other herald nodes (`host:port`); empty or `off`: a single node.",
    ),
    (
        "cluster.node",
        "This node's name, unique in the cluster; empty: the host name.",
    ),
    (
        "cluster.name",
        "The cluster's name (empty: `herald`); routes to nodes of another cluster are refused.",
    ),
    (
        "cluster.peers",
        "Route addresses of other nodes to dial; the rest of the mesh is learned from them.",
    ),
    (
        "cluster.advertise",
        "The route address other nodes are told to dial (NAT, proxies, port mappings); empty: the bound address.",
    ),
    (
        "cluster.snapshot_entries",
        "Entries of a replicated stream's consensus log between snapshots (0: 8192); a replica further behind is sent the stream's contents.",
    ),
    (
        "cluster.secret",
        "A secret every node proves it knows when a route opens (never sent); empty: none.",
    ),
    (
        "limits.auth_timeout",
        "Time a client has to authenticate once it connects (when users are configured).",
    ),
];

/// Commented examples of what is off by default.
const EXAMPLES: &str = r#"
# TLS for every listener (NATS upgrades after INFO, as nats-server; the
# others start with the handshake). With `client_ca`, clients must present a
# certificate; one whose common name is a user's name is that user. With
# `client_ca`, cluster routes use mutual TLS too (node certificates signed by
# that CA, naming the addresses other nodes dial).
# [tls]
# cert = "/etc/herald/server.pem"
# key = "/etc/herald/server.key"
# client_ca = "/etc/herald/clients-ca.pem"

# Users. With none, every client may do everything (herald warns at start
# when a listener is reachable from other machines). `herald passwd` hashes a
# password; a token can stand instead, optionally with an expiry. Permissions
# are NATS subject patterns (MQTT topics and Redis channels map onto them);
# `deny` wins over `allow`; absent means everything.
# [[users]]
# name = "orders-service"
# password = "$argon2id$v=19$m=19456,t=2,p=1$..."
# publish = { allow = ["orders.>"], deny = ["orders.internal.>"] }
# subscribe = { allow = ["orders.>", "_INBOX.orders-service.>"] }
#
# [[users]]
# name = "dashboard"
# token = "a-long-random-token"
# token_expires = "2027-01-01T00:00:00Z"
# publish = { deny = [">"] }        # may publish nothing (an empty allow is everything)
# subscribe = { allow = [">"] }
"#;

/// The default configuration, every key commented, with examples.
pub fn commented_default() -> String {
    let plain = Config::default_toml();
    let mut out = String::from(
        "# herald configuration: every key with its default value.\n\
         # Every key can also come from a variable, HERALD_ and its path in upper\n\
         # case with tables joined by __ (limits.max_payload: HERALD_LIMITS__MAX_PAYLOAD),\n\
         # and many from a flag (`herald --help`). One rule: flag (or the flag's own\n\
         # variable) > HERALD_* variable > this file > default; RUST_LOG stands for\n\
         # `log` below HERALD_LOG. Sizes take units (`64MiB`), durations `10s`, `2m`.\n\n",
    );
    let mut table = String::new();
    for line in plain.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            table = name.to_owned();
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if let Some((key, _)) = trimmed.split_once(" = ") {
            let path = if table.is_empty() {
                key.to_owned()
            } else {
                format!("{table}.{key}")
            };
            if let Some((_, comment)) = COMMENTS.iter().find(|(p, _)| *p == path) {
                out.push_str("# ");
                out.push_str(comment);
                out.push('\n');
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(EXAMPLES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_comment_and_the_text_parses_back_to_the_defaults() {
        let text = commented_default();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.contains(" = ") && !line.starts_with('#') {
                assert!(
                    i > 0 && lines[i - 1].starts_with("# "),
                    "no comment above {line:?}"
                );
            }
        }
        let parsed: Config = toml::from_str(&text).expect("parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn the_examples_are_valid_configuration() {
        let uncommented: String = EXAMPLES
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let config: Config = toml::from_str(&uncommented).expect("the examples parse");
        assert_eq!(config.users.len(), 2);
        assert!(config.tls.is_some());
    }
}
