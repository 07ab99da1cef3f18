//! Host configuration: every knob the CLI exposes, with its default.
//!
//! Modelled on the seed's `defaultConnectionOptions { .. }`: build the
//! default and adjust fields, so adding a field breaks no caller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::ConnectionConfig;
use crate::protocol::deflate::DeflateConfig;
use crate::protocol::handshake::HandshakeLimits;
use crate::session::broker::{BrokerConfig, BrokerUrl};
use crate::session::topics::TopicsConfig;

/// Core instances per connection the pool keeps at least: a Rust guest
/// uses 3, so it leaves room for a somewhat bigger one.
pub const DEFAULT_POOL_CORE_INSTANCES: u32 = 8;

/// The guest's wasm stack by default: wasmtime's own default, which every
/// example guest fits in with room to spare (see `--guest-stack`).
pub const DEFAULT_GUEST_STACK: usize = 512 << 10;

/// How many memory regions of finished guest instances (each memory and
/// table, and the fiber stack: 4 for a Rust guest) are given back to the
/// system in one call (`--decommit-batch`). Each call is a TLB flush that
/// interrupts every other core; until a batch fills, its regions stay
/// resident (up to the batch less one per core).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DecommitBatch {
    /// [`AUTO_SMALL_DATA_BATCH`] regions for an app whose data segments
    /// hold at most [`AUTO_SMALL_DATA_MAX`] (a finished instance of it
    /// leaves a few pages), else [`AUTO_LARGE_DATA_BATCH`]; decided once,
    /// from the app the host starts with.
    #[default]
    Auto,
    /// This many regions, 1 to [`MAX_DECOMMIT_BATCH`].
    Regions(u32),
}

/// `--decommit-batch auto` for apps with little data: 32 regions, eight
/// Rust instances per call. Against 8 (the default before), 9-11 % less
/// CPU per short connection for the Rust echo on a 2-core VM (12 of 12
/// alternated runs), its 5-minute soak within 6 % of its start
/// (host/benches/README.md, "fourteenth pass").
pub const AUTO_SMALL_DATA_BATCH: usize = 32;

/// `--decommit-batch auto` for apps with more data (JavaScript, Python):
/// their instances leave hundreds of KiB to MiBs each, which waiting for
/// a larger batch would keep; their connections cost 10-30 times the
/// echo's, so the flushes saved would hardly show.
pub const AUTO_LARGE_DATA_BATCH: usize = 8;

/// The most data an app may have for `--decommit-batch auto` to choose
/// [`AUTO_SMALL_DATA_BATCH`]: 64 KiB, so the instances a full batch waits
/// for keep about a MiB at most.
pub const AUTO_SMALL_DATA_MAX: u64 = 64 << 10;

/// The largest `--decommit-batch`.
pub const MAX_DECOMMIT_BATCH: u32 = 1024;

impl DecommitBatch {
    /// The regions per call for an app whose data segments hold
    /// `data_bytes`.
    pub fn regions(self, data_bytes: u64) -> usize {
        match self {
            DecommitBatch::Auto if data_bytes <= AUTO_SMALL_DATA_MAX => AUTO_SMALL_DATA_BATCH,
            DecommitBatch::Auto => AUTO_LARGE_DATA_BATCH,
            DecommitBatch::Regions(regions) => regions as usize,
        }
    }
}

impl std::str::FromStr for DecommitBatch {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "auto" {
            return Ok(DecommitBatch::Auto);
        }
        match text.parse::<u32>() {
            Ok(regions @ 1..=MAX_DECOMMIT_BATCH) => Ok(DecommitBatch::Regions(regions)),
            _ => Err(format!(
                "`{text}` is neither `auto` nor a number of regions from 1 to {MAX_DECOMMIT_BATCH}"
            )),
        }
    }
}

impl std::fmt::Display for DecommitBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecommitBatch::Auto => f.write_str("auto"),
            DecommitBatch::Regions(regions) => write!(f, "{regions}"),
        }
    }
}

