//! Fan-out benchmark: messages published to one topic and delivered to every other connection on
//! it, through the wsbox host running `broadcast.wasm` and through a native Rust fan-out server,
//! measured the same way in the same run (DESIGN.md §5).
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p broadcast
//! cargo bench -p host --bench fanout -- [options]      # see USAGE below
//! ```
//!
//! Scenarios, each on one topic (the request path): (a) 1 publisher to 1,000 subscribers, 32-byte
//! messages; (b) 10 publishers to 100 subscribers, 1 KiB messages. Every connection subscribes to
//! the topic, the publishers too, and a message goes to every connection but its publisher: a
//! message of scenario (a) makes 1,000 deliveries, one of (b) 109 (100 subscribers and the 9 other
//! publishers). The broadcast guest's contract is the same: a connection to path P subscribes to P
//! and publishes every data message it receives to P for every other subscriber, text as text and
//! binary as binary.
//!
//! Method: an open loop. The publishers together send a fixed number of messages per second
//! (`--rate`, by default what makes 200,000 deliveries/s), each publisher its share at evenly
//! spaced times, interleaved with the others'; a publisher that wakes late sends everything due
//! in one write. Every message carries its publisher, a sequence number and its send time
//! (monotonic nanoseconds since the bench started) as 24 ASCII hex digits at its start, so the
//! same bytes are valid as text. Every connection parses every frame it gets, and for messages
//! sent within the measured window records the publish-to-receive latency and counts them: lost
//! deliveries are those messages times the fan-out minus the deliveries that arrived (after the
//! window, in-flight ones get time to arrive), and sequence gaps count messages missing between
//! two that did arrive. Deliveries/s and server CPU per delivery (utime + stime from
//! `/proc/<pid>/stat` over the window, over the deliveries received in it) are counted over the
//! window after a warm-up; the server's VmRSS is read at the window's end.
//!
//! Each scenario gets a fresh server process per kind on 127.0.0.1 (the native one is this binary
//! re-executed with the hidden `--serve-native ADDR` flag), killed when the bench ends, also on
//! error or panic, and should the bench itself be killed (`PR_SET_PDEATHSIG`).
//!
//! The native server is tokio on a multi-thread runtime: a `tokio::sync::broadcast` channel per
//! topic; a connection's reader unmasks each client frame and encodes it once as a server frame
//! (`Bytes`), which every subscriber's writer task writes (as many as are queued in one vectored
//! write). A subscriber that falls more than the channel's capacity behind loses the overwritten
//! messages (`RecvError::Lagged`), which the bench counts as lost deliveries.
//!
//! The client is thin, as it shares the machine: raw `TcpStream`s on current-thread tokio runtimes
//! (the publishers on a thread of their own, the subscribers on `--client-threads`), frames masked
//! ahead of time with only their header digits patched per message, frames parsed in place.

mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use support::{
    Common, Kind, Sample, Window, bench_main, clock_ticks_per_second, raise_open_files_limit,
    rss_kib,
};

const USAGE: &str = "\
usage: cargo bench -p host --bench fanout -- [options]

  --scenario LIST     scenarios to run, one run each                   [a,b]
                        a: 1 publisher -> 1000 subscribers, 32-byte messages
                        b: 10 publishers -> 100 subscribers, 1024-byte messages
  --publishers N      publishers, instead of the scenario's
  --subscribers N     subscribers (connections that only listen), instead of the scenario's
  --size BYTES        message payload size (at least 24), instead of the scenario's
  --rate MSGS         messages published per second, all publishers together
                      [--delivery-rate / deliveries per message]
  --delivery-rate N   the default rate's target in deliveries per second  [200000]
  --text              send text messages (default: binary)
  --seconds SECS      measured window per run                           [5]
  --warmup SECS       warm-up before each window                        [1]
  --topic PATH        request path, the topic                           [/fanout]
  --only KIND         run only `wsbox` or only `native`
  --host-bin PATH     wsbox host binary          [<target>/release/host]
  --guest PATH        broadcast guest component  [<target>/wasm32-wasip2/guest/broadcast.wasm]
  --host-arg ARG      one more argument to `host serve` (repeatable)
  --client-threads N  subscriber threads, each a current-thread runtime (the publishers
                      have a thread of their own)                       [1]
  --native-as-wsbox   validation: run the native server in the wsbox slot too
                      (the wsbox/native ratios should then come out near 1.00)

<target> is $CARGO_TARGET_DIR, else <workspace>/target.
";

/// Wait after all connections are open before publishing, so that subscriptions a server makes
/// only after its handshake response are in place.
const SETTLE: Duration = Duration::from_millis(200);
/// After the window, how long deliveries may keep trickling in without progress before what is
/// still missing counts as lost.
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// After the window, the longest wait for in-flight deliveries.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// Bytes of a message taken by its header: publisher, sequence number, send time (hex digits).
const HEADER_LEN: usize = PUBLISHER_DIGITS + SEQ_DIGITS + TIME_DIGITS;
const PUBLISHER_DIGITS: usize = 4;
const SEQ_DIGITS: usize = 8;
/// 48 bits of nanoseconds: 78 hours.
const TIME_DIGITS: usize = 12;

fn main() -> ExitCode {
    bench_main(USAGE, native::serve, Options::parse, run)
}

// ---------------------------------------------------------------------------------------------
// Options

/// The shape of one run: who publishes, who listens, what.
#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    publishers: usize,
    subscribers: usize,
    size: usize,
}

