//! `herald stream …`: manage streams and read their messages, over the
//! JetStream API (so it works against herald and nats-server alike).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::{ServerArg, connect};

/// Flags of `herald stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    server: ServerArg,
    #[command(subcommand)]
    command: StreamCommand,
}

/// What to do with streams.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a stream (an existing one with the same settings is fine).
    Add(AddArgs),
    /// List streams with their message counts.
    Ls,
    /// Show a stream's configuration and state.
    Info {
        /// Stream name.
        name: String,
        /// Print the raw JSON info.
        #[arg(long)]
        json: bool,
    },
    /// Delete a stream and every message in it.
    Rm {
        /// Stream name.
        name: String,
    },
    /// Remove messages: all, or only those on matching subjects.
    Purge {
        /// Stream name.
        name: String,
        /// Only messages whose subject matches this pattern.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Print one stored message.
    Get {
        /// Stream name.
        name: String,
        /// Sequence number (or use --last-for).
        seq: Option<u64>,
        /// The last message on this subject instead.
        #[arg(long, value_name = "SUBJECT", conflicts_with = "seq")]
        last_for: Option<String>,
    },
    /// Print stored messages in order, from the start or a given point.
    View(ViewArgs),
    /// Put dead letters back on the subjects they were published on, then
    /// delete them from the dead-letter stream.
    Redrive {
        /// The stream that keeps the dead letters.
        name: String,
        /// Only dead letters whose original subject matches this pattern.
        #[arg(long)]
        subject: Option<String>,
        /// Keep the dead letters after putting them back.
        #[arg(long)]
        keep: bool,
    },
}

/// Flags of `herald stream add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Stream name.
    name: String,
    /// Subjects to capture (patterns); default: the stream's name.
    #[arg(long = "subject", short = 'S', value_name = "PATTERN")]
    subjects: Vec<String>,
    /// Where messages are kept.
    #[arg(long, value_enum, default_value = "file")]
    storage: StorageArg,
    /// When messages go away.
    #[arg(long, value_enum, default_value = "limits")]
    retention: RetentionArg,
    /// Most messages kept (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    max_msgs: i64,
    /// Most bytes kept (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    max_bytes: i64,
    /// Oldest message kept, e.g. `24h` (default: no limit).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_age: Option<Duration>,
    /// Most messages kept per subject (0 = unlimited).
    #[arg(long, default_value_t = 0)]
    max_msgs_per_subject: i64,
    /// When full: drop the oldest, or refuse new ones.
    #[arg(long, value_enum, default_value = "old")]
    discard: DiscardArg,
    /// Window for duplicate detection by `Nats-Msg-Id`, e.g. `2m`.
    #[arg(long, value_parser = humantime::parse_duration)]
    duplicate_window: Option<Duration>,
    /// Answer direct gets.
    #[arg(long)]
    allow_direct: bool,
}

/// Flags of `herald stream view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// Stream name.
    name: String,
    /// Start at this sequence.
    #[arg(long, conflicts_with = "since")]
    from_seq: Option<u64>,
    /// Start at this time: RFC 3339 (`2026-11-29T10:00:00Z`) or an age (`10m`).
    #[arg(long)]
    since: Option<String>,
    /// Only messages on subjects matching this pattern.
    #[arg(long)]
    subject: Option<String>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Print only payloads, one per line.
    #[arg(long)]
    raw: bool,
}

/// Storage as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StorageArg {
    /// Segment files in the data directory.
    File,
    /// Memory only.
    Memory,
}

/// Retention as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RetentionArg {
    /// Limits only.
    Limits,
    /// Until every consumer acknowledged.
    Interest,
    /// Until one consumer acknowledged.
    Workqueue,
}

/// Discard policy as a flag value.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiscardArg {
    /// Drop the oldest.
    Old,
    /// Refuse new messages.
    New,
}

