//! The `host` binary: parse the command line, set up logging, serve.

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};
use wsbox::cli::{CheckArgs, Command, LogFormat, ServeArgs};
use wsbox::config::{ServerConfig, TableInit};
use wsbox::config_file::{self, ConfigError};
use wsbox::metrics::Metrics;
use wsbox::reload::Reloader;
use wsbox::runtime::{Cost, PoolPlan, Runtime};
use wsbox::server::Server;
use wsbox::server::tls::CertStore;

/// Changes the log filter of the running process.
type LogFilter = reload::Handle<EnvFilter, Registry>;

fn main() -> ExitCode {
    // First, while this is the only thread.
    wsbox::server::trim::configure_allocator();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = match config_file::resolve(&argv) {
        Ok(cli) => cli,
        // Usage errors, --help and --version, as clap prints them.
        Err(ConfigError::CommandLine(error)) => error.exit(),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let log_level = match &cli.command {
        Command::Serve(args) | Command::Config(args) => args.log_level.clone(),
        Command::Check(_) => None,
    };
    let log_filter = init_logging(cli.log_format, log_level.as_deref());
    let result = match cli.command {
        Command::Serve(args) => serve(args, argv, cli.log_format, log_filter),
        Command::Check(args) => return check(&args),
        Command::Config(_) => return print_config(&argv),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log to stderr in `format`, filtered by `level` (else RUST_LOG, else
/// `info`); the filter can be changed later through the handle.
fn init_logging(format: LogFormat, level: Option<&str>) -> LogFilter {
    let (filter, handle) = reload::Layer::new(log_filter(level));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry.with(layer).init(),
        LogFormat::Json => registry.with(layer.json()).init(),
    }
    handle
}

/// The filter for `--log-level` (checked by the command line already).
fn log_filter(level: Option<&str>) -> EnvFilter {
    level
        .and_then(|level| EnvFilter::try_new(level).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

/// `host config`: the effective configuration as TOML.
fn print_config(argv: &[OsString]) -> ExitCode {
    match config_file::effective_toml(argv) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// On SIGHUP, re-read the --config file (under the same command line):
/// apply what can change live, log what needs a restart. A file that no
/// longer parses changes nothing.
async fn reload_config(
    argv: Vec<OsString>,
    mut running: ServeArgs,
    log_format: LogFormat,
    server: Arc<Server>,
    filter_handle: LogFilter,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Some(file) = running.config.clone() else {
        return;
    };
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the configuration file is read once");
        return;
    };
    while hangup.recv().await.is_some() {
        let (args, new_format) = match config_file::resolve(&argv) {
            Ok(cli) => match cli.command {
                Command::Serve(args) => (args, cli.log_format),
                Command::Check(_) | Command::Config(_) => continue,
            },
            Err(error) => {
                tracing::error!("configuration not reloaded, the running one stays: {error}");
                continue;
            }
        };
        let mut restart = server.update_config(&args.config());
        if args.app != running.app {
            restart.push("app");
        }
        if new_format != log_format {
            restart.push("log-format");
        }
        if args.log_level != running.log_level {
            let applied = filter_handle.reload(log_filter(args.log_level.as_deref()));
            if let Err(error) = applied {
                tracing::warn!(%error, "log level not changed");
            }
        }
        tracing::info!(file = %file.display(), "configuration reloaded");
        for key in restart {
            tracing::warn!(
                key,
                file = %file.display(),
                "changed, but takes effect only after a restart"
            );
        }
        // Only the log level changed live; the rest is compared with what
        // runs, so a pending restart is reported at every reload.
        running.log_level = args.log_level;
    }
}

/// `host check`: compile and link APP in a pool sized as `host serve`
/// would size it, print its imports and exports, what one connection of it
/// costs, and whether it fits the pool.
fn check(args: &CheckArgs) -> ExitCode {
    let app = args.app.display();
    let mut config = ServerConfig::default();
    config.max_connections = args.pool.max_connections;
    config.guest_memory = usize::try_from(args.pool.guest_memory).unwrap_or(usize::MAX);
    config.pool_core_instances = args.pool.pool_core_instances;
    config.guest_stack = usize::try_from(args.pool.guest_stack).unwrap_or(usize::MAX);
    config.decommit_batch = args.pool.decommit_batch;
    config.memory_init = args.pool.memory_init;
    config.table_init = args.pool.table_init;
    config.cache_dir = wsbox::runtime::default_cache_dir();
    let (min_core, guest_memory) = (config.pool_core_instances, config.guest_memory);
    let report = (|| -> anyhow::Result<_> {
        let bytes =
            std::fs::read(&args.app).with_context(|| format!("reading {}", args.app.display()))?;
        let runtime = Runtime::new(Arc::new(config), &first_cost(&bytes))?;
        Ok((runtime.check_bytes(&bytes)?, *runtime.pool()))
    })();
    let (report, pool) = match report {
        Ok(report) => report,
        Err(error) => {
            eprintln!("{app}: invalid: {}", wsbox::runtime::one_line(&error));
            return ExitCode::FAILURE;
        }
    };
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
    let cost = &report.footprint.cost;
    println!("per connection:");
    println!("  linear memory at start: {} bytes", cost.memory_bytes);
    println!("  active data segments: {} bytes", cost.data_bytes);
    println!("  core instances: {}", cost.core_instances);
    println!("  memories: {}", cost.memories);
    println!(
        "  tables: {} ({} elements at start)",
        cost.tables, cost.table_elements
    );
    println!("WASI interfaces:");
    for name in report.footprint.wasi_imports() {
        println!("  {name}");
    }
    println!(
        "pool: {} connections (--max-connections {} + {}) × {}, {}, {}: fits",
        pool.slots,
        args.pool.max_connections,
        wsbox::runtime::SPARE_SLOTS,
        counted(pool.core_instances, "core instance"),
        counted(pool.memories, "memory"),
        counted(pool.tables, "table"),
    );
    // A host started with a smaller component keeps the floor only.
    let floor = PoolPlan::new(
        args.pool.max_connections,
        min_core,
        guest_memory,
        &Default::default(),
    );
    match floor.admit(cost) {
        Ok(()) => println!(
            "hot swap: fits a host started with a smaller component \
             (--pool-core-instances {min_core})"
        ),
        Err(why) => println!("hot swap: a host started with a smaller component refuses it: {why}"),
    }
    ExitCode::SUCCESS
}

/// `n thing(s)`.
fn counted(n: u32, thing: &str) -> String {
    match (n, thing.strip_suffix('y')) {
        (1, _) => format!("1 {thing}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        (_, None) => format!("{n} {thing}s"),
    }
}

/// What the first app costs per connection, to size the pool. One that
/// cannot be read gets the pool's floor; loading it then says what is wrong.
fn first_cost(bytes: &[u8]) -> Cost {
    wsbox::runtime::measure(bytes)
        .map(|footprint| footprint.cost)
        .unwrap_or_default()
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

/// Memory mappings one live guest instance costs with one linear memory
/// (measured: a few; its memory slot, copy-on-write image and stack).
const MAPS_PER_INSTANCE: usize = 6;

/// Memory mappings each further linear memory of an instance costs
/// (measured with wasmtime 48: 3 with a copy-on-write data image, 2
/// without).
const MAPS_PER_EXTRA_MEMORY: usize = 3;

/// Warn when the kernel's per-process mapping limit cannot hold the
/// configured number of live instances: past it, instantiation fails.
/// Core instances and tables map nothing of their own (their pools are one
/// mapping each); memories do.
fn check_map_count(max_connections: usize, pool: &PoolPlan) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        return;
    };
    let Ok(limit) = text.trim().parse::<usize>() else {
        return;
    };
    let extra_memories = usize::try_from(pool.memories.saturating_sub(1)).unwrap_or(usize::MAX);
    let per_instance =
        MAPS_PER_INSTANCE.saturating_add(MAPS_PER_EXTRA_MEMORY.saturating_mul(extra_memories));
    let needed = max_connections.saturating_mul(per_instance);
    if needed > limit {
        tracing::warn!(
            max_connections,
            vm_max_map_count = limit,
            "vm.max_map_count caps live guest instances near {}; raise it to at least {needed} \
             (sysctl -w vm.max_map_count={needed}) or lower --max-connections",
            limit / per_instance
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

fn serve(
    args: ServeArgs,
    argv: Vec<OsString>,
    log_format: LogFormat,
    filter_handle: LogFilter,
) -> anyhow::Result<()> {
    let app = args
        .app
        .clone()
        .context("no app to serve: give APP, or `app` in the --config file")?;
    let config = Arc::new(args.config());
    let bytes = std::fs::read(&app).with_context(|| format!("reading {}", app.display()))?;
    // Connections run on threads of their own (`--threads`, see
    // `Server::serve`); this runtime only runs the control side: reloads,
    // signals, metrics, the broker.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // The pool is sized to the app (see `PoolPlan`).
        let cost = first_cost(&bytes);
        let wasm = Arc::new(Runtime::new(config.clone(), &cost)?);
        let pool = wasm.pool();
        tracing::info!(
            slots = pool.slots,
            core_instances = pool.core_instances,
            memories = pool.memories,
            tables = pool.tables,
            decommit_batch = pool.decommit_batch,
            memory_init = if config.memory_init.copies(cost.memory_bytes) {
                "copy"
            } else {
                "cow"
            },
            table_init = match config.table_init {
                TableInit::Lazy => "lazy",
                TableInit::Eager => "eager",
            },
            "instance pool sized per connection"
        );
        check_map_count(config.max_connections, pool);
        let guest = wasm
            .load_bytes(&bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading {}", app.display()))?;
        drop(bytes);
        let threads = config.connection_threads();
        let listeners = wsbox::server::bind_listeners(config.listen, threads)
            .with_context(|| format!("listening on {}", config.listen))?;
        let local = listeners
            .first()
            .map(std::net::TcpListener::local_addr)
            .transpose()
            .context("reading the listen address")?
            .unwrap_or(config.listen);
        // Bad TLS files stop the start before the port opens.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(CertStore::load(cert, key)?),
            _ => None,
        };
        let version = guest.version().to_owned();
        let server = Server::new(wasm.clone(), guest, config.clone());
        if let Some(store) = &tls {
            server.set_tls(store.server_config()?);
            store.watch()?;
        }
        if let Some(addr) = config.metrics_listen {
            serve_metrics(addr, &wasm, &server).await?;
        }
        // Watching starts before we say we listen: a change made after
        // that line is never missed.
        Reloader::new(wasm, server.clone(), app.clone()).spawn()?;
        tokio::spawn(reload_config(
            argv,
            args,
            log_format,
            server.clone(),
            filter_handle,
        ));
        tracing::info!(
            app = %app.display(),
            version,
            threads,
            "listening on {}://{local}",
            if tls.is_some() { "wss" } else { "ws" }
        );
        server
            .serve(listeners, shutdown_signal())
            .await
            .context("serving")
    })
}
