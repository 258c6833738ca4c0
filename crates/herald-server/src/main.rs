//! The `herald` binary: parse flags, set up logging, run, report errors plainly.

use std::process::ExitCode;

use clap::Parser;
use herald_server::cli::{Cli, Command};
use herald_server::{client, config::Config};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server's configuration sizes the runtime, so it is read first.
    let (serve_args, tool) = match cli.command {
        None => (Some(cli.serve), None),
        Some(Command::Serve(args)) => (Some(*args), None),
        Some(tool) => (None, Some(tool)),
    };
    let config = match serve_args.map(|args| args.to_config()).transpose() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("herald: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let threads = config.as_ref().map_or(0, |c| c.threads);
    let runtime = match build_runtime(threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herald: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (config, tool) {
        (Some(config), _) => runtime.block_on(serve(config)),
        (None, Some(tool)) => runtime.block_on(run(tool)),
        (None, None) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The multi-threaded runtime, with `threads` workers (0: one per CPU).
fn build_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if threads > 0 {
        builder.worker_threads(threads);
    }
    // A woken task normally runs next on the waking thread, in a slot other
    // threads cannot steal from: a connection's reader that wakes a
    // subscriber's writer then takes turns with it on one core while the
    // other idles. Without the slot, the writer is stealable and runs in
    // parallel (needs `--cfg tokio_unstable`, set in .cargo/config.toml).
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build()
}

/// The client and tool subcommands.
async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args.to_config()?).await,
        Command::Config => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Command::Pub(args) => client::publish(args).await,
        Command::Sub(args) => client::subscribe(args).await,
        Command::Request(args) => client::request(args).await,
        Command::Reply(args) => client::reply(args).await,
        Command::Stream(args) => herald_server::stream_cmd::run(args).await,
        Command::Kv(args) => herald_server::kv_cmd::run_kv(args).await,
        Command::Obj(args) => herald_server::kv_cmd::run_obj(args).await,
        Command::Passwd => passwd(),
    }
}

/// Reads a password (one line) on standard input and prints its hash.
fn passwd() -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (echoed; pipe it in to avoid that): ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    println!("{}", herald_server::auth::hash_password(password)?);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    init_logging(&config.log);
    let ready = config.validate()?;
    herald_server::serve(ready).await
}

fn init_logging(default: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
