//! The command line: `host serve APP.wasm [flags]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    DEFAULT_POOL_CORE_INSTANCES, DecommitBatch, MIN_GUEST_STACK, MemoryInit, ServerConfig,
    TableInit,
};
use crate::protocol::deflate::DeflateConfig;
use crate::session::broker::BrokerUrl;

/// `host --version`: this crate's version and the wasmtime it embeds
/// (which decides what compiled components the cache can reuse).
/// `concat!` takes literals only: a test checks the wasmtime part against
/// wasmtime's own version constant.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (wasmtime 48.0.8)");

/// wsbox: a WebSocket server whose per-connection logic is a sandboxed
/// WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "host", version = VERSION, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log format (the level is set with --log-level or RUST_LOG, default
    /// `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; boxing buys nothing
pub enum Command {
    /// Serve WebSocket connections, each handled by its own instance of APP.
    /// APP is watched: when the file changes (or on SIGHUP) the new version
    /// serves new connections, unless it is invalid.
    Serve(ServeArgs),
    /// Check that APP fits the wsbox:websocket/handler world and list what
    /// it imports and exports; exit 1 with the reason if it does not.
    Check(CheckArgs),
    /// Print the configuration `host serve` would run with (the --config
    /// file, these flags, the defaults) as a TOML file, every key
    /// annotated.
    Config(ServeArgs),
}

/// Arguments of `host check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The guest component to check.
    pub app: PathBuf,
    /// The pool to check it against (as `host serve` would size it).
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// What sizes the guest instance pool (`host serve` and `host check`).
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// Most simultaneous connections; sizes the guest instance pool.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Most linear memory one guest instance may use; growing past it
    /// fails, and a guest that then traps is closed with 1011.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub guest_memory: u64,
    /// Core instances the pool keeps per connection even when APP needs
    /// fewer, so a hot swap to a component needing up to this many fits
    /// (the pool is sized for APP's needs or this, whichever is more; a
    /// Rust guest needs 3, a componentize-py one 14).
    #[arg(long, default_value_t = DEFAULT_POOL_CORE_INSTANCES, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_core_instances: u32,
    /// Most stack one guest's wasm code may use; deeper recursion traps and
    /// closes the connection with 1011. Every example guest (Rust,
    /// JavaScript, Python) runs in 16KiB, the least allowed; each
    /// connection's fiber stack is this plus 1MiB for the host's own calls.
    #[arg(long, default_value = "512KiB", value_parser = parse_guest_stack)]
    pub guest_stack: u64,
    /// Memory regions of finished guest instances (each memory and table,
    /// and the fiber stack: 4 for a Rust guest) given back to the system
    /// in one call: one TLB flush, which interrupts the other cores, for
    /// the batch. Up to N-1 regions per core stay resident until the batch
    /// fills. `auto`: 32 for an app whose data segments hold at most 64KiB
    /// (a Rust guest: 9-11 % less CPU per short connection than 8, on 2
    /// cores), 8 for larger ones (JavaScript, Python), decided from the app
    /// the host starts with. 1 gives each back at once
    #[arg(long, default_value = "auto", value_name = "N|auto",
          value_parser = clap::value_parser!(DecommitBatch))]
    pub decommit_batch: DecommitBatch,
    /// How a guest instance's memory gets its initial contents: `cow` maps
    /// the module's image copy-on-write (least memory for large images);
    /// `copy` copies the data into fresh pages (each first write to a
    /// copy-on-write page interrupts the other cores: a Rust echo connects
    /// in 12 % less CPU at the same memory, QuickJS in half, for 17 % more
    /// memory per idle QuickJS instance). `auto`: copy when the app's
    /// linear memory at start is at most 2MiB, decided from the app the
    /// host starts with
    #[arg(long, value_enum, default_value_t = MemoryInit::Auto)]
    pub memory_init: MemoryInit,
    /// How a guest instance's function tables get their elements: `lazy`
    /// fills each at its first indirect call (an instance that never calls
    /// indirectly holds no table page), `eager` fills them all at
    /// instantiation: a first call to a lazily filled table interrupts the
    /// other cores to flush their TLBs. A guest that calls indirectly while
    /// connecting (the Rust echo built without LTO) connects in 3-6 % less
    /// CPU with `eager`; the examples, built with LTO, do not, and connect
    /// in 4 % more. `eager` costs 4 KiB more per idle instance
    #[arg(long, value_enum, default_value_t = TableInit::Lazy)]
    pub table_init: TableInit,
}