impl Scenario {
    /// The built-in scenario `name`.
    fn named(name: &str) -> Result<Scenario> {
        let (publishers, subscribers, size) = match name {
            "a" => (1, 1000, 32),
            "b" => (10, 100, 1024),
            other => bail!("--scenario takes `a` and `b`, not {other:?}"),
        };
        Ok(Scenario {
            name: name.to_owned(),
            publishers,
            subscribers,
            size,
        })
    }

    /// Deliveries each message makes: every connection but its publisher.
    fn fanout(&self) -> usize {
        self.publishers + self.subscribers - 1
    }
}

#[derive(Debug)]
struct Options {
    scenarios: Vec<Scenario>,
    rate: Option<f64>,
    delivery_rate: f64,
    topic: String,
    common: Common,
}

impl Options {
    /// Parses the command line; `Ok(None)` means help was asked for.
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let mut o = Options {
            scenarios: Vec::new(),
            rate: None,
            delivery_rate: 200_000.0,
            topic: "/fanout".to_owned(),
            common: Common::new("broadcast"),
        };
        let mut names = "a,b".to_owned();
        let (mut publishers, mut subscribers, mut size) = (None, None, None);
        let go_on = o.common.parse(args, USAGE, |flag| {
            match flag.name.as_str() {
                "--scenario" => names = flag.value()?,
                "--publishers" => publishers = Some(flag.number()?),
                "--subscribers" => subscribers = Some(flag.number()?),
                "--size" => size = Some(flag.number()?),
                "--rate" => o.rate = Some(flag.number()?),
                "--delivery-rate" => o.delivery_rate = flag.number()?,
                "--topic" => o.topic = flag.value()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if !go_on {
            return Ok(None);
        }
        for name in names.split(',') {
            let mut s = Scenario::named(name.trim())?;
            s.publishers = publishers.unwrap_or(s.publishers);
            s.subscribers = subscribers.unwrap_or(s.subscribers);
            s.size = size.unwrap_or(s.size);
            ensure!(
                (1..1 << (4 * PUBLISHER_DIGITS)).contains(&s.publishers),
                "--publishers must be from 1 to {}",
                (1 << (4 * PUBLISHER_DIGITS)) - 1
            );
            ensure!(
                s.fanout() > 0,
                "a lone publisher needs at least one subscriber"
            );
            ensure!(
                s.size >= HEADER_LEN,
                "--size must be at least {HEADER_LEN} (the header each message carries)"
            );
            o.scenarios.push(s);
        }
        ensure!(
            o.rate.is_none_or(|r| r > 0.0) && o.delivery_rate > 0.0,
            "--rate and --delivery-rate must be positive"
        );
        ensure!(o.topic.starts_with('/'), "--topic must start with `/`");
        Ok(Some(o))
    }

    /// Messages per second for `scenario`, all publishers together.
    fn rate(&self, scenario: &Scenario) -> f64 {
        self.rate.unwrap_or_else(|| {
            (self.delivery_rate / scenario.fanout() as f64)
                .round()
                .max(1.0)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// One measured window of one scenario against one server.
struct RunResult {
    scenario: String,
    label: String,
    window: Window,
    /// Messages published per second in the window (the open loop's achieved rate).
    published_per_sec: f64,
    latency: Histogram,
    /// Deliveries of the window's messages that did not arrive (negative: more arrived).
    lost: i64,
    gaps: u64,
    reordered: u64,
    /// Connections that ended in an error.
    failed: usize,
    rss_kib: u64,
}

/// Runs every selected scenario against every selected server and prints the report.
fn run(o: &Options) -> Result<()> {
    let c = &o.common;
    c.require_wsbox()?;
    let max_conns = o
        .scenarios
        .iter()
        .map(|s| s.publishers + s.subscribers)
        .max()
        .unwrap_or(0);
    let files = raise_open_files_limit()?;
    if files < 2 * max_conns as u64 + 64 {
        eprintln!(
            "warning: open-file limit {files} may be too low for {max_conns} connections \
             (client and server each hold one socket per connection)"
        );
    }
    println!(
        "fanout: {} messages, {} s window after {} s warm-up, topic {}, {} subscriber thread(s), \
         CLK_TCK {}",
        if c.text { "text" } else { "binary" },
        c.seconds,
        c.warmup,
        o.topic,
        c.client_threads,
        clock_ticks_per_second(),
    );
    for s in &o.scenarios {
        let rate = o.rate(s);
        println!(
            "scenario {}: {} publisher(s) -> {} subscriber(s), {}-byte messages, {rate} msgs/s, \
             {} deliveries per message ({:.0} deliveries/s)",
            s.name,
            s.publishers,
            s.subscribers,
            s.size,
            s.fanout(),
            rate * s.fanout() as f64,
        );
    }

    let mut results = Vec::new();
    for scenario in &o.scenarios {
        for kind in c.kinds() {
            results.push(bench_server(kind, scenario, o)?);
        }
    }
    print_report(&results);
    Ok(())
}

/// Runs `scenario` against a fresh server of `kind`.
fn bench_server(kind: Kind, scenario: &Scenario, o: &Options) -> Result<RunResult> {
    let c = &o.common;
    let mut server = c.start_server("fanout", kind)?;
    let pid = server.pid();
    let run_name = format!("{} scenario {}", server.label, scenario.name);
    let config = Arc::new(client::Config::new(server.addr, scenario, o));
    eprintln!(
        "{run_name}: connecting {} subscribers and {} publishers",
        scenario.subscribers, scenario.publishers
    );
    let clients = client::Clients::connect(config.clone(), c.client_threads)
        .with_context(|| format!("connecting to the {} server", server.label))?;
    thread::sleep(SETTLE);

    eprintln!("{run_name}: running {} s + {} s", c.warmup, c.seconds);
    let window = clients.start(c.warmup, c.seconds);
    sleep_until(window.start);
    let start = Sample::take(clients.received(), pid)?;
    sleep_until(window.end);
    let end = Sample::take(clients.received(), pid)?;
    let rss_kib = rss_kib(pid)?;
    let (sent, arrived) = clients.drain(scenario.fanout() as u64);
    let (report, stats) = clients.stop();
    report.warn(&run_name);
    server.ensure_running()?;

    let expected = sent * scenario.fanout() as u64;
    if arrived != expected {
        eprintln!(
            "warning: {run_name}: {arrived} of {expected} deliveries of the window's {sent} \
             messages arrived"
        );
    }
    if stats.reordered > 0 {
        eprintln!(
            "warning: {run_name}: {} message(s) arrived after a later one of their publisher",
            stats.reordered
        );
    }
    Ok(RunResult {
        scenario: scenario.name.clone(),
        label: server.label.clone(),
        window: Window::between(&start, &end),
        published_per_sec: sent as f64 / (window.end - window.start).as_secs_f64(),
        latency: stats.latency,
        lost: expected as i64 - arrived as i64,
        gaps: stats.gaps,
        reordered: stats.reordered,
        failed: report.failed(),
        rss_kib,
    })
}

/// Sleeps this thread until `deadline`.
fn sleep_until(deadline: Instant) {
    thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// The results table, and the wsbox/native ratios where both servers ran a scenario.
fn print_report(results: &[RunResult]) {
    println!();
    println!(
        "{:<8} {:<13} {:>7} {:>12} {:>17} {:>5} {:>8} {:>8} {:>7} {:>6} {:>6} {:>17} {:>7}",
        "scenario",
        "server",
        "msgs/s",
        "deliveries/s",
        "server µs CPU/dlv",
        "cores",
        "p50 µs",
        "p99 µs",
        "lost",
        "gaps",
        "failed",
        "client µs CPU/dlv",
        "RSS MiB"
    );
    for r in results {
        let w = &r.window;
        println!(
            "{:<8} {:<13} {:>7.0} {:>12.0} {:>17.3} {:>5.2} {:>8.1} {:>8.1} {:>7} {:>6} {:>6} {:>17.3} {:>7.1}",
            r.scenario,
            r.label,
            r.published_per_sec,
            w.msgs_per_sec(),
            w.server_us_per_msg(),
            w.server_cpu_seconds / w.seconds,
            r.latency.quantile(0.50) as f64 / 1e3,
            r.latency.quantile(0.99) as f64 / 1e3,
            r.lost,
            r.gaps,
            r.failed,
            w.client_us_per_msg(),
            r.rss_kib as f64 / 1024.0,
        );
    }
    println!(
        "(msgs/s: published in the window; dlv: delivery; cores: server CPU seconds per second; \
         failed: connections that ended in error, see the warnings)"
    );
    if results.iter().any(|r| r.reordered > 0) {
        println!("(some messages arrived out of order: see the warnings above)");
    }

    let pairs: Vec<(&RunResult, &RunResult)> = results
        .iter()
        .filter(|w| w.label.starts_with("wsbox"))
        .filter_map(|w| {
            let n = results
                .iter()
                .find(|n| n.label == "native" && n.scenario == w.scenario)?;
            Some((w, n))
        })
        .collect();
    let Some((first, _)) = pairs.first() else {
        return;
    };
    println!();
    println!("{} / native:", first.label);
    println!(
        "{:<8} {:>12} {:>20} {:>8} {:>8}",
        "scenario", "deliveries/s", "server CPU/delivery", "p50", "p99"
    );
    for (w, n) in pairs {
        let quantile_ratio = |q| w.latency.quantile(q) as f64 / n.latency.quantile(q) as f64;
        println!(
            "{:<8} {:>11.2}x {:>19.2}x {:>7.2}x {:>7.2}x",
            w.scenario,
            w.window.msgs_per_sec() / n.window.msgs_per_sec(),
            w.window.server_us_per_msg() / n.window.server_us_per_msg(),
            quantile_ratio(0.50),
            quantile_ratio(0.99),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Latency histogram

/// Sub-buckets per power of two: values are kept to within 1/128 (0.8 %).
const SUB_BITS: u32 = 7;

/// A log-linear histogram of nanosecond latencies: exact below 128 ns, else to within 0.8 %.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: vec![0; Histogram::index(u64::MAX) + 1],
            total: 0,
        }
    }
}

impl Histogram {
    /// The bucket `value` falls into.
    fn index(value: u64) -> usize {
        if value < 1 << SUB_BITS {
            return value as usize;
        }
        let shift = 63 - value.leading_zeros() - SUB_BITS;
        let sub = (value >> shift) as usize & ((1 << SUB_BITS) - 1);
        ((shift as usize + 1) << SUB_BITS) + sub
    }

    /// The smallest value that falls into bucket `index` (`u64::MAX` past the last bucket).
    fn lowest(index: usize) -> u64 {
        if index < 1 << SUB_BITS {
            return index as u64;
        }
        let shift = (index >> SUB_BITS) - 1;
        let sub = (index & ((1 << SUB_BITS) - 1)) as u128;
        u64::try_from(((1 << SUB_BITS) + sub) << shift).unwrap_or(u64::MAX)
    }

    /// Counts one `value`.
    fn record(&mut self, value: u64) {
        self.counts[Histogram::index(value)] += 1;
        self.total += 1;
    }

    /// Adds `other`'s counts to these.
    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The `q` quantile (0 to 1): the middle of the bucket that holds it; 0 when empty.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let low = Histogram::lowest(i);
                let high = Histogram::lowest(i + 1).saturating_sub(1).max(low);
                return low + (high - low) / 2;
            }
        }
        0
    }
}

// ---------------------------------------------------------------------------------------------
// The load client

mod client {
    use std::future::pending;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use anyhow::{Context as _, Result, bail, ensure};
    use tokio::sync::watch;

    use super::support::{
        ClientThreads, Conn, OP_BINARY, OP_TEXT, Phase, Report, client_frame, control_frame,
        split_evenly,
    };
    use super::{
        DRAIN_MAX, DRAIN_QUIET, HEADER_LEN, Histogram, Options, PUBLISHER_DIGITS, SEQ_DIGITS,
        Scenario, TIME_DIGITS,
    };

    /// Most messages a late publisher sends in one write.
    const MAX_BATCH: u64 = 256;

    /// What one run sends and expects.
    pub struct Config {
        addr: SocketAddr,
        topic: String,
        opcode: u8,
        size: usize,
        publishers: usize,
        subscribers: usize,
        /// Messages per second, all publishers together.
        rate: f64,
        /// A masked frame with an all-`0` header: each message patches its header digits in.
        template: Vec<u8>,
        /// Where the payload starts in `template`.
        payload_at: usize,
    }

    impl Config {
        /// The run of `scenario` against the server on `addr`, as the options say.
        pub fn new(addr: SocketAddr, scenario: &Scenario, o: &Options) -> Config {
            let opcode = if o.common.text { OP_TEXT } else { OP_BINARY };
            // ASCII, so the same bytes are valid as text.
            let payload: Vec<u8> = (0..scenario.size)
                .map(|i| {
                    if i < HEADER_LEN {
                        b'0'
                    } else {
                        b'a' + (i % 26) as u8
                    }
                })
                .collect();
            let template = client_frame(0, opcode, &payload);
            Config {
                addr,
                topic: o.topic.clone(),
                opcode,
                size: scenario.size,
                publishers: scenario.publishers,
                subscribers: scenario.subscribers,
                rate: o.rate(scenario),
                payload_at: template.len() - payload.len(),
                template,
            }
        }

        /// Bound on a server frame's payload: a message, or any control frame.
        fn max_payload(&self) -> usize {
            self.size.max(125)
        }
    }

    /// Times of one run, as nanoseconds since `epoch`: publishing starts at `run`; messages sent
    /// from `start` until `end` are measured.
    struct Times {
        epoch: Instant,
        run: AtomicU64,
        start: AtomicU64,
        end: AtomicU64,
    }

    impl Times {
        /// The time now.
        fn now(&self) -> u64 {
            self.epoch.elapsed().as_nanos() as u64
        }

        /// One of the times as an `Instant`.
        fn instant(&self, at: &AtomicU64) -> Instant {
            self.epoch + Duration::from_nanos(at.load(Relaxed))
        }

        /// Whether a message sent at `sent_at` belongs to the measured window.
        fn measured(&self, sent_at: u64) -> bool {
            (self.start.load(Relaxed)..self.end.load(Relaxed)).contains(&sent_at)
        }
    }

    /// Counters the main thread reads while the clients run.
    struct Shared {
        times: Times,
        /// Deliveries so far, all messages.
        received: AtomicU64,
        /// Messages sent within the window.
        measured_sent: AtomicU64,
        /// Deliveries of messages sent within the window.
        measured_received: AtomicU64,
    }

    /// What the connections of one client thread saw, about the messages of the window.
    #[derive(Default)]
    pub struct Stats {
        pub latency: Histogram,
        /// Messages missing between two that arrived, per connection and publisher, summed.
        pub gaps: u64,
        /// Messages that arrived after a later one of the same publisher.
        pub reordered: u64,
    }

    impl Stats {
        /// Adds `other`'s figures to these.
        fn merge(&mut self, other: &Stats) {
            self.latency.merge(&other.latency);
            self.gaps += other.gaps;
            self.reordered += other.reordered;
        }
    }

    /// The start and end of the measured window.
    pub struct WindowTimes {
        pub start: Instant,
        pub end: Instant,
    }

    /// The subscribers and the publishers of one run, connected.
    pub struct Clients {
        shared: Arc<Shared>,
        subscribers: ClientThreads<()>,
        publishers: ClientThreads<()>,
        stats: Vec<Arc<Mutex<Stats>>>,
    }

    impl Clients {
        /// Opens the subscribers' connections, on `threads` threads, then the publishers', on one;
        /// returns once all are open.
        pub fn connect(config: Arc<Config>, threads: usize) -> Result<Clients> {
            let shared = Arc::new(Shared {
                times: Times {
                    epoch: Instant::now(),
                    run: AtomicU64::new(u64::MAX),
                    start: AtomicU64::new(u64::MAX),
                    end: AtomicU64::new(u64::MAX),
                },
                received: AtomicU64::new(0),
                measured_sent: AtomicU64::new(0),
                measured_received: AtomicU64::new(0),
            });
            let mut stats = Vec::new();
            // One task maker per thread, with the thread's own `Stats`.
            let mut group = |connections: usize, publishing: bool| {
                let thread_stats = Arc::new(Mutex::new(Stats::default()));
                stats.push(thread_stats.clone());
                let (config, shared) = (config.clone(), shared.clone());
                let task = move |index: usize, conn: Conn, phase: watch::Receiver<Phase>| {
                    // Publishers are opened after the subscribers: their indexes start at 0.
                    let publisher = publishing.then_some(index);
                    connection(
                        conn,
                        phase,
                        publisher,
                        config.clone(),
                        shared.clone(),
                        thread_stats.clone(),
                    )
                };
                (connections, task)
            };
            let subscriber_threads: Vec<_> = split_evenly(config.subscribers, threads)
                .map(|n| group(n, false))
                .collect();
            let publisher_thread = vec![group(config.publishers, true)];
            let subscribers = ClientThreads::spawn(
                "fanout-subscriber",
                config.addr,
                &config.topic,
                subscriber_threads,
            )?;
            let publishers = ClientThreads::spawn(
                "fanout-publisher",
                config.addr,
                &config.topic,
                publisher_thread,
            )?;
            Ok(Clients {
                shared,
                subscribers,
                publishers,
                stats,
            })
        }

        /// Starts publishing now; the window starts after `warmup` seconds and lasts `seconds`.
        pub fn start(&self, warmup: f64, seconds: f64) -> WindowTimes {
            let times = &self.shared.times;
            let run = times.now();
            let start = run + (warmup * 1e9) as u64;
            times.run.store(run, Relaxed);
            times.start.store(start, Relaxed);
            times.end.store(start + (seconds * 1e9) as u64, Relaxed);
            // The phase change publishes the times to the client threads.
            self.subscribers.start();
            self.publishers.start();
            WindowTimes {
                start: times.instant(&times.start),
                end: times.instant(&times.end),
            }
        }

        /// Deliveries so far, all messages.
        pub fn received(&self) -> u64 {
            self.shared.received.load(Relaxed)
        }

        /// Once the window is over, waits until every delivery of its messages (`fanout` each)
        /// has arrived, or none has for [`DRAIN_QUIET`], at most [`DRAIN_MAX`]. Returns the
        /// window's messages and the deliveries of them that arrived.
        pub fn drain(&self, fanout: u64) -> (u64, u64) {
            let deadline = Instant::now() + DRAIN_MAX;
            let mut last = (0, Instant::now());
            loop {
                let sent = self.shared.measured_sent.load(Relaxed);
                let arrived = self.shared.measured_received.load(Relaxed);
                let now = Instant::now();
                if arrived >= sent * fanout || now >= deadline {
                    return (sent, arrived);
                }
                if arrived != last.0 {
                    last = (arrived, now);
                } else if now - last.1 >= DRAIN_QUIET {
                    return (sent, arrived);
                }
                thread::sleep(Duration::from_millis(10));
            }
        }

        /// Stops, closes every connection and joins the threads; returns what went wrong and
        /// what all connections saw.
        pub fn stop(mut self) -> (Report, Stats) {
            let (mut report, _) = self.publishers.stop();
            report.merge(self.subscribers.stop().0);
            let mut total = Stats::default();
            for stats in &self.stats {
                total.merge(&stats.lock().expect("stats lock"));
            }
            (report, total)
        }
    }

    /// When one publisher's messages are due.
    struct Schedule {
        /// This publisher's index, and the number of publishers.
        id: u64,
        publishers: u64,
        rate: f64,
        run: Instant,
        end: Instant,
        /// Messages sent so far: the next one's sequence number.
        sent: u64,
    }

    impl Schedule {
        /// When message `seq` of this publisher is due: the publishers take turns.
        fn due(&self, seq: u64) -> Instant {
            let turn = seq * self.publishers + self.id;
            self.run + Duration::from_secs_f64(turn as f64 / self.rate)
        }

        /// When the next message is due; `None` once the next would be after the window.
        fn next(&self) -> Option<Instant> {
            Some(self.due(self.sent)).filter(|&at| at < self.end)
        }

        /// How many messages are due by `now` and not sent yet (at most [`MAX_BATCH`]).
        fn backlog(&self, now: Instant) -> u64 {
            let mut n = 0;
            while n < MAX_BATCH && self.due(self.sent + n) <= now.min(self.end) {
                n += 1;
            }
            n
        }
    }

    /// One connection: read and check every frame until stopped; a publisher also sends its
    /// messages when they are due.
    async fn connection(
        mut conn: Conn,
        mut phase: watch::Receiver<Phase>,
        publisher: Option<usize>,
        config: Arc<Config>,
        shared: Arc<Shared>,
        stats: Arc<Mutex<Stats>>,
    ) -> Result<()> {
        let times = &shared.times;
        let mut schedule = publisher.map(|id| Schedule {
            id: id as u64,
            publishers: config.publishers as u64,
            rate: config.rate,
            run: times.instant(&times.run),
            end: times.instant(&times.end),
            sent: 0,
        });
        let mut inbox = Inbox::new(config.clone(), publisher);
        let mut frames = Vec::new();
        let mut control = Vec::new(); // pongs owed to the server
        let stop = async {
            // Also stopped if the sender is gone. The guard `wait_for` returns is not `Send`.
            let _ = phase.wait_for(|p| *p == Phase::Stop).await;
        };
        tokio::pin!(stop);
        loop {
            let due = schedule.as_ref().and_then(Schedule::next);
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = sleep_until(due) => {
                    let schedule = schedule.as_mut().expect("due only with a schedule");
                    publish(&mut conn, schedule, &config, &shared, &mut frames).await?;
                    continue;
                }
                read = conn.fill() => read?,
            }
            let now = times.now();
            let (all, measured) = {
                let mut stats = stats.lock().expect("stats lock");
                inbox.take(&mut conn, now, times, &mut stats, &mut control)?
            };
            shared.received.fetch_add(all, Relaxed);
            shared.measured_received.fetch_add(measured, Relaxed);
            if !control.is_empty() {
                conn.send(&control).await.context("sending a pong")?;
                control.clear();
            }
        }
        conn.close(config.max_payload()).await.context("closing")
    }

    /// Sleeps until `at`, or forever if `None`.
    async fn sleep_until(at: Option<Instant>) {
        match at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => pending().await,
        }
    }

    /// Sends every message due, in one write, each stamped with the time now.
    async fn publish(
        conn: &mut Conn,
        schedule: &mut Schedule,
        config: &Config,
        shared: &Shared,
        frames: &mut Vec<u8>,
    ) -> Result<()> {
        let n = schedule.backlog(Instant::now());
        if n == 0 {
            return Ok(());
        }
        let now = shared.times.now();
        frames.clear();
        for seq in schedule.sent..schedule.sent + n {
            let at = frames.len() + config.payload_at;
            frames.extend_from_slice(&config.template);
            let header = &mut frames[at..at + HEADER_LEN];
            let (id, rest) = header.split_at_mut(PUBLISHER_DIGITS);
            let (seq_digits, time) = rest.split_at_mut(SEQ_DIGITS);
            // The template's header is masked `0`s: XOR-ing in (digit ^ '0') masks the digit.
            patch_hex(id, schedule.id);
            patch_hex(seq_digits, seq);
            patch_hex(time, now);
        }
        schedule.sent += n;
        if shared.times.measured(now) {
            shared.measured_sent.fetch_add(n, Relaxed);
        }
        conn.send(frames).await.context("publishing")
    }

    const HEX: &[u8; 16] = b"0123456789abcdef";

    /// XORs `value`'s low hex digits (most significant first, `'0'` subtracted) into `masked`,
    /// which holds masked `'0'`s.
    fn patch_hex(masked: &mut [u8], mut value: u64) {
        for byte in masked.iter_mut().rev() {
            *byte ^= HEX[(value & 0xf) as usize] ^ b'0';
            value >>= 4;
        }
    }

    /// The hex number `digits` spell.
    fn parse_hex(digits: &[u8]) -> Result<u64> {
        digits.iter().try_fold(0, |n, &d| {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                _ => bail!("message header is not hex digits: {digits:?}"),
            };
            Ok(n << 4 | u64::from(v))
        })
    }

    /// What one connection has received: the next sequence number expected from each publisher.
    struct Inbox {
        config: Arc<Config>,
        /// This connection's publisher index, if it publishes.
        own: Option<usize>,
        next_seq: Vec<u64>,
    }

    impl Inbox {
        /// A connection that has received nothing yet; `own` is its publisher index, if any.
        fn new(config: Arc<Config>, own: Option<usize>) -> Inbox {
            let next_seq = vec![0; config.publishers];
            Inbox {
                config,
                own,
                next_seq,
            }
        }

        /// Takes every complete frame out of `conn`'s buffer, received at `now`: checks it,
        /// notes its sequence number and, if it was sent within the window, its latency. Pings
        /// are answered into `control`; a close frame ends the run of this connection. Returns the
        /// messages taken and those of them sent within the window.
        fn take(
            &mut self,
            conn: &mut Conn,
            now: u64,
            times: &Times,
            stats: &mut Stats,
            control: &mut Vec<u8>,
        ) -> Result<(u64, u64)> {
            let (mut all, mut measured) = (0, 0);
            while let Some(frame) = conn.next_frame(self.config.max_payload())? {
                let payload = conn.payload(&frame);
                match frame.opcode() {
                    opcode if opcode == self.config.opcode => {
                        ensure!(frame.fin(), "fragmented message (not reassembled here)");
                        ensure!(
                            payload.len() == self.config.size,
                            "a message of {} bytes, not {}",
                            payload.len(),
                            self.config.size
                        );
                        let (sent_at, fresh) = self.note(&payload[..HEADER_LEN], stats)?;
                        all += 1;
                        if fresh && times.measured(sent_at) {
                            measured += 1;
                            stats.latency.record(now.saturating_sub(sent_at));
                        }
                    }
                    OP_TEXT | OP_BINARY => {
                        bail!("a message changed type between text and binary")
                    }
                    opcode => control_frame(opcode, payload, control)?,
                }
            }
            Ok((all, measured))
        }

        /// Checks a message's header and its sequence number against the publisher's last one;
        /// returns its send time and whether it is new (not older than one seen before).
        fn note(&mut self, header: &[u8], stats: &mut Stats) -> Result<(u64, bool)> {
            let (id, rest) = header.split_at(PUBLISHER_DIGITS);
            let (seq, time) = rest.split_at(SEQ_DIGITS);
            debug_assert_eq!(time.len(), TIME_DIGITS);
            let id = parse_hex(id)? as usize;
            let (seq, sent_at) = (parse_hex(seq)?, parse_hex(time)?);
            ensure!(
                id < self.next_seq.len(),
                "a message from publisher {id}, of {}",
                self.next_seq.len()
            );
            ensure!(
                self.own != Some(id),
                "a publisher received its own message back"
            );
            let next = &mut self.next_seq[id];
            if seq < *next {
                stats.reordered += 1;
                return Ok((sent_at, false));
            }
            stats.gaps += seq - *next;
            *next = seq + 1;
            Ok((sent_at, true))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The native peer

mod native {
    use std::collections::HashMap;
    use std::io::IoSlice;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::{LazyLock, Mutex};
    use std::time::Duration;

    use anyhow::{Context as _, Result, bail, ensure};
    use base64::Engine as _;
    use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
    use sha1::{Digest as _, Sha1};
    use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio::sync::{broadcast, mpsc};

    /// Messages a topic holds for its slowest subscriber; one further behind loses the oldest.
    const CHANNEL_CAPACITY: usize = 1024;
    /// Most frames one vectored write takes.
    const MAX_WRITE_BATCH: usize = 64;
    /// Largest client frame payload accepted.
    const MAX_PAYLOAD: u64 = 16 << 20;
    /// Largest handshake request head.
    const MAX_HEAD: usize = 8 * 1024;
    /// How long a connection's writer may take to finish after its reader is done.
    const WRITER_GRACE: Duration = Duration::from_secs(5);
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// A message published to a topic: its publisher and its frame, encoded once for everyone.
    #[derive(Clone)]
    struct Published {
        from: u64,
        frame: Bytes,
    }

    /// The topics, by request path.
    static TOPICS: LazyLock<Mutex<HashMap<String, broadcast::Sender<Published>>>> =
        LazyLock::new(Mutex::default);
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);

    /// Runs the fan-out server on a multi-thread runtime (one worker per core).
    pub fn serve(addr: &str) -> Result<()> {
        super::support::serve_native(addr, connection)
    }

    /// The topic `path`, made on first use.
    fn topic(path: &str) -> broadcast::Sender<Published> {
        let mut topics = TOPICS.lock().expect("topics lock");
        topics
            .entry(path.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }

    /// Serves one connection; its error, if any, goes to the log.
    async fn connection(stream: TcpStream) {
        if let Err(e) = serve_connection(stream).await {
            eprintln!("native fanout: {e:#}");
        }
    }

    /// The opening handshake, then a reader (this task) that publishes and a writer task that
    /// delivers. Subscribes before answering the handshake, so no message published after the
    /// client saw the answer is missed.
    async fn serve_connection(mut stream: TcpStream) -> Result<()> {
        stream.set_nodelay(true)?;
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let Some((path, accept)) = read_request(&mut stream, &mut buf).await? else {
            return Ok(()); // a readiness probe: connected and hung up
        };
        let topic = topic(path.split('?').next().unwrap_or_default());
        let deliveries = topic.subscribe();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        stream.write_all(response.as_bytes()).await?;

        let id = NEXT_ID.fetch_add(1, Relaxed);
        let (reader, writer) = stream.into_split();
        let (control_tx, control_rx) = mpsc::channel(16);
        let mut writer = tokio::spawn(write_loop(writer, id, deliveries, control_rx));
        let read = read_loop(reader, buf, id, &topic, control_tx).await;
        // The reader dropped its control sender: the writer finishes once it has sent any
        // control frame still queued (the close reply).
        match tokio::time::timeout(WRITER_GRACE, &mut writer).await {
            Ok(written) => written.context("the writer task")??,
            Err(_) => writer.abort(),
        }
        read
    }

    /// Reads the request head into `buf` (what follows it stays there) and returns its path
    /// and the `Sec-WebSocket-Accept` answer; `None` if the peer hung up first.
    async fn read_request(
        stream: &mut TcpStream,
        buf: &mut BytesMut,
    ) -> Result<Option<(String, String)>> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(head_len) = request.parse(buf)? {
                ensure!(request.method == Some("GET"), "not a GET request");
                let path = request.path.context("no request path")?.to_owned();
                let key = request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                    .context("no Sec-WebSocket-Key")?
                    .value;
                let mut sha1 = Sha1::new();
                sha1.update(key);
                sha1.update(GUID);
                let accept = base64::engine::general_purpose::STANDARD.encode(sha1.finalize());
                buf.advance(head_len);
                return Ok(Some((path, accept)));
            }
            ensure!(buf.len() < MAX_HEAD, "request head over {MAX_HEAD} bytes");
            if stream.read_buf(buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads client frames; publishes each data message to `topic` as a server frame.
    async fn read_loop(
        mut reader: OwnedReadHalf,
        mut buf: BytesMut,
        id: u64,
        topic: &broadcast::Sender<Published>,
        control: mpsc::Sender<Bytes>,
    ) -> Result<()> {
        loop {
            while let Some((opcode, payload)) = next_frame(&mut buf)? {
                match opcode {
                    0x1 | 0x2 => {
                        // Err only without receivers, and this connection is one.
                        let _ = topic.send(Published {
                            from: id,
                            frame: server_frame(opcode, &payload),
                        });
                    }
                    0x9 => {
                        let _ = control.send(server_frame(0xA, &payload)).await;
                    }
                    0xA => {}
                    0x8 => {
                        let code = payload.get(..2).unwrap_or_default();
                        let _ = control.send(server_frame(0x8, code)).await;
                        return Ok(());
                    }
                    other => bail!("unsupported frame, opcode {other:#x}"),
                }
            }
            buf.reserve(4096);
            if reader.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
    }

    /// Takes the next complete client frame out of `buf`: its opcode and unmasked payload.
    /// Fragmented messages are not supported (the bench never sends them).
    fn next_frame(buf: &mut BytesMut) -> Result<Option<(u8, BytesMut)>> {
        let [b0, b1, ..] = buf[..] else {
            return Ok(None);
        };
        ensure!(
            b0 & 0xf0 == 0x80,
            "fragmented frame or RSV bits (unsupported)"
        );
        ensure!(b1 & 0x80 != 0, "unmasked client frame");
        let (len_bytes, len) = match b1 & 0x7f {
            126 if buf.len() >= 4 => (2, u64::from(u16::from_be_bytes([buf[2], buf[3]]))),
            127 if buf.len() >= 10 => (
                8,
                u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")),
            ),
            126 | 127 => return Ok(None),
            n => (0, u64::from(n)),
        };
        ensure!(len <= MAX_PAYLOAD, "frame of {len} bytes");
        let header_len = 2 + len_bytes + 4;
        if (buf.len() as u64) < header_len as u64 + len {
            buf.reserve(header_len + len as usize - buf.len());
            return Ok(None);
        }
        let mask: [u8; 4] = buf[header_len - 4..header_len].try_into().expect("4 bytes");
        buf.advance(header_len);
        let mut payload = buf.split_to(len as usize);
        let mut words = payload.chunks_exact_mut(4);
        for word in &mut words {
            let x = u32::from_ne_bytes((&*word).try_into().expect("4 bytes"))
                ^ u32::from_ne_bytes(mask);
            word.copy_from_slice(&x.to_ne_bytes());
        }
        for (byte, m) in words.into_remainder().iter_mut().zip(mask) {
            *byte ^= m;
        }
        Ok(Some((b0 & 0x0f, payload)))
    }

    /// A complete, unmasked server frame.
    fn server_frame(opcode: u8, payload: &[u8]) -> Bytes {
        let mut frame = BytesMut::with_capacity(payload.len() + 10);
        frame.put_u8(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.put_u8(n as u8),
            n if n <= 0xffff => {
                frame.put_u8(126);
                frame.put_u16(n as u16);
            }
            n => {
                frame.put_u8(127);
                frame.put_u64(n as u64);
            }
        }
        frame.put_slice(payload);
        frame.freeze()
    }

    /// Delivers the topic's messages (not this connection's own) and the reader's control
    /// frames, until the reader is done or the topic gone. A delivery lagging more than the
    /// channel's capacity loses messages; they are counted and reported when the connection ends.
    async fn write_loop(
        mut writer: OwnedWriteHalf,
        id: u64,
        mut deliveries: broadcast::Receiver<Published>,
        mut control: mpsc::Receiver<Bytes>,
    ) -> Result<()> {
        let mut lost = 0;
        let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_WRITE_BATCH);
        let mut closed = false;
        let result = loop {
            if closed {
                break Ok(());
            }
            tokio::select! {
                biased;
                frame = control.recv() => match frame {
                    Some(frame) => {
                        let close = frame[0] == 0x88;
                        writer.write_all(&frame).await?;
                        if close {
                            break writer.shutdown().await;
                        }
                    }
                    None => break Ok(()),
                },
                delivery = deliveries.recv() => {
                    let mut next = delivery;
                    loop {
                        match next {
                            Ok(p) if p.from == id => {}
                            Ok(p) => batch.push(p.frame),
                            Err(broadcast::error::RecvError::Lagged(n)) => lost += n,
                            Err(broadcast::error::RecvError::Closed) => {
                                closed = true;
                                break;
                            }
                        }
                        if batch.len() == MAX_WRITE_BATCH {
                            break;
                        }
                        next = match deliveries.try_recv() {
                            Ok(p) => Ok(p),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                Err(broadcast::error::RecvError::Lagged(n))
                            }
                            Err(_) => break,
                        };
                    }
                    write_all_vectored(&mut writer, &mut batch).await?;
                }
            }
        };
        if lost > 0 {
            eprintln!("native fanout: connection {id} lagged and lost {lost} message(s)");
        }
        Ok(result?)
    }

    /// Writes all of `frames`, as few syscalls as the socket allows, and empties it.
    async fn write_all_vectored(
        writer: &mut (impl AsyncWrite + Unpin),
        frames: &mut Vec<Bytes>,
    ) -> std::io::Result<()> {
        if let [frame] = &frames[..] {
            writer.write_all(frame).await?;
            frames.clear();
            return Ok(());
        }
        let mut first = 0;
        while first < frames.len() {
            let slices: Vec<IoSlice<'_>> =
                frames[first..].iter().map(|f| IoSlice::new(f)).collect();
            let mut written = writer.write_vectored(&slices).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            while first < frames.len() && written >= frames[first].len() {
                written -= frames[first].len();
                first += 1;
            }
            if written > 0 {
                frames[first].advance(written);
            }
        }
        frames.clear();
        Ok(())
    }
}
