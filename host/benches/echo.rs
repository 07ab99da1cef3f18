//! Echo benchmark: round trips through the wsbox host running `echo.wasm`, and through a native
//! tokio-tungstenite echo server, measured the same way in the same run (DESIGN.md §5).
//!
//! ```text
//! cargo build --release -p host
//! cargo build --release --target wasm32-wasip2 -p echo
//! cargo bench -p host --bench echo -- [options]      # see USAGE below
//! ```
//!
//! Method: a closed loop like uWebSockets' `load_test`. C connections each keep P messages of S
//! bytes in flight: every echo that comes back is answered at once with a new message, so the rate
//! is what server and client together sustain. After a warm-up, completed echoes are counted over a
//! fixed window, and the server process's CPU time over the same window (utime + stime from
//! `/proc/<pid>/stat`) gives server CPU per message, the fairer number on a small machine where the
//! client competes with the server for cores. Idle memory is the server's VmRSS with C handshaken,
//! silent connections open, minus its VmRSS before they connected.
//!
//! Both servers are separate processes on 127.0.0.1 (the native one is this binary re-executed with
//! the hidden `--serve-native ADDR` flag) and are killed when the bench ends, also on error or panic
//! (a guard's `Drop`), and should the bench itself be killed (`PR_SET_PDEATHSIG`).
//!
//! The client is deliberately thin, as it shares the machine: raw `TcpStream`s on current-thread
//! tokio runtimes, pre-built masked frames written with one syscall per batch of echoes, responses
//! parsed in place in a per-connection buffer, no allocation on the message path.

mod support;

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use support::{
    Common, Kind, Sample, Window, bench_main, clock_ticks_per_second, number, rss_kib,
    serve_command,
};

const USAGE: &str = "\
usage: cargo bench -p host --bench echo -- [options]

  --connections N     concurrent connections                           [100]
  --inflight LIST     messages in flight per connection, one run each  [1,16]
  --size BYTES        message payload size                             [32]
  --text              send text messages (default: binary)
  --seconds SECS      measured window per run                          [5]
  --warmup SECS       warm-up before each window                       [1]
  --only KIND         run only `wsbox` or only `native`
  --host-bin PATH     wsbox host binary     [<target>/release/host]
  --guest PATH        echo guest component  [<target>/wasm32-wasip2/release/echo.wasm]
  --host-arg ARG      one more argument to `host serve` (repeatable)
  --client-threads N  client threads, each a current-thread runtime    [1]
  --native-as-wsbox   validation: run the native server in the wsbox slot too
                      (the wsbox/native ratios should then come out near 1.00)
  --metrics           also run wsbox with --metrics-listen (as wsbox+metrics),
                      to measure what counting costs
  --repeat N          with --metrics: run the wsbox, wsbox+metrics pair N times
                      (ABBA order) and report each pair's ratio and the median [1]

<target> is $CARGO_TARGET_DIR, else <workspace>/target.
";

/// Time for a server's memory to settle once all idle connections are open.
const SETTLE: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    bench_main(USAGE, native::serve, Options::parse, run)
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug)]
struct Options {
    connections: usize,
    inflight: Vec<usize>,
    size: usize,
    /// Also run wsbox with `--metrics-listen`.
    metrics: bool,
    /// How many wsbox, wsbox+metrics pairs.
    repeat: usize,
    common: Common,
}

