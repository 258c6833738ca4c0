//! Redis commands: the generic checks in Redis's order (unknown command,
//! arity, the RESP2 subscribed-state rule), then one handler per command.

use bytes::{Bytes, BytesMut};
use herald_core::{Interest, Message, Subject, SubscribeSpec};
use herald_protocol::resp::{self, Proto};

use super::{Connection, Flow, Refusal, ReplyMode, SubscriptionSet};

/// A command herald knows: its name, Redis's arity (negative = at least),
/// and whether a RESP2 client may run it while subscribed.
struct Spec {
    name: &'static str,
    lower: &'static str,
    arity: i32,
    in_subscribed: bool,
}

const COMMANDS: &[Spec] = &[
    Spec {
        name: "PUBLISH",
        lower: "publish",
        arity: 3,
        in_subscribed: false,
    },
    Spec {
        name: "SPUBLISH",
        lower: "spublish",
        arity: 3,
        in_subscribed: false,
    },
    Spec {
        name: "SUBSCRIBE",
        lower: "subscribe",
        arity: -2,
        in_subscribed: true,
    },
    Spec {
        name: "UNSUBSCRIBE",
        lower: "unsubscribe",
        arity: -1,
        in_subscribed: true,
    },
    Spec {
        name: "PSUBSCRIBE",
        lower: "psubscribe",
        arity: -2,
        in_subscribed: true,
    },
    Spec {
        name: "PUNSUBSCRIBE",
        lower: "punsubscribe",
        arity: -1,
        in_subscribed: true,
    },
    Spec {
        name: "SSUBSCRIBE",
        lower: "ssubscribe",
        arity: -2,
        in_subscribed: true,
    },
    Spec {
        name: "SUNSUBSCRIBE",
        lower: "sunsubscribe",
        arity: -1,
        in_subscribed: true,
    },
    Spec {
        name: "PING",
        lower: "ping",
        arity: -1,
        in_subscribed: true,
    },
    Spec {
        name: "QUIT",
        lower: "quit",
        arity: -1,
        in_subscribed: true,
    },
    Spec {
        name: "RESET",
        lower: "reset",
        arity: 1,
        in_subscribed: true,
    },
    Spec {
        name: "ECHO",
        lower: "echo",
        arity: 2,
        in_subscribed: false,
    },
    Spec {
        name: "HELLO",
        lower: "hello",
        arity: -1,
        in_subscribed: false,
    },
    Spec {
        name: "AUTH",
        lower: "auth",
        arity: -2,
        in_subscribed: false,
    },
    Spec {
        name: "SELECT",
        lower: "select",
        arity: 2,
        in_subscribed: false,
    },
    Spec {
        name: "CLIENT",
        lower: "client",
        arity: -2,
        in_subscribed: false,
    },
    Spec {
        name: "COMMAND",
        lower: "command",
        arity: -1,
        in_subscribed: false,
    },
    Spec {
        name: "INFO",
        lower: "info",
        arity: -1,
        in_subscribed: false,
    },
    Spec {
        name: "CONFIG",
        lower: "config",
        arity: -2,
        in_subscribed: false,
    },
    Spec {
        name: "PUBSUB",
        lower: "pubsub",
        arity: -2,
        in_subscribed: false,
    },
];

/// Subcommands of container commands: container, subcommand, full name, arity.
const SUBCOMMANDS: &[(&str, &str, &str, i32)] = &[
    ("CLIENT", "SETNAME", "client|setname", 3),
    ("CLIENT", "GETNAME", "client|getname", 2),
    ("CLIENT", "ID", "client|id", 2),
    ("CLIENT", "SETINFO", "client|setinfo", 4),
    ("CLIENT", "INFO", "client|info", 2),
    ("CLIENT", "REPLY", "client|reply", 3),
    ("COMMAND", "DOCS", "command|docs", -2),
    ("COMMAND", "COUNT", "command|count", 2),
    ("CONFIG", "GET", "config|get", -3),
    ("PUBSUB", "CHANNELS", "pubsub|channels", -2),
    ("PUBSUB", "NUMSUB", "pubsub|numsub", -2),
    ("PUBSUB", "NUMPAT", "pubsub|numpat", 2),
    ("PUBSUB", "SHARDCHANNELS", "pubsub|shardchannels", -2),
    ("PUBSUB", "SHARDNUMSUB", "pubsub|shardnumsub", -2),
    ("PUBSUB", "HELP", "pubsub|help", 2),
];