/// Arguments of `host serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The guest component (built for wasm32-wasip2 against the
    /// wsbox:websocket/handler world); may be given as `app` in the
    /// --config file instead.
    pub app: Option<PathBuf>,
    /// Read flags from this TOML file: each key is a flag's name
    /// (`max-frame-size = "16MiB"`); flags on the command line win. SIGHUP
    /// re-reads it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `warn,wsbox::access=info`, ...;
    /// tracing's EnvFilter syntax). Default: RUST_LOG, else `info`.
    #[arg(long, value_name = "FILTER", value_parser = parse_log_filter)]
    pub log_level: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
    /// Largest frame payload accepted (bytes; KiB/MiB suffixes allowed);
    /// larger frames close the connection with 1009.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub max_frame_size: u64,
    /// Largest message accepted, all fragments together, after
    /// decompression; larger messages close the connection with 1009.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub max_message_size: u64,
    /// Largest HTTP header section of an opening handshake (431 beyond).
    #[arg(long, default_value = "8KiB", value_parser = parse_size)]
    pub max_header_bytes: u64,
    /// Time a client has to complete its opening handshake (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// Time the peer has to answer our close frame before TCP is dropped.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub close_timeout: Duration,
    /// The instance pool's size.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Threads that serve connections, each with its own event loop and
    /// its own listening socket on the address (SO_REUSEPORT; the kernel
    /// spreads new connections over them); a connection stays on one thread
    /// from accept to close. 0: one per CPU core.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// CPU time a guest may run between two calls into the host (receive,
    /// send, ...), in milliseconds; over it the connection closes with
    /// 1011. 0: unlimited.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub guest_cpu_ms: u64,
    /// Directory of the compiled-component cache.
    /// [default: $XDG_CACHE_HOME/wsbox, else ~/.cache/wsbox]
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component every time instead of caching it on disk.
    #[arg(long)]
    pub no_cache: bool,
    /// Write /tmp/perf-PID.map, which names the guests' compiled functions
    /// for `perf report` (Linux's perf finds the file by the host's PID);
    /// without it, time spent in guest code shows as unnamed addresses.
    /// For profiling: the file grows with every component loaded.
    #[arg(long)]
    pub perf_map: bool,
    /// After a hot swap, close connections still on an older version with
    /// 1012 (service restart) this long after it (e.g. 30s). Default: let
    /// them run to their end.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub drain_after: Option<Duration>,
    /// Most bytes a connection may have waiting (to be written, or for its
    /// guest) before messages published to its topics are dropped for it
    /// (or it is closed, with --close-slow-subscribers). A guest's own
    /// sends are not dropped: they wait.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub max_backpressure: u64,
    /// Close a subscriber over --max-backpressure with 1008 instead of
    /// dropping topic messages for it.
    #[arg(long)]
    pub close_slow_subscribers: bool,
    /// Origins allowed to connect, comma-separated (e.g.
    /// https://example.com); others get 403. Empty: every origin.
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub allowed_origins: Vec<String>,
    /// Ping a connection that has been silent this long (0 disables).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ping_interval: Duration,
    /// Close (1001) a connection silent this long, pongs included (0
    /// disables).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// On SIGINT/SIGTERM, time connections get to close before exit.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Offer permessage-deflate (RFC 7692) to clients that ask for it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub deflate: bool,
    /// Start every message with a fresh compressor, freed after the message
    /// (lean mode: an idle connection holds no zlib state; compresses worse).
    #[arg(long)]
    pub deflate_server_no_context_takeover: bool,
    /// Ask clients to reset their compression context after every message.
    #[arg(long)]
    pub deflate_client_no_context_takeover: bool,
    /// Largest LZ77 window the server compresses with (2^N bytes).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(9..=15))]
    pub deflate_server_max_window_bits: u8,
    /// Largest LZ77 window clients may compress with (2^N bytes); asked
    /// for only when the client offers the parameter, and 8 only of clients
    /// that offer 8 themselves (others are asked for 9).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(8..=15))]
    pub deflate_client_max_window_bits: u8,
    /// zlib compression level, 0 (store) to 9 (smallest).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub deflate_level: u32,
    /// Messages smaller than this are sent uncompressed.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub deflate_min_size: u64,
    /// Answer plain HTTP GET/HEAD requests (no WebSocket upgrade) with the
    /// files in DIR, on the same port, so a page and its socket share one
    /// origin: index.html for a directory, 404 for a missing file, 304 for
    /// a cached one; one request per connection. DIR must exist. Default:
    /// no files; such requests get 400.
    #[arg(long = "static", value_name = "DIR", value_parser = parse_static_dir)]
    pub static_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics, with /healthz and
    /// /readyz, on this separate address (e.g. 127.0.0.1:9090). Default:
    /// no metrics are kept.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve wss:// with this PEM certificate chain (leaf first); needs
    /// --tls-key. When the file changes, new connections get the new one.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve a dev console at /__wsbox/console: a page to connect to any
    /// path of this host, send text or binary messages and watch the
    /// traffic.
    #[arg(long)]
    pub devconsole: bool,
    /// Share topics with the other hosts connected to this broker:
    /// redis://[:PASSWORD@]HOST[:PORT][/DB] (Redis pub/sub). The host
    /// starts even if the broker is unreachable, and reconnects. Default:
    /// topics are this host's alone.
    #[arg(long, value_name = "URL", value_parser = parse_broker)]
    pub broker: Option<BrokerUrl>,
    /// Most bytes of publishes waiting to be sent to the broker; beyond it
    /// (broker slow or stuck) they are not sent to other hosts, and counted.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub broker_queue: u64,
}

