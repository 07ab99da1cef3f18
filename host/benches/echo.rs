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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use support::{
    Flags, Log, Sample, Server, Window, clock_ticks_per_second, free_port, number, require_file,
    rss_kib, serve_command, workspace_root,
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
  --host-bin PATH     wsbox host binary     [<workspace>/target/release/host]
  --guest PATH        echo guest component  [<workspace>/target/wasm32-wasip2/release/echo.wasm]
  --client-threads N  client threads, each a current-thread runtime    [1]
  --native-as-wsbox   validation: run the native server in the wsbox slot too
                      (the wsbox/native ratios should then come out near 1.00)
  --metrics           also run wsbox with --metrics-listen (as wsbox+metrics),
                      to measure what counting costs
  --repeat N          with --metrics: run the wsbox, wsbox+metrics pair N times
                      (ABBA order) and report each pair's ratio and the median [1]
  --host-arg ARG      pass ARG to `host serve` (repeat for several)
";

/// Bound on the closing handshakes after a run.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for a server's memory to settle once all idle connections are open.
const SETTLE: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().position(|a| a == "--serve-native") {
        Some(i) => match args.get(i + 1) {
            Some(addr) => native::serve(addr),
            None => Err(anyhow::anyhow!("--serve-native needs an address")),
        },
        None => match Options::parse(args) {
            Ok(Some(options)) => run(&options),
            Ok(None) => {
                print!("{USAGE}");
                Ok(())
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Wsbox,
    /// wsbox with `--metrics-listen`.
    WsboxMetrics,
    Native,
}

#[derive(Debug)]
struct Options {
    connections: usize,
    inflight: Vec<usize>,
    size: usize,
    text: bool,
    seconds: f64,
    warmup: f64,
    only: Option<Kind>,
    host_bin: PathBuf,
    guest: PathBuf,
    client_threads: usize,
    native_as_wsbox: bool,
    metrics: bool,
    repeat: usize,
    host_args: Vec<String>,
}

impl Options {
    /// Parses the command line; `Ok(None)` means help was asked for.
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let root = workspace_root();
        let mut o = Options {
            connections: 100,
            inflight: vec![1, 16],
            size: 32,
            text: false,
            seconds: 5.0,
            warmup: 1.0,
            only: None,
            host_bin: root.join("target/release/host"),
            guest: root.join("target/wasm32-wasip2/release/echo.wasm"),
            client_threads: 1,
            native_as_wsbox: false,
            metrics: false,
            repeat: 1,
            host_args: Vec::new(),
        };
        let mut flags = Flags::new(args);
        while let Some(mut flag) = flags.next_flag() {
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
                "--text" => o.text = true,
                "--binary" => o.text = false,
                "--seconds" => o.seconds = flag.number()?,
                "--warmup" => o.warmup = flag.number()?,
                "--only" => {
                    o.only = Some(match flag.value()?.as_str() {
                        "wsbox" => Kind::Wsbox,
                        "native" => Kind::Native,
                        other => bail!("--only takes `wsbox` or `native`, not {other:?}"),
                    })
                }
                "--host-bin" => o.host_bin = flag.value()?.into(),
                "--guest" => o.guest = flag.value()?.into(),
                "--client-threads" => o.client_threads = flag.number()?,
                "--native-as-wsbox" => o.native_as_wsbox = true,
                "--metrics" => o.metrics = true,
                "--repeat" => o.repeat = flag.number()?,
                "--host-arg" => o.host_args.push(flag.value()?),
                // `cargo bench` passes `--bench` to harness-less benches.
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                _ => bail!("unknown option {:?}\n\n{USAGE}", flag.arg),
            }
        }
        ensure!(o.connections > 0, "--connections must be at least 1");
        ensure!(
            !o.inflight.is_empty() && o.inflight.iter().all(|&p| p > 0),
            "--inflight values must be at least 1"
        );
        ensure!(
            o.seconds > 0.0 && o.warmup >= 0.0,
            "--seconds must be positive and --warmup not negative"
        );
        ensure!(o.client_threads > 0, "--client-threads must be at least 1");
        Ok(Some(o))
    }

    fn kinds(&self) -> Vec<Kind> {
        match self.only {
            Some(kind) => vec![kind],
            None if self.metrics => {
                // ABBA order, so a drift of the machine over the run does not
                // favour the one that always runs first.
                let mut kinds = Vec::new();
                for i in 0..self.repeat.max(1) {
                    if i % 2 == 0 {
                        kinds.extend([Kind::Wsbox, Kind::WsboxMetrics]);
                    } else {
                        kinds.extend([Kind::WsboxMetrics, Kind::Wsbox]);
                    }
                }
                kinds.push(Kind::Native);
                kinds
            }
            None => vec![Kind::Wsbox, Kind::Native],
        }
    }
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
    let kinds = o.kinds();
    if kinds.contains(&Kind::Wsbox) && !o.native_as_wsbox {
        require_file(
            &o.host_bin,
            "the wsbox host",
            "cargo build --release -p host",
        )?;
        require_file(
            &o.guest,
            "the echo guest",
            "cargo build --release --target wasm32-wasip2 -p echo",
        )?;
    }
    let tck = clock_ticks_per_second();
    println!(
        "echo: {} connections, {}-byte {} messages, in flight {:?}, {} s window after {} s warm-up, \
         {} client thread(s), CLK_TCK {tck}",
        o.connections,
        o.size,
        if o.text { "text" } else { "binary" },
        o.inflight,
        o.seconds,
        o.warmup,
        o.client_threads,
    );

    let mut results = Vec::new();
    for kind in kinds {
        results.push(bench_server(kind, o)?);
    }
    print_report(o, &results);
    Ok(())
}

fn bench_server(kind: Kind, o: &Options) -> Result<ServerResult> {
    let mut server = start_server(kind, o)?;
    let pid = server.pid();
    let mut rounds = Vec::new();
    let mut memory = None;
    for &inflight in &o.inflight {
        eprintln!(
            "{}: P={inflight}: connecting {} clients",
            server.label, o.connections
        );
        let config = client::Config::new(server.addr, o.size, o.text, inflight);
        let before_kib = if memory.is_none() {
            Some(rss_kib(pid)?)
        } else {
            None
        };
        let clients = client::Clients::connect(config, o.connections, o.client_threads)
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
            server.label, o.warmup, o.seconds
        );
        clients.start();
        thread::sleep(Duration::from_secs_f64(o.warmup));
        let start = Sample::take(clients.completed(), pid)?;
        thread::sleep(Duration::from_secs_f64(o.seconds));
        let end = Sample::take(clients.completed(), pid)?;
        let report = clients.stop();
        report.warn(&server.label, inflight);
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

    // Each wsbox variant against the last result (native), and with
    // metrics against without.
    let Some((native, variants)) = results.split_last() else {
        return;
    };
    if native.label == "native" {
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
            let ratios = |f: fn(&Window) -> f64| {
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
                ratios(Window::msgs_per_sec),
                ratios(Window::server_us_per_msg)
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
// The servers

/// Starts the server of `kind` on a free port.
fn start_server(kind: Kind, o: &Options) -> Result<Server> {
    let addr = free_port()?;
    let (label, cmd) = match kind {
        Kind::Wsbox if o.native_as_wsbox => ("wsbox=native", native_command(addr)?),
        Kind::Wsbox => {
            let mut cmd = serve_command(&o.host_bin, &o.guest, addr);
            cmd.args(&o.host_args);
            ("wsbox", cmd)
        }
        Kind::WsboxMetrics => {
            let mut cmd = serve_command(&o.host_bin, &o.guest, addr);
            cmd.args(&o.host_args)
                .args(["--metrics-listen", "127.0.0.1:0"]);
            ("wsbox+metrics", cmd)
        }
        Kind::Native => ("native", native_command(addr)?),
    };
    let log = std::env::temp_dir().join(format!("wsbox-bench-echo-{label}.log"));
    Server::start(label, cmd, addr, log, Log::Keep)
}

fn native_command(addr: SocketAddr) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--serve-native").arg(addr.to_string());
    Ok(cmd)
}

// ---------------------------------------------------------------------------------------------
// The load client

mod client {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, mpsc};
    use std::thread;

    use anyhow::{Context as _, Result, bail, ensure};
    use tokio::sync::watch;
    use tokio::task::JoinSet;

    use super::CLOSE_TIMEOUT;
    use super::support::{
        CONNECT_TIMEOUT, Conn, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, client_frame,
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

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Phase {
        Connected,
        Run,
        Stop,
    }

    struct Shared {
        completed: AtomicU64,
        stop: AtomicBool,
    }

    /// Problems seen by the connections of one run.
    #[derive(Default)]
    pub struct Report {
        failed: usize,
        unclosed: usize,
        first_error: Option<String>,
    }

    impl Report {
        fn fail(&mut self, error: anyhow::Error) {
            self.failed += 1;
            self.first_error.get_or_insert_with(|| format!("{error:#}"));
        }

        fn merge(&mut self, other: Report) {
            self.failed += other.failed;
            self.unclosed += other.unclosed;
            if self.first_error.is_none() {
                self.first_error = other.first_error;
            }
        }

        /// Prints what went wrong, if anything, to stderr.
        pub fn warn(&self, server: &str, inflight: usize) {
            if self.failed > 0 {
                eprintln!(
                    "warning: {server} P={inflight}: {} connection(s) failed; first error: {}",
                    self.failed,
                    self.first_error.as_deref().unwrap_or("?")
                );
            }
            if self.unclosed > 0 {
                eprintln!(
                    "warning: {server} P={inflight}: {} connection(s) did not finish the closing handshake \
                     within {CLOSE_TIMEOUT:?}",
                    self.unclosed
                );
            }
        }
    }

    /// Connections spread over client threads, handshaken and waiting for [`Clients::start`].
    pub struct Clients {
        shared: Arc<Shared>,
        phase: watch::Sender<Phase>,
        threads: Vec<thread::JoinHandle<Report>>,
    }

    impl Clients {
        /// Opens `connections` WebSocket connections on `threads` threads; returns once all are open.
        pub fn connect(config: Arc<Config>, connections: usize, threads: usize) -> Result<Clients> {
            let shared = Arc::new(Shared {
                completed: AtomicU64::new(0),
                stop: AtomicBool::new(false),
            });
            let (phase, _) = watch::channel(Phase::Connected);
            let (ready_tx, ready_rx) = mpsc::channel();
            // From here on, dropping `clients` (on an error below) stops and joins the threads.
            let mut clients = Clients {
                shared,
                phase,
                threads: Vec::new(),
            };
            for t in 0..threads {
                let n = connections / threads + usize::from(t < connections % threads);
                if n == 0 {
                    continue;
                }
                let (config, shared, phase, ready) = (
                    config.clone(),
                    clients.shared.clone(),
                    clients.phase.subscribe(),
                    ready_tx.clone(),
                );
                let handle = thread::Builder::new()
                    .name(format!("echo-client-{t}"))
                    .spawn(move || client_thread(config, n, shared, phase, ready))
                    .context("spawning a client thread")?;
                clients.threads.push(handle);
            }
            drop(ready_tx);
            for _ in 0..clients.threads.len() {
                match ready_rx.recv_timeout(CONNECT_TIMEOUT * 2) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => bail!("{e}"),
                    Err(_) => bail!(
                        "client threads did not connect within {:?}",
                        CONNECT_TIMEOUT * 2
                    ),
                }
            }
            Ok(clients)
        }

        /// Starts the closed loop on every connection.
        pub fn start(&self) {
            self.phase.send_replace(Phase::Run);
        }

        /// Echoes completed so far, over all connections.
        pub fn completed(&self) -> u64 {
            self.shared.completed.load(Relaxed)
        }

        /// Stops sending, closes every connection (bounded by [`CLOSE_TIMEOUT`]) and joins the threads.
        pub fn stop(mut self) -> Report {
            self.shutdown()
        }

        fn shutdown(&mut self) -> Report {
            self.shared.stop.store(true, Relaxed);
            self.phase.send_replace(Phase::Stop);
            let mut report = Report::default();
            for handle in self.threads.drain(..) {
                match handle.join() {
                    Ok(r) => report.merge(r),
                    Err(_) => report.fail(anyhow::anyhow!("a client thread panicked")),
                }
            }
            report
        }
    }

    impl Drop for Clients {
        fn drop(&mut self) {
            self.shutdown();
        }
    }

    fn client_thread(
        config: Arc<Config>,
        connections: usize,
        shared: Arc<Shared>,
        mut phase: watch::Receiver<Phase>,
        ready: mpsc::Sender<Result<(), String>>,
    ) -> Report {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(format!("building a client runtime: {e}")));
                return Report::default();
            }
        };
        runtime.block_on(async move {
            let mut connecting = JoinSet::new();
            for _ in 0..connections {
                connecting.spawn(Conn::open(config.addr, ""));
            }
            let mut conns = Vec::with_capacity(connections);
            while let Some(joined) = connecting.join_next().await {
                match joined.map_err(anyhow::Error::from).and_then(|r| r) {
                    Ok(conn) => conns.push(conn),
                    Err(e) => {
                        let _ = ready.send(Err(format!("{e:#}")));
                        return Report::default();
                    }
                }
            }
            let _ = ready.send(Ok(()));

            // A dropped sender means the bench is shutting down.
            let go = phase
                .wait_for(|p| *p != Phase::Connected)
                .await
                .is_ok_and(|p| *p == Phase::Run);
            if !go {
                return Report::default();
            }
            let mut running = JoinSet::new();
            for conn in conns {
                running.spawn(echo_loop(conn, config.clone(), shared.clone()));
            }
            let _ = phase.wait_for(|p| *p == Phase::Stop).await;

            let mut report = Report::default();
            let deadline = tokio::time::sleep(CLOSE_TIMEOUT);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    joined = running.join_next() => match joined {
                        None => break,
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(e))) => report.fail(e),
                        Some(Err(e)) => report.fail(e.into()),
                    },
                    () = &mut deadline => {
                        report.unclosed = running.len();
                        running.abort_all();
                        break;
                    }
                }
            }
            report
        })
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

    fn describe_close(payload: &[u8]) -> String {
        match payload {
            [] => "no code".to_owned(),
            [hi, lo, reason @ ..] => {
                format!(
                    "code {} {:?}",
                    u16::from_be_bytes([*hi, *lo]),
                    String::from_utf8_lossy(reason)
                )
            }
            _ => "malformed close payload".to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The native peer

mod native {
    use std::net::SocketAddr;
    use std::time::Duration;

    use anyhow::{Context as _, Result};
    use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::error::ProtocolError;

    /// Runs a tokio-tungstenite echo server on a multi-thread runtime (one worker per core).
    pub fn serve(addr: &str) -> Result<()> {
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--serve-native: bad address {addr:?}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(stream));
                    }
                    Err(e) => {
                        eprintln!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
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