impl Options {
    /// Parses the command line; `Ok(None)` means help was asked for.
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let mut o = Options {
            connections: 100,
            inflight: vec![1, 16],
            size: 32,
            metrics: false,
            repeat: 1,
            common: Common::new("echo"),
        };
        let go_on = o.common.parse(args, USAGE, |flag| {
            match flag.name.as_str() {
                "--connections" => o.connections = flag.number()?,
                "--inflight" => {
                    o.inflight = flag
                        .value()?
                        .split(',')
                        .map(|p| number(&flag.name, p.trim()))
                        .collect::<Result<_>>()?
                }
                "--size" => o.size = flag.number()?,
                "--metrics" => o.metrics = true,
                "--repeat" => o.repeat = flag.number()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if !go_on {
            return Ok(None);
        }
        ensure!(o.connections > 0, "--connections must be at least 1");
        ensure!(
            !o.inflight.is_empty() && o.inflight.iter().all(|&p| p > 0),
            "--inflight values must be at least 1"
        );
        Ok(Some(o))
    }

    /// The servers to measure, in order: with `--metrics`, the wsbox and
    /// wsbox+metrics pair `--repeat` times in ABBA order (so a drift of the
    /// machine over the run favours neither), then native.
    fn variants(&self) -> Vec<Variant> {
        let kinds = self.common.kinds();
        if !self.metrics || !kinds.contains(&Kind::Wsbox) {
            return kinds.into_iter().map(Variant::Server).collect();
        }
        let mut variants = Vec::new();
        for i in 0..self.repeat.max(1) {
            let pair = [Variant::Server(Kind::Wsbox), Variant::WsboxMetrics];
            if i % 2 == 0 {
                variants.extend(pair);
            } else {
                variants.extend(pair.into_iter().rev());
            }
        }
        if kinds.contains(&Kind::Native) {
            variants.push(Variant::Server(Kind::Native));
        }
        variants
    }
}

/// One server to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// wsbox or the native peer.
    Server(Kind),
    /// wsbox with `--metrics-listen`.
    WsboxMetrics,
}

// ---------------------------------------------------------------------------------------------
// The run

/// One measured window against one server.
struct Round {
    inflight: usize,
    window: Window,
}

/// Server resident memory before connecting and with all connections open and idle.
struct Memory {
    before_kib: u64,
    idle_kib: u64,
    connections: usize,
}

impl Memory {
    fn kib_per_connection(&self) -> f64 {
        (self.idle_kib as f64 - self.before_kib as f64) / self.connections as f64
    }
}

struct ServerResult {
    label: String,
    rounds: Vec<Round>,
    memory: Memory,
}

fn run(o: &Options) -> Result<()> {
    o.common.require_wsbox()?;
    let c = &o.common;
    let tck = clock_ticks_per_second();
    println!(
        "echo: {} connections, {}-byte {} messages, in flight {:?}, {} s window after {} s warm-up, \
         {} client thread(s), CLK_TCK {tck}",
        o.connections,
        o.size,
        if c.text { "text" } else { "binary" },
        o.inflight,
        c.seconds,
        c.warmup,
        c.client_threads,
    );

    let mut results = Vec::new();
    for variant in o.variants() {
        results.push(bench_server(variant, o)?);
    }
    print_report(o, &results);
    Ok(())
}

fn bench_server(variant: Variant, o: &Options) -> Result<ServerResult> {
    let c = &o.common;
    let mut server = match variant {
        Variant::Server(kind) => c.start_server("echo", kind)?,
        Variant::WsboxMetrics => {
            let mut server = support::start_server("echo", Kind::Wsbox, false, |addr| {
                let mut cmd = serve_command(&c.host_bin, &c.guest, addr);
                cmd.args(&c.host_args)
                    .args(["--metrics-listen", "127.0.0.1:0"]);
                cmd
            })?;
            server.label = "wsbox+metrics".into();
            server
        }
    };
    let pid = server.pid();
    let mut rounds = Vec::new();
    let mut memory = None;
    for &inflight in &o.inflight {
        eprintln!(
            "{}: P={inflight}: connecting {} clients",
            server.label, o.connections
        );
        let config = client::Config::new(server.addr, o.size, c.text, inflight);
        let before_kib = if memory.is_none() {
            Some(rss_kib(pid)?)
        } else {
            None
        };
        let clients = client::Clients::connect(config, o.connections, c.client_threads)
            .with_context(|| format!("connecting to the {} server", server.label))?;
        if let Some(before_kib) = before_kib {
            thread::sleep(SETTLE);
            memory = Some(Memory {
                before_kib,
                idle_kib: rss_kib(pid)?,
                connections: o.connections,
            });
        }

        eprintln!(
            "{}: P={inflight}: running {} s + {} s",
            server.label, c.warmup, c.seconds
        );
        clients.start();
        thread::sleep(Duration::from_secs_f64(c.warmup));
        let start = Sample::take(clients.completed(), pid)?;
        thread::sleep(Duration::from_secs_f64(c.seconds));
        let end = Sample::take(clients.completed(), pid)?;
        let report = clients.stop();
        report.warn(&format!("{} P={inflight}", server.label));
        server.ensure_running()?;

        rounds.push(Round {
            inflight,
            window: Window::between(&start, &end),
        });
        // Let the server retire the closed connections before the next round.
        thread::sleep(Duration::from_millis(200));
    }
    let memory = memory.context("no round was run")?;
    Ok(ServerResult {
        label: server.label.clone(),
        rounds,
        memory,
    })
}

fn print_report(o: &Options, results: &[ServerResult]) {
    println!();
    println!(
        "{:<14} {:>3} {:>12} {:>18} {:>13} {:>18}",
        "server", "P", "msgs/s", "server µs CPU/msg", "server cores", "client µs CPU/msg"
    );
    for r in results {
        for round in &r.rounds {
            let w = &round.window;
            println!(
                "{:<14} {:>3} {:>12.0} {:>18.2} {:>13.2} {:>18.2}",
                r.label,
                round.inflight,
                w.msgs_per_sec(),
                w.server_us_per_msg(),
                w.server_cpu_seconds / w.seconds,
                w.client_us_per_msg(),
            );
        }
    }

    println!();
    println!("idle memory, {} connections:", o.connections);
    println!(
        "{:<14} {:>15} {:>15} {:>15}",
        "server", "RSS before KiB", "RSS idle KiB", "KiB/connection"
    );
    for r in results {
        let m = &r.memory;
        println!(
            "{:<14} {:>15} {:>15} {:>15.1}",
            r.label,
            m.before_kib,
            m.idle_kib,
            m.kib_per_connection()
        );
    }

    // Each wsbox variant against native, and with metrics against without.
    if let Some((native, variants)) = results.split_last()
        && native.label == "native"
    {
        for variant in variants {
            print_ratios(variant, native);
        }
    }
    let pairs: Vec<(&ServerResult, &ServerResult)> = results
        .chunks_exact(2)
        .filter_map(
            |pair| match (pair[0].label.as_str(), pair[1].label.as_str()) {
                ("wsbox", "wsbox+metrics") => Some((&pair[1], &pair[0])),
                ("wsbox+metrics", "wsbox") => Some((&pair[0], &pair[1])),
                _ => None,
            },
        )
        .collect();
    for (metrics, wsbox) in &pairs {
        print_ratios(metrics, wsbox);
    }
    if pairs.len() > 1 {
        println!();
        println!("wsbox+metrics / wsbox, median of {} pairs:", pairs.len());
        println!("{:>3} {:>8} {:>15}", "P", "msgs/s", "server CPU/msg");
        for round in &pairs[0].0.rounds {
            let p = round.inflight;
            let median = |f: fn(&Window) -> f64| {
                let mut ratios: Vec<f64> = pairs
                    .iter()
                    .filter_map(|(m, w)| {
                        let m = m.rounds.iter().find(|r| r.inflight == p)?;
                        let w = w.rounds.iter().find(|r| r.inflight == p)?;
                        Some(f(&m.window) / f(&w.window))
                    })
                    .collect();
                ratios.sort_by(f64::total_cmp);
                ratios[ratios.len() / 2]
            };
            println!(
                "{:>3} {:>7.2}x {:>14.2}x",
                p,
                median(Window::msgs_per_sec),
                median(Window::server_us_per_msg)
            );
        }
    }
}

/// How `a` compares to `b`, round by round.
fn print_ratios(a: &ServerResult, b: &ServerResult) {
    println!();
    println!("{} / {}:", a.label, b.label);
    println!("{:>3} {:>8} {:>15}", "P", "msgs/s", "server CPU/msg");
    for w in &a.rounds {
        if let Some(n) = b.rounds.iter().find(|n| n.inflight == w.inflight) {
            println!(
                "{:>3} {:>7.2}x {:>14.2}x",
                w.inflight,
                w.window.msgs_per_sec() / n.window.msgs_per_sec(),
                w.window.server_us_per_msg() / n.window.server_us_per_msg()
            );
        }
    }
    println!(
        "idle memory per connection: {:.2}x",
        a.memory.kib_per_connection() / b.memory.kib_per_connection()
    );
}

// ---------------------------------------------------------------------------------------------
// The load client

mod client {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