impl ServeArgs {
    /// The server configuration these arguments describe.
    pub fn config(&self) -> ServerConfig {
        let deflate = DeflateConfig {
            enabled: self.deflate,
            server_no_context_takeover: self.deflate_server_no_context_takeover,
            client_no_context_takeover: self.deflate_client_no_context_takeover,
            server_max_window_bits: self.deflate_server_max_window_bits,
            client_max_window_bits: self.deflate_client_max_window_bits,
            level: self.deflate_level,
            min_size: usize::try_from(self.deflate_min_size).unwrap_or(usize::MAX),
        };
        ServerConfig {
            listen: self.listen,
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            max_header_bytes: usize::try_from(self.max_header_bytes).unwrap_or(usize::MAX),
            handshake_timeout: self.handshake_timeout,
            close_timeout: self.close_timeout,
            max_connections: self.pool.max_connections,
            guest_memory: usize::try_from(self.pool.guest_memory).unwrap_or(usize::MAX),
            guest_stack: usize::try_from(self.pool.guest_stack).unwrap_or(usize::MAX),
            decommit_batch: self.pool.decommit_batch,
            memory_init: self.pool.memory_init,
            table_init: self.pool.table_init,
            pool_core_instances: self.pool.pool_core_instances,
            threads: self.threads,
            guest_cpu: (self.guest_cpu_ms > 0).then(|| Duration::from_millis(self.guest_cpu_ms)),
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir
                    .clone()
                    .or_else(crate::runtime::default_cache_dir)
            },
            perf_map: self.perf_map,
            drain_after: self.drain_after,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|origin| origin.trim().to_owned())
                .filter(|origin| !origin.is_empty())
                .collect(),
            ping_interval: nonzero(self.ping_interval),
            idle_timeout: nonzero(self.idle_timeout),
            shutdown_grace: self.shutdown_grace,
            max_backpressure: usize::try_from(self.max_backpressure).unwrap_or(usize::MAX),
            close_slow_subscribers: self.close_slow_subscribers,
            deflate,
            static_dir: self.static_dir.clone(),
            devconsole: self.devconsole,
            broker: self.broker.clone(),
            broker_queue: usize::try_from(self.broker_queue).unwrap_or(usize::MAX),
            metrics_listen: self.metrics_listen,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            ..ServerConfig::default()
        }
    }
}