/// Databases `SELECT` accepts, as Redis's default `databases 16`.
pub(super) const DATABASES: i64 = 16;

/// How many commands herald implements (`COMMAND COUNT`).
pub(super) fn command_count() -> usize {
    COMMANDS.len()
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = i32::try_from(argc).unwrap_or(i32::MAX);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// Text as Redis embeds user input in an error: at most `max` bytes, CR/LF as spaces.
fn quoted(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).replace(['\r', '\n'], " ")
}

fn unknown_command(args: &[Bytes]) -> String {
    let mut list = String::new();
    for arg in &args[1..] {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push_str(&format!("'{}' ", quoted(arg, room)));
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        quoted(&args[0], 128),
        list
    )
}

impl Connection {
    fn err(&mut self, text: &str) {
        resp::error(&mut self.replies, text.as_bytes());
    }

    fn ok(&mut self) {
        resp::simple(&mut self.replies, b"OK");
    }

    /// Runs one command (`args` is not empty; it may be left changed),
    /// dropping its reply while `CLIENT REPLY OFF` or `SKIP` says so. What
    /// pub/sub pushes (messages, subscribe confirmations) never counts as a
    /// reply here, as in Redis 7.2: a subscriber with replies off still gets
    /// its messages.
    pub(super) fn handle(&mut self, args: &mut Vec<Bytes>) -> Flow {
        let silenced = match self.reply_mode {
            ReplyMode::On => return self.execute(args),
            ReplyMode::Off => true,
            ReplyMode::SkipNext => {
                self.reply_mode = ReplyMode::Skipping;
                true
            }
            ReplyMode::Skipping => true,
        };
        self.reply_mark = Some(self.replies.len());
        let flow = self.execute(args);
        if let Some(mark) = self.reply_mark.take()
            && silenced
            && self.reply_mode != ReplyMode::On
        {
            self.replies.truncate(mark);
        }
        if self.reply_mode == ReplyMode::Skipping {
            self.reply_mode = ReplyMode::On;
        }
        flow
    }

