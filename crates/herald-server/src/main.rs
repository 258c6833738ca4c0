//! The `herald` binary: parse flags, set up logging, run, report errors plainly.

use std::process::ExitCode;

use clap::Parser;
use herald_server::cli::{Cli, Command, ServeArgs};
use herald_server::{client, config::Config};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // A woken task normally runs next on the waking thread, in a slot other
    // threads cannot steal from: a connection's reader that wakes a
    // subscriber's writer then takes turns with it on one core while the
    // other idles. Without the slot, the writer is stealable and runs in
    // parallel (needs `--cfg tokio_unstable`, set in .cargo/config.toml).
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herald: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Config) => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Some(Command::Pub(args)) => client::publish(args).await,
        Some(Command::Sub(args)) => client::subscribe(args).await,
        Some(Command::Request(args)) => client::request(args).await,
        Some(Command::Reply(args)) => client::reply(args).await,
        Some(Command::Stream(args)) => herald_server::stream_cmd::run(args).await,
        Some(Command::Passwd) => passwd(),
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
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
