//! The `isr-proxy` binary: parse arguments, load the config, run the server, or run an operator subcommand
//! (`isr_proxy::cli`). Everything else is in the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use isr_proxy::cli::Outcome;
use isr_proxy::{Clock, Config, Listening, LiveProxy, Proxy, Reloader};
use tokio::net::TcpListener;

/// jemalloc: its per-thread caches make the few allocations of a cache hit cheaper than glibc's malloc
/// (about 1.5 µs less CPU per 8 KiB hit in one `benches/peers.sh` run), at the same peak memory. mimalloc was
/// tried too: as fast, but it kept 4 to 6 times glibc's peak memory after filling the cache.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Incremental Static Regeneration reverse proxy.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file.
    #[arg(long, short, global = true, default_value = "isr-proxy.toml")]
    config: PathBuf,
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config file, print the route table, and exit.
    Check,
    #[command(flatten)]
    Operator(isr_proxy::cli::Command),
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Some(Command::Check) => check(&cli.config).map(|()| Outcome::Succeeded),
        Some(Command::Operator(command)) => operate(command),
        None => serve(&cli.config).map(|()| Outcome::Succeeded),
    };
    match result {
        Ok(Outcome::Succeeded) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn operate(command: isr_proxy::cli::Command) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let outcome = runtime.block_on(isr_proxy::cli::run(command, &mut std::io::stdout().lock()));
    match outcome {
        // A closed pipe (`inspect | head`) is not an error worth reporting.
        Err(isr_proxy::cli::CliError::Output(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(Outcome::Succeeded)
        }
        other => Ok(other?),
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check(path: &PathBuf) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    // A closed pipe (`check | head`) is not an error worth a panic.
    let _ = print_route_table(path, &config, &mut std::io::stdout().lock());
    Ok(())
}

fn print_route_table(path: &Path, config: &Config, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}: ok", path.display())?;
    writeln!(out, "listen {}  origin {}", config.listen, config.origin.url)?;
    writeln!(out, "{:<32} {:<14} {:<12} query", "route", "revalidate", "mode")?;
    for rule in config.routes.rules() {
        let (revalidate, mode) = if rule.cache {
            (
                rule.revalidate.to_string(),
                format!("{:?}", rule.fallback).to_lowercase(),
            )
        } else {
            ("-".to_owned(), "pass-through".to_owned())
        };
        let route = if rule.hosts.is_empty() {
            rule.pattern.clone()
        } else {
            let hosts: Vec<String> = rule.hosts.iter().map(ToString::to_string).collect();
            format!("{}{}", hosts.join(","), rule.pattern)
        };
        writeln!(out, "{route:<32} {revalidate:<14} {mode:<12} {:?}", rule.query)?;
    }
    writeln!(out, "{:<32} {:<14} {:<12}", "(anything else)", "-", "pass-through")
}

fn serve(path: &PathBuf) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.workers)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let bound = isr_proxy::listener::bind(config.listen, config.server.reuse_port)
            .with_context(|| format!("cannot listen on {} (`listen`)", config.listen))?;
        let admin = match config.admin.listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (`admin.listen`)"))?,
            ),
            None => None,
        };
        let listen = bound.local_addr().unwrap_or(config.listen);
        tracing::info!(listen = %listen, origin = %config.origin.url, routes = config.routes.rules().len(), reuse_port = config.server.reuse_port, "isr-proxy ready");
        let live = LiveProxy::new(Proxy::new(&config, Clock::system()));
        #[cfg(unix)]
        tokio::spawn(isr_proxy::reload::reload_on_sighup(Arc::new(Reloader::new(
            path.clone(),
            config.clone(),
            live.clone(),
        ))));
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        // Started first, so `/health` shows prerendering progress while the public listener waits for it.
        let admin = admin.map(|listener| {
            tracing::info!(admin = ?listener.local_addr().ok(), "admin listener: /metrics, /health");
            tokio::spawn(isr_proxy::run_admin_live(listener, live.clone(), async {
                let _ = admin_stopped.await;
            }))
        });
        let limits = config.server.clone();
        isr_proxy::run_live(Listening::Deferred(bound), live, shutdown_signal(), limits).await;
        let _ = stop_admin.send(());
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        anyhow::Ok(())
    })?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