    use anyhow::{Context as _, Result, bail, ensure};

    use super::support::{
        ClientThreads, Conn, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Report, client_frame,
        describe_close, split_evenly,
    };

    /// What every connection of one run sends and expects back.
    pub struct Config {
        addr: std::net::SocketAddr,
        opcode: u8,
        payload: Vec<u8>,
        inflight: usize,
        /// `inflight` copies of the masked frame: a batch of k messages is its first k frames.
        frames: Vec<u8>,
        frame_len: usize,
    }

    impl Config {
        pub fn new(
            addr: std::net::SocketAddr,
            size: usize,
            text: bool,
            inflight: usize,
        ) -> Arc<Config> {
            let opcode = if text { OP_TEXT } else { OP_BINARY };
            // ASCII, so the same bytes are valid as text.
            let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            let frame = client_frame(0, opcode, &payload);
            Arc::new(Config {
                addr,
                opcode,
                frame_len: frame.len(),
                frames: frame.repeat(inflight),
                payload,
                inflight,
            })
        }
    }

    struct Shared {
        completed: AtomicU64,
        stop: AtomicBool,
    }

    /// Connections spread over client threads, handshaken and waiting for [`Clients::start`].
    pub struct Clients {
        shared: Arc<Shared>,
        threads: ClientThreads<()>,
    }