/// Runs `herald stream …`.
///
/// # Errors
/// Connection, API and output failures, with what was being done.
pub async fn run(args: StreamArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let js = jetstream::new(client.clone());
    let mut out = std::io::stdout().lock();
    match args.command {
        StreamCommand::Add(add) => {
            let info = js
                .get_or_create_stream(add.config())
                .await
                .context("creating the stream")?;
            writeln!(
                out,
                "stream {} captures {}",
                info.cached_info().config.name,
                info.cached_info().config.subjects.join(", ")
            )?;
        }
        StreamCommand::Ls => {
            let mut streams = js.streams();
            writeln!(
                out,
                "{:<24} {:>12} {:>14} {:>12}  SUBJECTS",
                "NAME", "MESSAGES", "BYTES", "LAST SEQ"
            )?;
            while let Some(info) = streams.next().await {
                let info = info.context("listing streams")?;
                let s = &info.state;
                writeln!(
                    out,
                    "{:<24} {:>12} {:>14} {:>12}  {}",
                    info.config.name,
                    s.messages,
                    s.bytes,
                    s.last_sequence,
                    info.config.subjects.join(",")
                )?;
            }
        }
        StreamCommand::Info { name, json } => {
            let mut stream = js
                .get_stream(&name)
                .await
                .with_context(|| format!("stream {name}"))?;
            let info = stream.info().await?.clone();
            if json {
                let reply = client
                    .request(format!("$JS.API.STREAM.INFO.{name}"), "".into())
                    .await
                    .context("asking for stream info")?;
                out.write_all(&reply.payload)?;
                writeln!(out)?;
            } else {
                let c = &info.config;
                let s = &info.state;
                writeln!(out, "stream {}", c.name)?;
                writeln!(out, "  subjects   {}", c.subjects.join(", "))?;
                writeln!(
                    out,
                    "  storage    {:?}, retention {:?}, discard {:?}",
                    c.storage, c.retention, c.discard
                )?;
                writeln!(
                    out,
                    "  limits     max_msgs {} max_bytes {} max_age {:?} per_subject {}",
                    c.max_messages, c.max_bytes, c.max_age, c.max_messages_per_subject
                )?;
                writeln!(
                    out,
                    "  messages   {} ({} bytes), sequences {}..={}",
                    s.messages, s.bytes, s.first_sequence, s.last_sequence
                )?;
                writeln!(out, "  consumers  {}", s.consumer_count)?;
            }
        }
        StreamCommand::Rm { name } => {
            js.delete_stream(&name)
                .await
                .with_context(|| format!("deleting stream {name}"))?;
            writeln!(out, "deleted stream {name}")?;
        }
        StreamCommand::Purge { name, subject } => {
            let stream = js
                .get_stream(&name)
                .await
                .with_context(|| format!("stream {name}"))?;
            let purged = match subject {
                Some(s) => stream.purge().filter(s).await,
                None => stream.purge().await,
            }
            .context("purging")?;
            writeln!(out, "purged {} messages", purged.purged)?;
        }
        StreamCommand::Get {
            name,
            seq,
            last_for,
        } => {
            let stream = js
                .get_stream(&name)
                .await
                .with_context(|| format!("stream {name}"))?;
            let msg = match (seq, last_for) {
                (_, Some(subject)) => stream.get_last_raw_message_by_subject(&subject).await,
                (Some(seq), None) => stream.get_raw_message(seq).await,
                (None, None) => bail!("give a sequence or --last-for SUBJECT"),
            }
            .context("getting the message")?;
            print_message(
                &mut out,
                msg.sequence,
                &msg.subject,
                msg.time,
                &msg.headers,
                &msg.payload,
                false,
            )?;
        }
        StreamCommand::View(view) => view_messages(&js, &view, &mut out).await?,
        StreamCommand::Redrive {
            name,
            subject,
            keep,
        } => {
            let n = redrive(&js, &name, subject.as_deref(), keep).await?;
            writeln!(out, "redrove {n} dead letters from {name}")?;
        }
    }
    Ok(())
}

impl AddArgs {
    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            storage: match self.storage {
                StorageArg::File => stream::StorageType::File,
                StorageArg::Memory => stream::StorageType::Memory,
            },
            retention: match self.retention {
                RetentionArg::Limits => stream::RetentionPolicy::Limits,
                RetentionArg::Interest => stream::RetentionPolicy::Interest,
                RetentionArg::Workqueue => stream::RetentionPolicy::WorkQueue,
            },
            max_messages: self.max_msgs,
            max_bytes: self.max_bytes,
            max_age: self.max_age.unwrap_or_default(),
            max_messages_per_subject: self.max_msgs_per_subject,
            discard: match self.discard {
                DiscardArg::Old => stream::DiscardPolicy::Old,
                DiscardArg::New => stream::DiscardPolicy::New,
            },
            duplicate_window: self.duplicate_window.unwrap_or_default(),
            allow_direct: self.allow_direct,
            ..Default::default()
        }
    }
}