/// How a guest instance's linear memory gets its initial contents
/// (`--memory-init`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MemoryInit {
    /// `copy` for an app whose linear memory at start is at most
    /// [`AUTO_COPY_MAX_MEMORY`], else `cow`; decided once, from the app the
    /// host starts with.
    #[default]
    Auto,
    /// Map the module's memory image copy-on-write: the least memory for
    /// guests with large images (JavaScript, Python).
    Cow,
    /// Copy the data segments into fresh pages at instantiation: each
    /// first write to a copy-on-write page interrupts the other cores to
    /// flush their TLBs, so small guests connect faster.
    Copy,
}

/// The largest linear memory at start that `--memory-init auto` copies: a
/// Rust guest's (about 1 MiB, most of it its stack) and QuickJS's (1.5
/// MiB), not StarlingMonkey's (9 MiB) or CPython's.
pub const AUTO_COPY_MAX_MEMORY: u64 = 2 << 20;

impl MemoryInit {
    /// Whether an app with `memory_bytes` of linear memory at start gets
    /// its memory copied.
    pub fn copies(self, memory_bytes: u64) -> bool {
        match self {
            MemoryInit::Auto => memory_bytes <= AUTO_COPY_MAX_MEMORY,
            MemoryInit::Cow => false,
            MemoryInit::Copy => true,
        }
    }
}

/// How a guest instance's tables of functions get their elements
/// (`--table-init`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TableInit {
    /// Fill an element at its first indirect call: nothing written at
    /// instantiation, so an instance that never calls indirectly holds no
    /// page of its table. But that first call reads a page the pool gave
    /// back to the system before it writes it, and the write replaces a
    /// read-only mapping, which interrupts the other cores to flush their
    /// TLBs.
    #[default]
    Lazy,
    /// Fill every table at instantiation: written before they are read, so
    /// no flush, and less CPU per connection; each instance holds every
    /// table's pages from the start.
    Eager,
}

/// The smallest `--guest-stack`: below it even a guest's start-up fails.
pub const MIN_GUEST_STACK: usize = 16 << 10;

/// What a connection's fiber stack holds beyond the guest's wasm stack:
/// the host functions the guest calls run on it (wasmtime's own default
/// keeps 1.5 MiB; the host's calls are shallow, but overflowing it would
/// end the process, not the connection, so the margin is wide).
pub const HOST_STACK_HEADROOM: usize = 1 << 20;

