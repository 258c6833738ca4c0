//! The `herald` binary: parse flags, set up logging, run, report errors plainly.

use std::process::ExitCode;

use clap::Parser;
use herald_server::cli::{Cli, Command};
use herald_server::client;
use herald_server::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server's configuration sizes the runtime, so it is read first.
    let check_only = cli.serve.check_config;
    let (serve_args, tool) = match cli.command {
        None => (Some(cli.serve), None),
        Some(Command::Serve(args)) => (Some(*args), None),
        Some(tool) => (None, Some(tool)),
    };
    let check_only = check_only || serve_args.as_ref().is_some_and(|a| a.check_config);
    let source = serve_args.clone().map(|args| {
        let source: herald_server::reload::ConfigSource =
            std::sync::Arc::new(move || args.to_config());
        source
    });
    let config = match serve_args.map(|args| args.to_config()).transpose() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("herald: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    if check_only {
        return check_config(config.as_ref());
    }
    let threads = config.as_ref().map_or(0, |c| c.threads);
    let runtime = match build_runtime(threads) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herald: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match (config, source, tool) {
        (Some(config), Some(source), _) => runtime.block_on(serve(config, source)),
        (None, _, Some(tool)) => runtime.block_on(run(tool)),
        _ => Ok(()),
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
        Command::Serve(args) => {
            // Taken in `main`: listed here for completeness.
            let config = args.to_config()?;
            let source: herald_server::reload::ConfigSource =
                std::sync::Arc::new(move || args.to_config());
            serve(config, source).await
        }
        Command::Reload(args) => client::reload(args).await,
        Command::Config => {
            print!("{}", herald_server::config_doc::commented_default());
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
        Command::Completions { shell } => {
            use std::io::Write;
            let mut command = <Cli as clap::CommandFactory>::command();
            // Into a buffer: the generator panics on a closed pipe (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "herald", &mut script);
            std::io::stdout().write_all(&script)?;
            Ok(())
        }
        Command::Health { addr } => health(&addr),
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            Ok(())
        }
    }
}

/// `herald health`: GET /healthz with a short timeout; fails unless 200.
fn health(addr: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(3);
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{addr}: no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("ok");
        Ok(())
    } else {
        anyhow::bail!("{addr}: {status}")
    }
}

/// `--check-config`: validates what the server would start with.
fn check_config(config: Option<&Config>) -> ExitCode {
    let Some(config) = config else {
        eprintln!("herald: --check-config checks the serve configuration");
        return ExitCode::FAILURE;
    };
    match config.validate() {
        Ok(ready) => {
            println!("configuration OK");
            for (name, addr) in [
                ("nats", ready.nats),
                ("redis", ready.redis),
                ("mqtt", ready.mqtt),
                ("http", ready.http),
                ("monitor", ready.monitor),
            ] {
                match addr {
                    Some(addr) => println!("  {name:<8} {addr}"),
                    None => println!("  {name:<8} off"),
                }
            }
            println!("  data     {}", ready.data_dir.display());
            for warning in herald_server::exposure_warnings(&ready) {
                println!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("herald: {error:#}");
            ExitCode::FAILURE
        }
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

async fn serve(config: Config, source: herald_server::reload::ConfigSource) -> anyhow::Result<()> {
    init_logging(&config.log, config.log_format);
    let ready = config.validate()?;
    for warning in herald_server::exposure_warnings(&ready) {
        tracing::warn!("{warning}");
    }
    herald_server::serve(ready, source).await
}

/// Logging to stderr with `filter` (the `log` key: flag, HERALD_LOG,
/// RUST_LOG, file, in that order); colours only when stderr is a terminal.
fn init_logging(filter: &str, format: LogFormat) {
    // openraft narrates every vote and append at info: its warnings are
    // what an operator needs, unless the filter asks for more of it.
    let filter = if filter.contains("openraft") {
        filter.to_owned()
    } else {
        format!("{filter},openraft=warn")
    };
    // Validation refused a bad filter before this runs.
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // The connection's span (protocol, address) on each line, not the whole stack.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => {
            use std::io::IsTerminal;
            builder.with_ansi(std::io::stderr().is_terminal()).init();
        }
    }
}