fn print_message(
    out: &mut impl Write,
    seq: u64,
    subject: &str,
    time: OffsetDateTime,
    headers: &HeaderMap,
    payload: &[u8],
    raw: bool,
) -> anyhow::Result<()> {
    if raw {
        out.write_all(payload)?;
        writeln!(out)?;
        return Ok(());
    }
    let time = time.format(&Rfc3339).unwrap_or_default();
    writeln!(out, "[#{seq}] {time} {subject}")?;
    for (name, values) in headers.iter() {
        for value in values {
            writeln!(out, "  {name}: {value}")?;
        }
    }
    writeln!(out, "{}", String::from_utf8_lossy(payload))?;
    Ok(())
}

fn parse_since(text: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let age = humantime::parse_duration(text).with_context(|| {
        format!("--since {text:?} is neither an RFC 3339 time nor an age like 10m")
    })?;
    Ok(OffsetDateTime::now_utc() - age)
}

/// How long `view` waits for the next message before deciding it has
/// seen everything (only when the server does not say how many are left).
const VIEW_IDLE: Duration = Duration::from_secs(2);

async fn view_messages(
    js: &jetstream::Context,
    view: &ViewArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let stream = js
        .get_stream(&view.name)
        .await
        .with_context(|| format!("stream {}", view.name))?;
    let deliver_policy = match (&view.from_seq, &view.since) {
        (Some(seq), _) => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: *seq,
        },
        (None, Some(since)) => consumer::DeliverPolicy::ByStartTime {
            start_time: parse_since(since)?,
        },
        (None, None) => consumer::DeliverPolicy::All,
    };
    let reader = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy,
            filter_subject: view.subject.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await
        .context("creating a reader")?;
    let mut messages = reader.messages().await.context("reading")?;
    let mut seen = 0u64;
    while view.count.is_none_or(|n| seen < n) {
        let next = match tokio::time::timeout(VIEW_IDLE, messages.next()).await {
            Ok(Some(next)) => next.context("reading")?,
            Ok(None) | Err(_) => break,
        };
        let info = next
            .info()
            .map_err(|e| anyhow::anyhow!("bad delivery: {e}"))?;
        let headers = next.headers.clone().unwrap_or_default();
        print_message(
            out,
            info.stream_sequence,
            next.subject.as_str(),
            info.published,
            &headers,
            &next.payload,
            view.raw,
        )?;
        seen += 1;
        if info.pending == 0 {
            break;
        }
    }
    Ok(())
}

/// Header naming the subject a dead letter was first published on.
const DEAD_LETTER_SUBJECT: &str = "Herald-Dead-Letter-Subject";

async fn redrive(
    js: &jetstream::Context,
    name: &str,
    only: Option<&str>,
    keep: bool,
) -> anyhow::Result<u64> {
    let mut stream = js
        .get_stream(name)
        .await
        .with_context(|| format!("stream {name}"))?;
    let state = stream.info().await?.state.clone();
    let mut redriven = 0;
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(msg) = stream.get_raw_message(seq).await else {
            continue;
        };
        let Some(original) = msg.headers.get(DEAD_LETTER_SUBJECT).map(|v| v.to_string()) else {
            continue;
        };
        if let Some(pattern) = only {
            let pattern = herald_core::Pattern::new(pattern).context("--subject")?;
            let subject = herald_core::Subject::new(&original).context("dead letter subject")?;
            if !pattern.matches(&subject) {
                continue;
            }
        }
        let mut headers = HeaderMap::new();
        for (header, values) in msg.headers.iter() {
            if AsRef::<str>::as_ref(header).starts_with("Herald-Dead-Letter-") {
                continue;
            }
            for value in values {
                headers.append(header.clone(), value.clone());
            }
        }
        js.client()
            .publish_with_headers(original.clone(), headers, msg.payload.clone())
            .await
            .with_context(|| format!("republishing #{seq} to {original}"))?;
        if !keep {
            stream
                .delete_message(seq)
                .await
                .with_context(|| format!("deleting dead letter #{seq}"))?;
        }
        redriven += 1;
    }
    js.client().flush().await?;
    Ok(redriven)
}
