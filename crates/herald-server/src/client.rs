//! Client subcommands (`pub`, `sub`, `request`, `reply`), built on the
//! async-nats client so they work against herald and nats-server alike.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::HeaderMap;
use bytes::Bytes;
use clap::Args;
use futures::StreamExt;

/// Where to connect, shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct ServerArg {
    /// Server URL.
    #[arg(
        long,
        short = 's',
        global = true,
        env = "HERALD_SERVER",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub server: String,
    /// User name (with --password); `nats://user:password@host` works too.
    #[arg(long, global = true, env = "HERALD_USER", requires = "password")]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, global = true, env = "HERALD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Bearer token; `nats://token@host` works too.
    #[arg(
        long,
        global = true,
        env = "HERALD_TOKEN",
        hide_env_values = true,
        conflicts_with = "user"
    )]
    pub token: Option<String>,
}

impl ServerArg {
    /// The credentials to log in with: the flags, else the URL's user part.
    fn credentials(&self) -> Option<(String, Option<String>)> {
        if let Some(token) = &self.token {
            return Some((token.clone(), None));
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            return Some((user.clone(), Some(password.clone())));
        }
        let (_, rest) = self.server.split_once("://")?;
        let (userinfo, _) = rest.split_once('@')?;
        Some(match userinfo.split_once(':') {
            Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
            None => (userinfo.to_owned(), None),
        })
    }
}

/// Flags of `herald pub`.
#[derive(Debug, Args)]
pub struct PubArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Subject to publish on.
    subject: String,
    /// Payload (default: empty). `{{n}}` is replaced by the message number.
    #[arg(default_value = "")]
    data: String,
    /// Publish this many messages.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Header `Name:value`; repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// Reply subject to attach.
    #[arg(long)]
    reply: Option<String>,
}

/// Flags of `herald sub`.
#[derive(Debug, Args)]
pub struct SubArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Pattern to subscribe to (`*` one token, `>` the rest).
    pattern: String,
    /// Join this queue group.
    #[arg(long, short = 'q')]
    queue: Option<String>,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Print only payloads, one per line.
    #[arg(long)]
    raw: bool,
}

/// Flags of `herald request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Subject to send the request to.
    subject: String,
    /// Request payload.
    #[arg(default_value = "")]
    data: String,
    /// Header `Name:value`; repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// How long to wait for the reply.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Flags of `herald reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The server (with credentials of a user allowed to publish on
    /// $SYS.REQ.SERVER.RELOAD, e.g. `nats://admin:secret@host:4222`).
    #[command(flatten)]
    server: ServerArg,
}

/// `herald reload`: asks the server to re-read its configuration and
/// prints what it did; fails if the server refused the new configuration.
pub async fn reload(args: ReloadArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(crate::reload::RELOAD_SUBJECT, Bytes::new()),
    )
    .await
    .context("no answer to the reload request within 10s")?
    .context("reload request")?;
    let answer: serde_json::Value =
        serde_json::from_slice(&reply.payload).context("the server's answer is not JSON")?;
    if let Some(error) = answer.get("error").and_then(serde_json::Value::as_str) {
        bail!("the server kept its configuration: {error}");
    }
    println!("{answer}");
    Ok(())
}

/// Flags of `herald reply`.
#[derive(Debug, Args)]
pub struct ReplyArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Subject to answer requests on.
    subject: String,
    /// Reply payload (default: echo the request).
    data: Option<String>,
    /// Queue group (default: `herald-reply`, so several repliers share work).
    #[arg(long, short = 'q', default_value = "herald-reply")]
    queue: String,
    /// Exit after answering this many requests.
    #[arg(long)]
    count: Option<u64>,
}

pub(crate) async fn connect(server: &ServerArg) -> anyhow::Result<async_nats::Client> {
    let options = match server.credentials() {
        Some((user, Some(password))) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        Some((token, None)) => async_nats::ConnectOptions::with_token(token),
        None => async_nats::ConnectOptions::new(),
    };
    options
        .name("herald-cli")
        .connect(server.server.as_str())
        .await
        .with_context(|| format!("connecting to {}", server.server))
}