/// Everything `host serve` can be told. Each field documents its default.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:9001`.
    pub listen: SocketAddr,
    /// Largest frame payload accepted, in bytes; larger frames close the
    /// connection with 1009. Default 16 MiB.
    pub max_frame_size: u64,
    /// Largest message accepted (all fragments, after decompression), in
    /// bytes; larger messages close the connection with 1009. Default 64 MiB.
    pub max_message_size: u64,
    /// Largest HTTP header section of an opening handshake; larger ones get
    /// 431. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Most headers in an opening handshake; more get 431. Default 64.
    pub max_headers: usize,
    /// A client whose opening handshake is not complete by then is dropped.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// After a close frame is sent, how long to wait for the peer's close
    /// before dropping the TCP connection. Default 5 s.
    pub close_timeout: Duration,
    /// Most simultaneous connections (also sizes the instance pool).
    /// Default 10 000.
    pub max_connections: usize,
    /// Threads that serve connections, each with its own event loop and
    /// listening socket; a connection stays on one thread from accept to
    /// close. 0 (the default): one per CPU core.
    pub threads: usize,
    /// Most linear memory one guest instance may grow to, in bytes.
    /// Default 256 MiB.
    pub guest_memory: usize,
    /// Most stack one guest's wasm code may use, in bytes; deeper recursion
    /// traps (1011). Its fiber stack is this plus
    /// [`HOST_STACK_HEADROOM`]. Default 512 KiB.
    pub guest_stack: usize,
    /// Memory regions of finished instances decommitted in one go (one
    /// `process_madvise`, one TLB flush); until a batch fills, up to this
    /// many less one stay resident. Default [`DecommitBatch::Auto`].
    pub decommit_batch: DecommitBatch,
    /// How instances' memories are initialised. Default
    /// [`MemoryInit::Auto`].
    pub memory_init: MemoryInit,
    /// How instances' tables are filled. Default [`TableInit::Lazy`].
    pub table_init: TableInit,
    /// Core instances the pool keeps per connection even when the app
    /// needs fewer, so a hot swap to a component needing up to this many
    /// fits (see `runtime::PoolPlan`). Default
    /// [`DEFAULT_POOL_CORE_INSTANCES`].
    pub pool_core_instances: u32,
    /// CPU time a guest may run between two calls into the host (in 10 ms
    /// ticks of wall time while it runs); over it, the guest is stopped and
    /// its connection closed with 1011. `None` is unlimited. Default 1 s.
    pub guest_cpu: Option<Duration>,
    /// Where compiled components are cached across runs. `None` compiles
    /// every time. Default `None` (the CLI defaults to
    /// `$XDG_CACHE_HOME/wsbox` or `~/.cache/wsbox`).
    pub cache_dir: Option<PathBuf>,
    /// Write `/tmp/perf-PID.map`, naming the guests' compiled functions for
    /// Linux's `perf`. Default `false`.
    pub perf_map: bool,
    /// After a hot swap, connections still served by an older version are
    /// closed with 1012 (service restart) this long after it. `None` lets
    /// them run to their end. Default `None`.
    pub drain_after: Option<Duration>,
    /// Once this many bytes of frames are waiting to be written, a guest's
    /// `send` waits for the socket to drain (backpressure). Default 1 MiB.
    pub write_buffer_high_water: usize,
    /// Most bytes a connection may have waiting (frames to write, or topic
    /// messages for its guest) before topic deliveries to it are dropped
    /// (or it is closed, see `close_slow_subscribers`). Default 1 MiB.
    pub max_backpressure: usize,
    /// Close a subscriber over `max_backpressure` with 1008 instead of
    /// dropping its topic messages. Default `false`.
    pub close_slow_subscribers: bool,
    /// Origins allowed to connect (e.g. `https://example.com`); requests
    /// with another or no `Origin` get 403. Default empty: all origins.
    pub allowed_origins: Vec<String>,
    /// Send a ping to a connection that has been silent this long, so dead
    /// peers are found and idle NAT entries kept alive. `None` disables.
    /// Default 30 s.
    pub ping_interval: Option<Duration>,
    /// Close (1001) a connection from which nothing at all, pongs included,
    /// arrived for this long. `None` disables. Default 120 s.
    pub idle_timeout: Option<Duration>,
    /// On SIGINT/SIGTERM, how long connections get to finish their closing
    /// handshakes before the process exits. Default 10 s.
    pub shutdown_grace: Duration,
    /// permessage-deflate (RFC 7692): what the server accepts and asks for.
    /// Default: on, context takeover both ways, 15-bit windows (see
    /// [`DeflateConfig`] for each field).
    pub deflate: DeflateConfig,
    /// Answer plain HTTP GET and HEAD requests (no WebSocket upgrade) with
    /// the files in this directory, on the same port. `None`: such requests
    /// get the handshake's error answers (400, 405, 426). Default `None`.
    pub static_dir: Option<PathBuf>,
    /// Serve the built-in dev console page at `/__wsbox/console` (with or
    /// without `static_dir`). Default `false`.
    pub devconsole: bool,
    /// The broker that shares topics with other hosts (`redis://...`).
    /// `None`: topics are this host's alone. Default `None`.
    pub broker: Option<BrokerUrl>,
    /// Most bytes of publishes waiting to be sent to the broker; beyond it
    /// they are not sent to other hosts (dropped and counted). Default
    /// 16 MiB.
    pub broker_queue: usize,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`. `None`: no
    /// metrics are kept. Default `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain for `wss://` (with `tls_key`). `None`: plain
    /// `ws://`. Default `None`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Default `None`.
    pub tls_key: Option<PathBuf>,
}

/// While this many bytes of received messages wait for the guest, the host
/// stops reading from the socket, so TCP pushes back on the client.
const INBOUND_HIGH_WATER: usize = 1 << 20;