/// Parse `--broker`: the scheme picks the backend.
fn parse_broker(text: &str) -> Result<BrokerUrl, String> {
    text.parse()
        .map_err(|error: crate::session::broker::BrokerUrlError| error.to_string())
}

/// `None` for a zero duration (the CLI's way of saying "off").
fn nonzero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

/// Check a `--static` directory: it must exist and be a directory. Returns
/// it canonicalized (the server checks every served path against it).
pub fn parse_static_dir(text: &str) -> Result<PathBuf, String> {
    let dir = std::fs::canonicalize(text).map_err(|error| format!("{text}: {error}"))?;
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!("{text} is not a directory"))
    }
}

/// Check a `--log-level` filter (tracing's EnvFilter syntax).
pub fn parse_log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("{text:?} is not a log filter: {error}"))
}

/// Parse a byte size: a number with an optional `B`, `KiB`, `MiB` or `GiB`
/// suffix (`K`, `M`, `G` and the SI spellings are read as binary too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 16MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parse `--guest-stack`: a size from [`MIN_GUEST_STACK`] to 64MiB.
fn parse_guest_stack(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    let (min, max) = (MIN_GUEST_STACK as u64, 64 << 20);
    if !(min..=max).contains(&size) {
        return Err(format!("{text:?} is outside 16KiB..=64MiB"));
    }
    Ok(size)
}

/// Parse a duration: a number followed by `ms`, `s` or `m` (seconds if no
/// unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("{text:?}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("8KiB"), Ok(8192));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn guest_stacks_are_sizes_within_bounds() {
        assert_eq!(parse_guest_stack("512KiB"), Ok(512 << 10));
        assert_eq!(parse_guest_stack("16KiB"), Ok(16 << 10));
        assert_eq!(parse_guest_stack("64MiB"), Ok(64 << 20));
        assert!(
            parse_guest_stack("15KiB")
                .unwrap_err()
                .contains("16KiB..=64MiB")
        );
        assert!(parse_guest_stack("65MiB").is_err());
        assert!(parse_guest_stack("lots").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn static_dir_must_be_an_existing_directory() {
        let here = std::env::current_dir().unwrap_or_default();
        assert_eq!(
            parse_static_dir("."),
            Ok(here.canonicalize().unwrap_or(here))
        );
        let missing = parse_static_dir("/no/such/wsbox/dir").unwrap_err();
        assert!(missing.starts_with("/no/such/wsbox/dir: "), "{missing}");
        let file = parse_static_dir("Cargo.toml").unwrap_err();
        assert_eq!(file, "Cargo.toml is not a directory");
    }

    #[test]
    fn the_version_names_the_embedded_wasmtime() {
        let wasmtime = format!("(wasmtime {})", wasmtime_environ::VERSION);
        assert!(VERSION.ends_with(&wasmtime), "{VERSION} lacks {wasmtime}");
    }

    #[test]
    fn help_shows_every_default() {
        use clap::CommandFactory;
        let mut command = Cli::command();
        let serve = command
            .find_subcommand_mut("serve")
            .map(|c| c.render_long_help().to_string());
        let help = serve.unwrap_or_default();
        for default in [
            "127.0.0.1:9001",
            "16MiB",
            "64MiB",
            "8KiB",
            "10s",
            "5s",
            "10000",
            "256MiB",
            "30s",
            "120s",
            "[default: 1000]",
            "~/.cache/wsbox",
        ] {
            assert!(
                help.contains(default),
                "--help lacks default {default}:\n{help}"
            );
        }
    }
}