    impl Clients {
        /// Opens `connections` WebSocket connections on `threads` threads; returns once all are open.
        pub fn connect(config: Arc<Config>, connections: usize, threads: usize) -> Result<Clients> {
            let shared = Arc::new(Shared {
                completed: AtomicU64::new(0),
                stop: AtomicBool::new(false),
            });
            let tasks = split_evenly(connections, threads)
                .map(|n| {
                    let (config, shared) = (config.clone(), shared.clone());
                    let task = move |_, conn, _| echo_loop(conn, config.clone(), shared.clone());
                    (n, task)
                })
                .collect();
            let threads = ClientThreads::spawn("echo-client", config.addr, "/", tasks)?;
            Ok(Clients { shared, threads })
        }

        /// Starts the closed loop on every connection.
        pub fn start(&self) {
            self.threads.start();
        }

        /// Echoes completed so far, over all connections.
        pub fn completed(&self) -> u64 {
            self.shared.completed.load(Relaxed)
        }

        /// Stops sending, closes every connection (bounded by [`CLOSE_TIMEOUT`]) and joins the threads.
        ///
        /// [`CLOSE_TIMEOUT`]: super::support::CLOSE_TIMEOUT
        pub fn stop(mut self) -> Report {
            self.shared.stop.store(true, Relaxed);
            self.threads.stop().0
        }
    }

    impl Drop for Clients {
        fn drop(&mut self) {
            // Before the threads are stopped and joined (when the field is dropped, next).
            self.shared.stop.store(true, Relaxed);
        }
    }

    /// The closed loop of one connection: answer every echo with a new message until stopped.
    async fn echo_loop(mut conn: Conn, config: Arc<Config>, shared: Arc<Shared>) -> Result<()> {
        let max_payload = config.payload.len().max(125);
        let mut control = Vec::new(); // pongs owed to the server; normally never used
        conn.send(&config.frames).await.context("sending")?;
        while !shared.stop.load(Relaxed) {
            conn.fill().await?;
            let mut echoed = 0;
            while let Some(frame) = conn.next_frame(max_payload)? {
                let payload = conn.payload(&frame);
                match frame.opcode() {
                    opcode if opcode == config.opcode => {
                        ensure!(
                            frame.fin(),
                            "fragmented echo (this client does not reassemble)"
                        );
                        ensure!(
                            payload == config.payload,
                            "the echo differs from the message sent"
                        );
                        echoed += 1;
                    }
                    OP_PING => control.extend(client_frame(0, OP_PONG, payload)),
                    OP_PONG => {}
                    OP_CLOSE => bail!(
                        "the server closed the connection: {}",
                        describe_close(payload)
                    ),
                    opcode => bail!("unexpected frame, opcode {opcode:#x}"),
                }
            }
            ensure!(echoed <= config.inflight, "more echoes than messages sent");
            if echoed == 0 && control.is_empty() {
                continue;
            }
            shared.completed.fetch_add(echoed as u64, Relaxed);
            if !control.is_empty() {
                conn.send(&control).await.context("sending a pong")?;
                control.clear();
            }
            if !shared.stop.load(Relaxed) {
                conn.send(&config.frames[..echoed * config.frame_len])
                    .await
                    .context("sending")?;
            }
        }
        conn.close(max_payload).await.context("closing")
    }
}

// ---------------------------------------------------------------------------------------------
// The native peer

mod native {
    use anyhow::Result;
    use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::ProtocolError;

    /// Runs a tokio-tungstenite echo server on a multi-thread runtime (one worker per core).
    pub fn serve(addr: &str) -> Result<()> {
        super::support::serve_native(addr, connection)
    }

    async fn connection(stream: TcpStream) {
        match echo(stream).await {
            // Also quiet for the bench's readiness probes, which connect and hang up at once.
            Ok(())
            | Err(
                WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(ProtocolError::HandshakeIncomplete),
            ) => {}
            Err(e) => eprintln!("native echo: {e}"),
        }
    }

    /// Echoes text and binary messages. Flushes only when no more input is ready, so pipelined
    /// messages go out in one write. Pings and closes are answered by tungstenite itself.
    async fn echo(stream: TcpStream) -> Result<(), WsError> {
        stream.set_nodelay(true)?;
        let mut ws = tokio_tungstenite::accept_async(stream).await?;
        let mut next = ws.next().await;
        while let Some(message) = next {
            let message = message?;
            if message.is_text() || message.is_binary() {
                ws.feed(message).await?;
            }
            next = match ws.next().now_or_never() {
                Some(next) => next,
                None => {
                    ws.flush().await?;
                    ws.next().await
                }
            };
        }
        Ok(())
    }
}