impl ServerConfig {
    /// What the topics do with slow subscribers under this configuration.
    pub fn topics_config(&self) -> TopicsConfig {
        TopicsConfig {
            max_backpressure: self.max_backpressure,
            close_slow_subscribers: self.close_slow_subscribers,
            deflate: self.deflate.clone(),
            broker: self.broker.clone().map(|url| BrokerConfig {
                url,
                queue_bytes: self.broker_queue,
                max_message_size: self.max_message_size,
            }),
        }
    }

    /// The protocol rules each connection follows under this configuration.
    pub fn connection_config(&self) -> ConnectionConfig {
        ConnectionConfig {
            max_frame_size: self.max_frame_size,
            max_message_size: self.max_message_size,
            close_timeout: self.close_timeout,
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
            inbound_high_water: INBOUND_HIGH_WATER,
            deflate: self.deflate.clone(),
        }
    }

    /// The limits on an opening handshake's (or plain request's) head.
    pub fn handshake_limits(&self) -> HandshakeLimits {
        HandshakeLimits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
        }
    }
}

impl ServerConfig {
    /// What a running server can take from `new` (a re-read configuration
    /// file): the limits and policies that apply to each new connection,
    /// the static directory, the drain delay. The rest (addresses, sizes of
    /// the instance pool, guest limits, the cache, the topics' limits, the
    /// broker, TLS on/off and its files) is
    /// kept; the keys of those that differ come back, to be reported as
    /// needing a restart.
    pub fn live_update(&self, new: &ServerConfig) -> (ServerConfig, Vec<&'static str>) {
        let mut restart = Vec::new();
        let mut check = |differs: bool, key: &'static str| {
            if differs {
                restart.push(key);
            }
        };
        check(self.listen != new.listen, "listen");
        check(
            self.max_connections != new.max_connections,
            "max-connections",
        );
        check(self.threads != new.threads, "threads");
        check(self.guest_memory != new.guest_memory, "guest-memory");
        check(self.guest_stack != new.guest_stack, "guest-stack");
        check(self.decommit_batch != new.decommit_batch, "decommit-batch");
        check(self.memory_init != new.memory_init, "memory-init");
        check(self.table_init != new.table_init, "table-init");
        check(
            self.pool_core_instances != new.pool_core_instances,
            "pool-core-instances",
        );
        check(self.guest_cpu != new.guest_cpu, "guest-cpu-ms");
        check(self.cache_dir != new.cache_dir, "cache-dir");
        check(self.perf_map != new.perf_map, "perf-map");
        check(
            self.max_backpressure != new.max_backpressure,
            "max-backpressure",
        );
        check(
            self.close_slow_subscribers != new.close_slow_subscribers,
            "close-slow-subscribers",
        );
        check(self.metrics_listen != new.metrics_listen, "metrics-listen");
        // Compared as shown (without a password): URLs have no equality.
        let shown = |url: &Option<BrokerUrl>| url.as_ref().map(ToString::to_string);
        check(shown(&self.broker) != shown(&new.broker), "broker");
        check(self.broker_queue != new.broker_queue, "broker-queue");
        // The files' contents rotate live; switching TLS on or off, or to
        // other files, takes a restart.
        check(self.tls_cert != new.tls_cert, "tls-cert");
        check(self.tls_key != new.tls_key, "tls-key");
        let updated = ServerConfig {
            listen: self.listen,
            max_connections: self.max_connections,
            threads: self.threads,
            guest_memory: self.guest_memory,
            guest_stack: self.guest_stack,
            decommit_batch: self.decommit_batch,
            memory_init: self.memory_init,
            table_init: self.table_init,
            pool_core_instances: self.pool_core_instances,
            guest_cpu: self.guest_cpu,
            cache_dir: self.cache_dir.clone(),
            perf_map: self.perf_map,
            max_backpressure: self.max_backpressure,
            close_slow_subscribers: self.close_slow_subscribers,
            metrics_listen: self.metrics_listen,
            broker: self.broker.clone(),
            broker_queue: self.broker_queue,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            ..new.clone()
        };
        (updated, restart)
    }
}