    /// [`handle`](Self::handle) without the reply mode. The hot path
    /// (PUBLISH, pipelined) allocates nothing here.
    fn execute(&mut self, args: &mut Vec<Bytes>) -> Flow {
        if self.publish_fast(args) {
            return Flow::Continue;
        }
        let args = &*args;
        let name = &args[0];
        // Cross-protocol guard: an HTTP request sent to this port.
        if name.eq_ignore_ascii_case(b"POST") || name.eq_ignore_ascii_case(b"HOST:") {
            return Flow::Close;
        }
        let Some(spec) = COMMANDS
            .iter()
            .find(|c| name.eq_ignore_ascii_case(c.name.as_bytes()))
        else {
            let text = unknown_command(args);
            self.err(&text);
            return Flow::Continue;
        };
        if !arity_ok(spec.arity, args.len()) {
            let text = format!("ERR wrong number of arguments for '{}' command", spec.lower);
            self.err(&text);
            return Flow::Continue;
        }
        // Container commands: check the subcommand and its arity.
        let mut full_name = spec.lower;
        if SUBCOMMANDS.iter().any(|(c, ..)| *c == spec.name) {
            let found = SUBCOMMANDS.iter().find(|(c, sub, ..)| {
                *c == spec.name && args[1].eq_ignore_ascii_case(sub.as_bytes())
            });
            match found {
                Some((_, _, full, arity)) => {
                    full_name = full;
                    if !arity_ok(*arity, args.len()) {
                        let text =
                            format!("ERR wrong number of arguments for '{full_name}' command");
                        self.err(&text);
                        return Flow::Continue;
                    }
                }
                None => {
                    let text = format!(
                        "ERR unknown subcommand '{}'. Try {} HELP.",
                        quoted(&args[1], 128),
                        spec.name
                    );
                    self.err(&text);
                    return Flow::Continue;
                }
            }
        }
        if self.port.identity().is_none()
            && !matches!(spec.name, "AUTH" | "HELLO" | "QUIT" | "RESET")
        {
            self.err("NOAUTH Authentication required.");
            return Flow::Continue;
        }
        if self.port.identity().is_none() && spec.name == "HELLO" {
            self.err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
            return Flow::Continue;
        }
        if self.proto == Proto::Resp2 && self.subscribed() && !spec.in_subscribed {
            self.err(&format!(
                "ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ));
            return Flow::Continue;
        }
        self.last_command_name = full_name;
        self.dispatch(spec.name, args)
    }

    /// `PUBLISH channel message` from a client allowed to run it, the one
    /// command pipelines repeat: answered without the command-table walk,
    /// and the channel and message move out of `args` into the message
    /// instead of being shared. Returns false, touching nothing, for any
    /// other command.
    fn publish_fast(&mut self, args: &mut Vec<Bytes>) -> bool {
        let fast = args.len() == 3
            && args[0].eq_ignore_ascii_case(b"PUBLISH")
            && self.port.identity().is_some()
            && !(self.proto == Proto::Resp2 && self.subscribed());
        if !fast {
            return false;
        }
        let (Some(payload), Some(channel)) = (args.pop(), args.pop()) else {
            return false;
        };
        self.last_command_name = "publish";
        let msg = Message::new(Subject::from_wire_unchecked(channel), payload);
        match self.port.publish(&msg) {
            Ok(receivers) => resp::integer(&mut self.replies, receivers as i64),
            Err(refusal) => self.refused(&refusal),
        }
        true
    }

    /// PUBLISH and SPUBLISH through the port (which checks the permission).
    fn publish_command(&mut self, shard: bool, args: &[Bytes]) {
        let msg = Message::new(
            Subject::from_wire_unchecked(args[1].clone()),
            args[2].clone(),
        );
        let published = if shard {
            self.port.publish_shard(&msg)
        } else {
            self.port.publish(&msg)
        };
        match published {
            Ok(receivers) => resp::integer(&mut self.replies, receivers as i64),
            Err(refusal) => self.refused(&refusal),
        }
    }

    fn dispatch(&mut self, name: &str, args: &[Bytes]) -> Flow {
        match name {
            "SUBSCRIBE" | "SSUBSCRIBE" if !self.may_subscribe(&args[1..]) => {}
            "PUBLISH" => self.publish_command(false, args),
            "SPUBLISH" => self.publish_command(true, args),
            "SUBSCRIBE" => self.subscribe(&args[1..], Kind::Channel),
            "PSUBSCRIBE" => self.subscribe(&args[1..], Kind::Pattern),
            "SSUBSCRIBE" => self.subscribe(&args[1..], Kind::Shard),
            "UNSUBSCRIBE" => self.unsubscribe(&args[1..], Kind::Channel),
            "PUNSUBSCRIBE" => self.unsubscribe(&args[1..], Kind::Pattern),
            "SUNSUBSCRIBE" => self.unsubscribe(&args[1..], Kind::Shard),
            "PING" => self.ping(args),
            "ECHO" => resp::bulk(&mut self.replies, &args[1]),
            "QUIT" => {
                self.ok();
                return Flow::Close;
            }
            "RESET" => self.reset(),
            "SELECT" => self.select(&args[1]),
            "AUTH" => self.auth(args),
            "HELLO" => self.hello(args),
            "CLIENT" => self.client(args),
            "COMMAND" => self.command(args),
            "INFO" => self.info(args),
            "CONFIG" => self.config_get(&args[2..]),
            "PUBSUB" => self.pubsub(args),
            _ => {
                let text = unknown_command(args);
                self.err(&text);
            }
        }
        Flow::Continue
    }

    fn ping(&mut self, args: &[Bytes]) {
        if args.len() > 2 {
            self.err("ERR wrong number of arguments for 'ping' command");
            return;
        }
        if self.proto == Proto::Resp2 && self.subscribed() {
            resp::array_header(&mut self.replies, 2);
            resp::bulk(&mut self.replies, b"pong");
            resp::bulk(&mut self.replies, args.get(1).map_or(&b""[..], |a| a));
        } else if let Some(arg) = args.get(1) {
            resp::bulk(&mut self.replies, arg);
        } else {
            resp::simple(&mut self.replies, b"PONG");
        }
    }

    fn select(&mut self, index: &[u8]) {
        // Redis has 16 databases and pub/sub ignores them; accept the same range.
        match std::str::from_utf8(index)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(0..DATABASES) => self.ok(),
            Some(_) => self.err("ERR DB index is out of range"),
            None => self.err("ERR value is not an integer or out of range"),
        }
    }

    /// All or nothing, as Redis checks every channel of the command first;
    /// false once the refusal is answered.
    fn may_subscribe(&mut self, channels: &[Bytes]) -> bool {
        let checked: Result<(), Refusal> = {
            let gate = self.port.gate();
            channels.iter().try_for_each(|c| gate.subscribe_channel(c))
        };
        match checked {
            Ok(()) => true,
            Err(refusal) => {
                self.refused(&refusal);
                false
            }
        }
    }

    /// A refusal in Redis's words.
    fn refused(&mut self, refusal: &Refusal) {
        let text = match refusal {
            Refusal::TooManySubscriptions => "ERR maximum subscriptions exceeded",
            Refusal::Publish(_) | Refusal::Subscribe { .. } => {
                "NOPERM this user has no permissions to access one of the channels used as arguments"
            }
        };
        self.err(text);
    }

    /// AUTH. With users configured the credentials were checked before the
    /// command got here (see `Connection::authenticate`); without any, Redis's
    /// answers for a default user that has no password.
    fn auth(&mut self, args: &[Bytes]) {
        if self.shared.users_required() {
            match args.len() {
                2 | 3 => self.ok(),
                _ => self.err("ERR syntax error"),
            }
            return;
        }
        match args.len() {
            2 => self.err(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ),
            3 if args[1].as_ref() == b"default" => self.ok(),
            3 => self.err("WRONGPASS invalid username-password pair or user is disabled."),
            _ => self.err("ERR syntax error"),
        }
    }

    fn reset(&mut self) {
        // No unsubscribe confirmations, as Redis.
        self.unsubscribe_all();
        // Back to the default user: unauthenticated when users are configured.
        self.port.forget_identity();
        self.set_proto(Proto::Resp2);
        self.name = None;
        self.reply_mode = ReplyMode::On;
        resp::simple(&mut self.replies, b"RESET");
    }

    fn pubsub(&mut self, args: &[Bytes]) {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_uppercase();
        let broker = self.shared.broker.clone();
        match sub.as_str() {
            "CHANNELS" | "SHARDCHANNELS" => {
                if args.len() > 3 {
                    self.err(&format!(
                        "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                        quoted(&args[1], 128)
                    ));
                    return;
                }
                let glob = args.get(2).map(|g| g.as_ref());
                let names = if sub == "CHANNELS" {
                    broker.channel_names(glob)
                } else {
                    broker.shard_names(glob)
                };
                resp::array_header(&mut self.replies, names.len());
                for name in names {
                    resp::bulk(&mut self.replies, &name);
                }
            }
            "NUMSUB" | "SHARDNUMSUB" => {
                resp::array_header(&mut self.replies, (args.len() - 2) * 2);
                for channel in &args[2..] {
                    let n = if sub == "NUMSUB" {
                        broker.channel_subscribers(channel)
                    } else {
                        broker.shard_subscribers(channel)
                    };
                    resp::bulk(&mut self.replies, channel);
                    resp::integer(&mut self.replies, n as i64);
                }
            }
            "NUMPAT" => resp::integer(&mut self.replies, broker.glob_patterns() as i64),
            _ => {
                let help = [
                    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "CHANNELS [<pattern>]",
                    "    Return the currently active channels matching a <pattern> (default: '*').",
                    "NUMPAT",
                    "    Return number of subscriptions to patterns.",
                    "NUMSUB [<channel> ...]",
                    "    Return the number of subscribers for the specified channels, excluding",
                    "    pattern subscriptions(default: no channels).",
                    "SHARDCHANNELS [<pattern>]",
                    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                    "SHARDNUMSUB [<shardchannel> ...]",
                    "    Return the number of subscribers for the specified shard level channel(s)",
                    "HELP",
                    "    Prints this help.",
                ];
                resp::array_header(&mut self.replies, help.len());
                for line in help {
                    resp::simple(&mut self.replies, line.as_bytes());
                }
            }
        }
    }

    fn set_of(&mut self, kind: Kind) -> &mut SubscriptionSet {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shards,
        }
    }

