//! The connection and server commands clients send at start-up: HELLO,
//! CLIENT, COMMAND, INFO and CONFIG GET, shaped as Redis 7 shapes them.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use herald_protocol::resp::{self, Proto};

use super::{Connection, ReplyMode};

/// The Redis version herald reports; clients gate features on it.
pub(super) const REDIS_VERSION: &str = "7.2.4";

/// Client names and library names: printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

impl Connection {
    pub(super) fn hello(&mut self, args: &[Bytes]) {
        let mut proto = self.proto;
        let mut i = 1;
        if let Some(version) = args.get(1) {
            match std::str::from_utf8(version)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
            {
                Some(2) => proto = Proto::Resp2,
                Some(3) => proto = Proto::Resp3,
                Some(_) => {
                    self.err_text("NOPROTO unsupported protocol version");
                    return;
                }
                None => {
                    self.err_text("ERR Protocol version is not an integer or out of range");
                    return;
                }
            }
            i = 2;
        }
        let mut name = None;
        while i < args.len() {
            let option = String::from_utf8_lossy(&args[i]).to_ascii_uppercase();
            match option.as_str() {
                "AUTH" if i + 2 < args.len() => {
                    // With users configured the credentials were checked already.
                    if !self.shared.users_required() && args[i + 1].as_ref() != b"default" {
                        self.err_text(
                            "WRONGPASS invalid username-password pair or user is disabled.",
                        );
                        return;
                    }
                    i += 3;
                }
                "SETNAME" if i + 1 < args.len() => {
                    if !valid_name(&args[i + 1]) {
                        self.err_text(
                            "ERR Client names cannot contain spaces, newlines or special characters.",
                        );
                        return;
                    }
                    name = Some(args[i + 1].clone());
                    i += 2;
                }
                _ => {
                    let text = format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&args[i])
                    );
                    self.err_text(&text);
                    return;
                }
            }
        }
        if let Some(name) = name {
            let text = String::from_utf8_lossy(&name).into_owned();
            self.port.record().describe(|d| d.name = Some(text));
            self.name = Some(name);
        }
        // The protocol switches before the reply is encoded.
        self.set_proto(proto);
        let id = self.id.0 as i64;
        let b = self.reply_buf();
        resp::map_header(b, proto, 7);
        resp::bulk(b, b"server");
        resp::bulk(b, b"redis");
        resp::bulk(b, b"version");
        resp::bulk(b, REDIS_VERSION.as_bytes());
        resp::bulk(b, b"proto");
        resp::integer(b, if proto == Proto::Resp3 { 3 } else { 2 });
        resp::bulk(b, b"id");
        resp::integer(b, id);
        resp::bulk(b, b"mode");
        resp::bulk(b, b"standalone");
        resp::bulk(b, b"role");
        resp::bulk(b, b"master");
        resp::bulk(b, b"modules");
        resp::array_header(b, 0);
    }

    fn err_text(&mut self, text: &str) {
        resp::error(self.reply_buf(), text.as_bytes());
    }

    pub(super) fn client(&mut self, args: &[Bytes]) {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_uppercase();
        match sub.as_str() {
            "SETNAME" => {
                if !valid_name(&args[2]) {
                    self.err_text(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                    return;
                }
                self.name = (!args[2].is_empty()).then(|| args[2].clone());
                let name = self
                    .name
                    .as_ref()
                    .map(|n| String::from_utf8_lossy(n).into_owned());
                self.port.record().describe(|d| d.name = name);
                resp::simple(self.reply_buf(), b"OK");
            }
            "GETNAME" => {
                let proto = self.proto;
                match self.name.clone() {
                    Some(name) => resp::bulk(self.reply_buf(), &name),
                    None => resp::null(self.reply_buf(), proto),
                }
            }
            "ID" => {
                let id = self.id.0 as i64;
                resp::integer(self.reply_buf(), id);
            }
            "SETINFO" => {
                let attr = String::from_utf8_lossy(&args[2]).to_ascii_uppercase();
                if attr != "LIB-NAME" && attr != "LIB-VER" {
                    let text = format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(&args[2])
                    );
                    self.err_text(&text);
                    return;
                }
                if !valid_name(&args[3]) {
                    let text = format!(
                        "ERR {} cannot contain spaces, newlines or special characters.",
                        String::from_utf8_lossy(&args[2])
                    );
                    self.err_text(&text);
                    return;
                }
                let value = (!args[3].is_empty()).then(|| args[3].clone());
                if attr == "LIB-NAME" {
                    self.lib_name = value;
                } else {
                    self.lib_ver = value;
                }
                resp::simple(self.reply_buf(), b"OK");
            }
            "REPLY" => {
                let mode = String::from_utf8_lossy(&args[2]).to_ascii_uppercase();
                match mode.as_str() {
                    "ON" => {
                        self.reply_mode = ReplyMode::On;
                        resp::simple(self.reply_buf(), b"OK");
                    }
                    // Neither answers: they silence their own reply too.
                    "OFF" => self.reply_mode = ReplyMode::Off,
                    "SKIP" => {
                        if self.reply_mode != ReplyMode::Off {
                            self.reply_mode = ReplyMode::SkipNext;
                        }
                    }
                    _ => self.err_text("ERR syntax error"),
                }
            }
            _ => {
                // CLIENT INFO
                let line = self.client_info_line();
                let proto = self.proto;
                resp::verbatim(self.reply_buf(), proto, b"txt", line.as_bytes());
            }
        }
    }

    /// One `CLIENT INFO` / `CLIENT LIST` line.
    fn client_info_line(&self) -> String {
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map_or(String::new(), |v| String::from_utf8_lossy(v).into_owned())
        };
        let flags = if self.subscribed() { "P" } else { "N" };
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={flags} db=0 sub={} psub={} ssub={} multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}\n",
            self.id.0,
            self.peer,
            self.local.map_or_else(String::new, |a| a.to_string()),
            text(&self.name),
            self.created.elapsed().as_secs(),
            self.last_command.elapsed().as_secs(),
            self.channels.len(),
            self.patterns.len(),
            self.shards.len(),
            self.outbox.pending_bytes(),
            self.last_command_name,
            if self.proto == Proto::Resp3 { 3 } else { 2 },
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }

    pub(super) fn command(&mut self, args: &[Bytes]) {
        let proto = self.proto;
        match args
            .get(1)
            .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
        {
            // Enough for redis-cli: an empty table makes it fall back to its own.
            None => resp::array_header(self.reply_buf(), 0),
            Some(sub) if sub == "DOCS" => resp::map_header(self.reply_buf(), proto, 0),
            Some(_) => {
                let n = super::commands::command_count() as i64;
                resp::integer(self.reply_buf(), n);
            }
        }
    }

    pub(super) fn info(&mut self, args: &[Bytes]) {
        let wanted: Vec<String> = args[1..]
            .iter()
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .collect();
        let all = wanted.is_empty()
            || wanted
                .iter()
                .any(|w| w == "all" || w == "everything" || w == "default");
        let shared = &self.shared;
        let stats = shared.broker.stats();
        let mut sections = Vec::new();
        if all || wanted.iter().any(|w| w == "server") {
            sections.push(format!(
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nherald_version:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                self.local.map_or(0, |a| a.port()),
                shared.started.elapsed().as_secs(),
            ));
        }
        if all || wanted.iter().any(|w| w == "clients") {
            sections.push(format!(
                "# Clients\r\nconnected_clients:{}\r\nnats_clients:{}\r\nmaxclients:{}\r\n",
                shared.stats.redis_connections.load(Ordering::Relaxed),
                shared.stats.nats_connections.load(Ordering::Relaxed),
                shared.limits.max_connections,
            ));
        }
        if all || wanted.iter().any(|w| w == "stats") {
            sections.push(format!(
                "# Stats\r\ntotal_connections_received:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nclient_output_buffer_limit_disconnections:{}\r\nmessages_in:{}\r\nmessages_out:{}\r\n",
                shared.stats.total_connections.load(Ordering::Relaxed),
                shared.broker.channel_names(None).len(),
                shared.broker.glob_patterns(),
                shared.broker.shard_names(None).len(),
                stats.slow_consumers,
                stats.msgs_in,
                stats.msgs_out,
            ));
        }
        let text = sections.join("\r\n");
        let proto = self.proto;
        resp::verbatim(self.reply_buf(), proto, b"txt", text.as_bytes());
    }

    /// CONFIG GET: what redis-benchmark asks (`save`, `appendonly`) and a
    /// few harmless others, matched with Redis's glob as Redis does.
    pub(super) fn config_get(&mut self, params: &[Bytes]) {
        let hard = self.shared.redis.output_buffer_hard;
        let soft = self.shared.redis.output_buffer_soft;
        let window = self.shared.redis.output_buffer_soft_window.as_secs();
        let known: Vec<(&str, String)> = vec![
            ("save", String::new()),
            ("appendonly", "no".into()),
            ("databases", super::commands::DATABASES.to_string()),
            ("maxclients", self.shared.limits.max_connections.to_string()),
            (
                "client-output-buffer-limit",
                format!("normal 0 0 0 slave 0 0 0 pubsub {hard} {soft} {window}"),
            ),
        ];
        let mut found: Vec<(&str, &String)> = Vec::new();
        for param in params {
            let lower = String::from_utf8_lossy(param).to_ascii_lowercase();
            for (name, value) in &known {
                if herald_core::glob::glob_match(lower.as_bytes(), name.as_bytes())
                    && !found.iter().any(|(n, _)| n == name)
                {
                    found.push((name, value));
                }
            }
        }
        let proto = self.proto;
        let b = self.reply_buf();
        resp::map_header(b, proto, found.len());
        for (name, value) in found {
            resp::bulk(b, name.as_bytes());
            resp::bulk(b, value.as_bytes());
        }
    }
}