impl ServerConfig {
    /// How many connection threads to start: [`ServerConfig::threads`], or
    /// one per CPU core for 0.
    pub fn connection_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            threads => threads,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9001)),
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_header_bytes: 8 << 10,
            max_headers: 64,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            max_connections: 10_000,
            threads: 0,
            guest_memory: 256 << 20,
            guest_stack: DEFAULT_GUEST_STACK,
            decommit_batch: DecommitBatch::Auto,
            memory_init: MemoryInit::Auto,
            table_init: TableInit::Lazy,
            pool_core_instances: DEFAULT_POOL_CORE_INSTANCES,
            guest_cpu: Some(Duration::from_secs(1)),
            cache_dir: None,
            perf_map: false,
            drain_after: None,
            write_buffer_high_water: 1 << 20,
            max_backpressure: 1 << 20,
            close_slow_subscribers: false,
            allowed_origins: Vec::new(),
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(120)),
            shutdown_grace: Duration::from_secs(10),
            deflate: DeflateConfig::default(),
            static_dir: None,
            devconsole: false,
            broker: None,
            broker_queue: 16 << 20,
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_init_auto_copies_small_images_only() {
        assert!(MemoryInit::Auto.copies(1_114_112)); // the Rust echo
        assert!(MemoryInit::Auto.copies(AUTO_COPY_MAX_MEMORY));
        assert!(!MemoryInit::Auto.copies(AUTO_COPY_MAX_MEMORY + 1));
        assert!(!MemoryInit::Auto.copies(9_502_720)); // StarlingMonkey's
        assert!(MemoryInit::Copy.copies(u64::MAX));
        assert!(!MemoryInit::Cow.copies(0));
    }

    #[test]
    fn decommit_batch_auto_waits_longer_only_for_apps_with_little_data() {
        assert_eq!(DecommitBatch::Auto.regions(2_720), AUTO_SMALL_DATA_BATCH); // the Rust echo
        assert_eq!(
            DecommitBatch::Auto.regions(AUTO_SMALL_DATA_MAX),
            AUTO_SMALL_DATA_BATCH
        );
        assert_eq!(
            DecommitBatch::Auto.regions(AUTO_SMALL_DATA_MAX + 1),
            AUTO_LARGE_DATA_BATCH
        );
        assert_eq!(DecommitBatch::Auto.regions(339_389), AUTO_LARGE_DATA_BATCH); // QuickJS's
        assert_eq!(DecommitBatch::Regions(3).regions(0), 3);
        assert_eq!(DecommitBatch::Regions(3).regions(u64::MAX), 3);
    }

    #[test]
    fn decommit_batch_reads_back_what_it_prints() {
        for text in ["auto", "1", "8", "1024"] {
            let batch: DecommitBatch = text.parse().unwrap();
            assert_eq!(batch.to_string(), text);
        }
        assert_eq!("16".parse(), Ok(DecommitBatch::Regions(16)));
        for bad in ["0", "1025", "-1", "", "Auto", "8 regions"] {
            let error = bad.parse::<DecommitBatch>().unwrap_err();
            assert!(error.contains("neither `auto` nor"), "{bad}: {error}");
        }
    }

    #[test]
    fn live_updates_keep_what_needs_a_restart() {
        let old = ServerConfig::default();
        let new = ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 80)),
            max_connections: 5,
            pool_core_instances: 14,
            max_frame_size: 1 << 10,
            allowed_origins: vec!["https://a.example".into()],
            drain_after: Some(Duration::from_secs(3)),
            static_dir: Some(PathBuf::from("/srv")),
            perf_map: true,
            ..ServerConfig::default()
        };
        let (updated, restart) = old.live_update(&new);
        assert_eq!(
            restart,
            [
                "listen",
                "max-connections",
                "pool-core-instances",
                "perf-map"
            ]
        );
        assert!(!updated.perf_map);
        assert_eq!(updated.pool_core_instances, old.pool_core_instances);
        assert_eq!(updated.listen, old.listen);
        assert_eq!(updated.max_connections, old.max_connections);
        assert_eq!(updated.max_frame_size, 1 << 10);
        assert_eq!(updated.allowed_origins, new.allowed_origins);
        assert_eq!(updated.drain_after, new.drain_after);
        assert_eq!(updated.static_dir, new.static_dir);
        assert!(old.live_update(&old).1.is_empty());
    }
}