    fn count_for(&self, kind: Kind) -> i64 {
        match kind {
            Kind::Shard => self.shards.len() as i64,
            _ => self.subscription_count(),
        }
    }

    /// Writes a confirmation straight to the outbox, after any replies
    /// queued before it, so it is ordered with the messages it governs: a
    /// subscribe confirmation goes out before the first message, an
    /// unsubscribe confirmation after the last one.
    fn confirm(&mut self, kind: &[u8], name: Option<&[u8]>, count: i64) {
        self.queue_confirmation(kind, name, count);
        self.outbox.write_now();
    }

    /// Puts a confirmation in the outbox after everything before it,
    /// without writing it yet.
    fn queue_confirmation(&mut self, kind: &[u8], name: Option<&[u8]>, count: i64) {
        // A push, not a reply: sent even while replies are off, but what the
        // silenced command answered so far goes first (and nowhere).
        if let Some(mark) = self.reply_mark {
            self.replies.truncate(mark);
        }
        let proto = self.proto;
        resp::subscription_push(&mut self.replies, proto, kind, name, count);
        self.queue_replies();
        if self.reply_mark.is_some() {
            self.reply_mark = Some(0);
        }
    }

    fn subscribe(&mut self, names: &[Bytes], kind: Kind) {
        for name in names {
            if !self.set_of(kind).contains(name) {
                let interest = match kind {
                    Kind::Channel => Interest::Channel(name.clone()),
                    Kind::Pattern => Interest::Glob(name.clone()),
                    Kind::Shard => Interest::Shard(name.clone()),
                };
                let mut spec = SubscribeSpec::with_interest(interest, self.id);
                spec.tag = name.clone();
                // Globs and channels are checked per delivery when the user
                // may not read everything: a glob can reach any subject.
                spec.read_check = self.port.identity().and_then(|i| i.permissions.clone());
                // Count it first so the confirmation carries the new total,
                // and queue it before the first message can arrive; but
                // write it only once the subscription is in place, so a
                // client that saw it and publishes elsewhere is heard.
                let count = self.count_for(kind) + 1;
                self.queue_confirmation(kind.subscribe_word(), Some(name), count);
                let sub = self.shared.broker.subscribe_sink(spec, self.sink.clone());
                self.set_of(kind).insert(name.clone(), sub);
                self.outbox.write_now();
            } else {
                let count = self.count_for(kind);
                self.confirm(kind.subscribe_word(), Some(name), count);
            }
        }
    }

