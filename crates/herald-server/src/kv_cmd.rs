//! `herald kv` and `herald obj`: Key-Value buckets and object stores from
//! the shell, on async-nats, so they work against herald and nats-server
//! alike.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, kv, object_store};
use clap::{Args, Subcommand};
use futures::StreamExt;

use crate::client::{ServerArg, connect};

/// Flags of `herald kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    server: ServerArg,
    #[command(subcommand)]
    command: KvCommand,
}

/// What to do with a bucket.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Create a bucket (an existing one is fine).
    Add {
        /// Bucket name.
        bucket: String,
        /// Revisions kept per key.
        #[arg(long, default_value_t = 1)]
        history: i64,
        /// How long values live (e.g. `1h`); unlimited when absent.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
    },
    /// Set a key (creates the bucket if needed); prints the revision.
    Put {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Print a key's value (`--revision N` for an older one).
    Get {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// A past revision.
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Delete a key (its history stays; `--purge` removes it too).
    Del {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Remove the key's history as well.
        #[arg(long)]
        purge: bool,
    },
    /// Print every change to the bucket (or to keys matching `key`) as it happens.
    Watch {
        /// Bucket name.
        bucket: String,
        /// Key or pattern (`>` for all).
        #[arg(default_value = ">")]
        key: String,
        /// Start with each key's current value.
        #[arg(long)]
        history: bool,
    },
    /// List the keys of a bucket (or the buckets, without one).
    Ls {
        /// Bucket name.
        bucket: Option<String>,
    },
    /// Print a key's revisions.
    History {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
    },
}

/// Flags of `herald obj`.
#[derive(Debug, Args)]
pub struct ObjArgs {
    #[command(flatten)]
    server: ServerArg,
    #[command(subcommand)]
    command: ObjCommand,
}

/// What to do with an object store.
#[derive(Debug, Subcommand)]
pub enum ObjCommand {
    /// Store a file (creates the store if needed).
    Put {
        /// Store name.
        bucket: String,
        /// The file.
        file: PathBuf,
        /// Object name [default: the file's name].
        #[arg(long)]
        name: Option<String>,
    },
    /// Write an object to a file (`-` for standard output).
    Get {
        /// Store name.
        bucket: String,
        /// Object name.
        name: String,
        /// Where to write it [default: the object's name].
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// List the objects of a store.
    Ls {
        /// Store name.
        bucket: String,
    },
    /// Delete an object.
    Rm {
        /// Store name.
        bucket: String,
        /// Object name.
        name: String,
    },
}

async fn bucket(js: &jetstream::Context, name: &str) -> anyhow::Result<kv::Store> {
    js.get_key_value(name)
        .await
        .with_context(|| format!("bucket {name:?}"))
}

fn operation(op: kv::Operation) -> &'static str {
    match op {
        kv::Operation::Put => "PUT",
        kv::Operation::Delete => "DEL",
        kv::Operation::Purge => "PURGE",
    }
}

/// Runs `herald kv …`.
///
/// # Errors
/// The server cannot be reached or refuses the request.
pub async fn run_kv(args: KvArgs) -> anyhow::Result<()> {
    let js = jetstream::new(connect(&args.server).await?);
    let mut out = std::io::stdout().lock();
    match args.command {
        KvCommand::Add {
            bucket,
            history,
            ttl,
        } => {
            js.create_key_value(kv::Config {
                bucket: bucket.clone(),
                history,
                max_age: ttl.unwrap_or_default(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating bucket {bucket:?}"))?;
            writeln!(out, "bucket {bucket} keeps {history} revision(s) per key")?;
        }
        KvCommand::Put { bucket, key, value } => {
            let store = match js.get_key_value(&bucket).await {
                Ok(store) => store,
                Err(_) => js
                    .create_key_value(kv::Config {
                        bucket: bucket.clone(),
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("creating bucket {bucket:?}"))?,
            };
            let revision = store.put(&key, value.into()).await.context("put")?;
            writeln!(out, "{key} revision {revision}")?;
        }
        KvCommand::Get {
            bucket: name,
            key,
            revision,
        } => {
            let store = bucket(&js, &name).await?;
            let entry = match revision {
                Some(r) => store.entry_for_revision(&key, r).await,
                None => store.entry(&key).await,
            }
            .context("get")?;
            match entry {
                Some(e) if e.operation == kv::Operation::Put => {
                    out.write_all(&e.value)?;
                    writeln!(out)?;
                }
                _ => bail!("{key}: no such key"),
            }
        }
        KvCommand::Del {
            bucket: name,
            key,
            purge,
        } => {
            let store = bucket(&js, &name).await?;
            if purge {
                store.purge(&key).await.context("purge")?;
            } else {
                store.delete(&key).await.context("delete")?;
            }
            writeln!(out, "{key} {}", if purge { "purged" } else { "deleted" })?;
        }
        KvCommand::Watch {
            bucket: name,
            key,
            history,
        } => {
            let store = bucket(&js, &name).await?;
            let mut watch = if history {
                store.watch_with_history(&key).await
            } else {
                store.watch(&key).await
            }
            .context("watch")?;
            while let Some(entry) = watch.next().await {
                let e = entry.context("watch")?;
                writeln!(
                    out,
                    "[{}] {} {} = {}",
                    e.revision,
                    operation(e.operation),
                    e.key,
                    String::from_utf8_lossy(&e.value)
                )?;
                out.flush()?;
            }
        }
        KvCommand::Ls { bucket: None } => {
            let mut names = js.stream_names();
            while let Some(name) = names.next().await {
                if let Some(bucket) = name.context("listing streams")?.strip_prefix("KV_") {
                    writeln!(out, "{bucket}")?;
                }
            }
        }
        KvCommand::Ls { bucket: Some(name) } => {
            let store = bucket(&js, &name).await?;
            let mut keys = store.keys().await.context("keys")?;
            while let Some(key) = keys.next().await {
                writeln!(out, "{}", key.context("keys")?)?;
            }
        }
        KvCommand::History { bucket: name, key } => {
            let store = bucket(&js, &name).await?;
            let mut history = store.history(&key).await.context("history")?;
            while let Some(entry) = history.next().await {
                let e = entry.context("history")?;
                writeln!(
                    out,
                    "[{}] {} {}",
                    e.revision,
                    operation(e.operation),
                    String::from_utf8_lossy(&e.value)
                )?;
            }
        }
    }
    Ok(())
}

/// Runs `herald obj …`.
///
/// # Errors
/// The server cannot be reached, refuses the request, or a file cannot be
/// read or written.
pub async fn run_obj(args: ObjArgs) -> anyhow::Result<()> {
    let js = jetstream::new(connect(&args.server).await?);
    let open = |name: String| {
        let js = js.clone();
        async move {
            js.get_object_store(&name)
                .await
                .with_context(|| format!("object store {name:?}"))
        }
    };
    // Unlocked: `obj get -` copies to standard output from another thread.
    let mut out = std::io::stdout();
    match args.command {
        ObjCommand::Put { bucket, file, name } => {
            let store = match js.get_object_store(&bucket).await {
                Ok(store) => store,
                Err(_) => js
                    .create_object_store(object_store::Config {
                        bucket: bucket.clone(),
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("creating object store {bucket:?}"))?,
            };
            let name = match name {
                Some(name) => name,
                None => file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .context("the file has no name; give one with --name")?,
            };
            let mut reader = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let info = store
                .put(name.as_str(), &mut reader)
                .await
                .context("storing the object")?;
            writeln!(
                out,
                "{} stored: {} bytes in {} chunks",
                info.name, info.size, info.chunks
            )?;
        }
        ObjCommand::Get {
            bucket,
            name,
            output,
        } => {
            let store = open(bucket).await?;
            let mut object = store.get(&name).await.context("getting the object")?;
            let path = output.unwrap_or_else(|| PathBuf::from(&name));
            if path.as_os_str() == "-" {
                let mut stdout = tokio::io::stdout();
                tokio::io::copy(&mut object, &mut stdout).await?;
            } else {
                let mut file = tokio::fs::File::create(&path)
                    .await
                    .with_context(|| format!("creating {}", path.display()))?;
                let n = tokio::io::copy(&mut object, &mut file).await?;
                writeln!(out, "{name}: {n} bytes written to {}", path.display())?;
            }
        }
        ObjCommand::Ls { bucket } => {
            let store = open(bucket).await?;
            let mut list = store.list().await.context("listing")?;
            while let Some(info) = list.next().await {
                let info = info.context("listing")?;
                writeln!(out, "{}\t{}", info.name, info.size)?;
            }
        }
        ObjCommand::Rm { bucket, name } => {
            let store = open(bucket).await?;
            store.delete(&name).await.context("deleting")?;
            writeln!(out, "{name} deleted")?;
        }
    }
    Ok(())
}
