//! The `host` binary: parse the command line, set up logging, serve.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use wsbox::cli::{CheckArgs, Cli, Command, LogFormat, ServeArgs};
use wsbox::config::ServerConfig;
use wsbox::metrics::Metrics;
use wsbox::reload::Reloader;
use wsbox::runtime::Runtime;
use wsbox::server::Server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => return check(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `host check`: compile and link APP, print its imports and exports.
fn check(args: &CheckArgs) -> ExitCode {
    let app = args.app.display();
    let mut config = ServerConfig::default();
    config.max_connections = 1;
    config.cache_dir = wsbox::runtime::default_cache_dir();
    let report = (|| -> anyhow::Result<_> {
        let runtime = Runtime::new(Arc::new(config))?;
        let bytes =
            std::fs::read(&args.app).with_context(|| format!("reading {}", args.app.display()))?;
        Ok(runtime.check_bytes(&bytes)?)
    })();
    match report {
        Ok(report) => {
            println!(
                "{app}: ok, fits wsbox:websocket/handler (version {})",
                report.version
            );
            println!("imports:");
            for (name, item) in &report.imports {
                println!("  {name}: {item}");
            }
            println!("exports:");
            for (name, item) in &report.exports {
                println!("  {name}: {item}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{app}: invalid: {}", wsbox::runtime::one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot listen for SIGINT/SIGTERM; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Memory mappings one live guest instance costs (measured: a few).
const MAPS_PER_INSTANCE: usize = 6;

/// Warn when the kernel's per-process mapping limit cannot hold the
/// configured number of live instances: past it, instantiation fails.
fn check_map_count(max_connections: usize) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        return;
    };
    let Ok(limit) = text.trim().parse::<usize>() else {
        return;
    };
    let needed = max_connections.saturating_mul(MAPS_PER_INSTANCE);
    if needed > limit {
        tracing::warn!(
            max_connections,
            vm_max_map_count = limit,
            "vm.max_map_count caps live guest instances near {}; raise it to at least {needed} \
             (sysctl -w vm.max_map_count={needed}) or lower --max-connections",
            limit / MAPS_PER_INSTANCE
        );
    }
}

/// Keep metrics and serve them (with the health checks) on `addr`.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    wasm: &Arc<Runtime>,
    server: &Arc<Server>,
) -> anyhow::Result<()> {
    let metrics = Metrics::new(server.topics().clone());
    wasm.set_metrics(metrics.clone());
    server.set_metrics(metrics.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr}"))?;
    let local = listener
        .local_addr()
        .context("reading the metrics address")?;
    tracing::info!("metrics on http://{local}/metrics");
    tokio::spawn(wsbox::server::admin::serve(
        listener,
        server.clone(),
        metrics,
    ));
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Arc::new(args.config());
    check_map_count(config.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let wasm = Arc::new(Runtime::new(config.clone())?);
        let guest = wasm.load(&args.app)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let local = listener
            .local_addr()
            .context("reading the listen address")?;
        let version = guest.version().to_owned();
        let server = Server::new(wasm.clone(), guest, config.clone());
        if let Some(addr) = config.metrics_listen {
            serve_metrics(addr, &wasm, &server).await?;
        }
        // Watching starts before we say we listen: a change made after
        // that line is never missed.
        Reloader::new(wasm, server.clone(), args.app.clone(), config.drain_after).spawn()?;
        tracing::info!(
            app = %args.app.display(),
            version,
            "listening on ws://{local}"
        );
        server
            .serve(listener, shutdown_signal())
            .await
            .context("serving")
    })
}