    fn unsubscribe(&mut self, names: &[Bytes], kind: Kind) {
        let broker = self.shared.broker.clone();
        if names.is_empty() {
            let all = self.set_of(kind).drain_in_order();
            if all.is_empty() {
                let count = self.count_for(kind);
                self.confirm(kind.unsubscribe_word(), None, count);
            }
            let mut remaining = all.len();
            for (name, sub) in all {
                broker.remove_subscriber(&sub);
                remaining -= 1;
                // The maps were drained at once; count what is left of this kind.
                let others = match kind {
                    Kind::Channel => self.patterns.len(),
                    Kind::Pattern => self.channels.len(),
                    Kind::Shard => 0,
                };
                self.confirm(
                    kind.unsubscribe_word(),
                    Some(&name),
                    (remaining + others) as i64,
                );
            }
            return;
        }
        for name in names {
            if let Some(sub) = self.set_of(kind).remove(name) {
                broker.remove_subscriber(&sub);
            }
            let count = self.count_for(kind);
            self.confirm(kind.unsubscribe_word(), Some(name), count);
        }
    }

    pub(super) fn reply_buf(&mut self) -> &mut BytesMut {
        &mut self.replies
    }
}

/// The three Redis subscription namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn subscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    fn unsubscribe_word(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}