/// Waits until the server has processed everything sent so far on
/// `client`'s connection (async-nats's `flush` only writes its buffer). It
/// asks a subject nobody serves and waits for the immediate no-responders
/// status, which works against herald and nats-server alike.
async fn round_trip(client: &async_nats::Client) -> anyhow::Result<()> {
    let subject = format!("_HERALD.sync.{}", rand::random::<u64>());
    match client.request(subject, Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == async_nats::client::RequestErrorKind::NoResponders => Ok(()),
        Err(err) => Err(err).context("waiting for the server"),
    }
}

fn parse_headers(raw: &[String]) -> anyhow::Result<Option<HeaderMap>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut map = HeaderMap::new();
    for item in raw {
        let Some((name, value)) = item.split_once(':') else {
            bail!("header {item:?} is not NAME:VALUE");
        };
        map.insert(name.trim(), value.trim());
    }
    Ok(Some(map))
}

/// `herald pub`.
///
/// # Errors
/// Connection or publish failures.
pub async fn publish(args: PubArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let headers = parse_headers(&args.headers)?;
    let show_progress = args.count >= 10_000;
    for n in 1..=args.count {
        let payload = Bytes::from(args.data.replace("{{n}}", &n.to_string()));
        let subject = args.subject.clone();
        match (&args.reply, &headers) {
            (Some(reply), Some(h)) => {
                client
                    .publish_with_reply_and_headers(subject, reply.clone(), h.clone(), payload)
                    .await?;
            }
            (Some(reply), None) => {
                client
                    .publish_with_reply(subject, reply.clone(), payload)
                    .await?
            }
            (None, Some(h)) => {
                client
                    .publish_with_headers(subject, h.clone(), payload)
                    .await?
            }
            (None, None) => client.publish(subject, payload).await?,
        }
        if show_progress && n % 10_000 == 0 {
            eprint!("\rpublished {n}/{}", args.count);
        }
    }
    client.flush().await.context("flushing")?;
    if show_progress {
        eprintln!();
    }
    eprintln!("published {} message(s) to {}", args.count, args.subject);
    Ok(())
}

/// `herald sub`.
///
/// # Errors
/// Connection or subscribe failures.
pub async fn subscribe(args: SubArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let mut sub = match &args.queue {
        Some(q) => {
            client
                .queue_subscribe(args.pattern.clone(), q.clone())
                .await?
        }
        None => client.subscribe(args.pattern.clone()).await?,
    };
    round_trip(&client).await?;
    eprintln!("listening on {}", args.pattern);
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    while let Some(msg) = sub.next().await {
        n += 1;
        if args.raw {
            out.write_all(&msg.payload)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "[#{n}] {}", msg.subject)?;
            if let Some(headers) = &msg.headers {
                for (name, values) in headers.iter() {
                    for value in values {
                        writeln!(out, "  {name}: {value}")?;
                    }
                }
            }
            writeln!(out, "{}", String::from_utf8_lossy(&msg.payload))?;
        }
        out.flush()?;
        if args.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(())
}

/// `herald request`.
///
/// # Errors
/// Connection failures, no responders, or a timeout.
pub async fn request(args: RequestArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let mut request = async_nats::Request::new()
        .payload(Bytes::from(args.data))
        .timeout(Some(args.timeout));
    if let Some(headers) = parse_headers(&args.headers)? {
        request = request.headers(headers);
    }
    let reply = client
        .send_request(args.subject.clone(), request)
        .await
        .with_context(|| format!("request to {}", args.subject))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&reply.payload)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// `herald reply`.
///
/// # Errors
/// Connection or subscribe failures.
pub async fn reply(args: ReplyArgs) -> anyhow::Result<()> {
    let client = connect(&args.server).await?;
    let mut sub = client
        .queue_subscribe(args.subject.clone(), args.queue.clone())
        .await?;
    round_trip(&client).await?;
    eprintln!("answering requests on {}", args.subject);
    let mut n = 0u64;
    while let Some(msg) = sub.next().await {
        let Some(reply_to) = msg.reply else { continue };
        let payload = match &args.data {
            Some(data) => Bytes::from(data.clone()),
            None => msg.payload.clone(),
        };
        client.publish(reply_to, payload).await?;
        n += 1;
        if args.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    client.flush().await?;
    Ok(())
}
