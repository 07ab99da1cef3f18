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

use std::fs;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};

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
";

/// How long a server may take to start listening (the host compiles the component first).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on each TCP connect and each opening handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
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
}

/// The workspace root: the parent of this package's directory.
fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
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
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .with_context(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--connections" => o.connections = number(&flag, &value()?)?,
                "--inflight" => {
                    o.inflight = value()?
                        .split(',')
                        .map(|p| number(&flag, p.trim()))
                        .collect::<Result<_>>()?
                }
                "--size" => o.size = number(&flag, &value()?)?,
                "--text" => o.text = true,
                "--binary" => o.text = false,
                "--seconds" => o.seconds = number(&flag, &value()?)?,
                "--warmup" => o.warmup = number(&flag, &value()?)?,
                "--only" => {
                    o.only = Some(match value()?.as_str() {
                        "wsbox" => Kind::Wsbox,
                        "native" => Kind::Native,
                        other => bail!("--only takes `wsbox` or `native`, not {other:?}"),
                    })
                }
                "--host-bin" => o.host_bin = value()?.into(),
                "--guest" => o.guest = value()?.into(),
                "--client-threads" => o.client_threads = number(&flag, &value()?)?,
                "--native-as-wsbox" => o.native_as_wsbox = true,
                // `cargo bench` passes `--bench` to harness-less benches.
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                _ => bail!("unknown option {arg:?}\n\n{USAGE}"),
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
            None => vec![Kind::Wsbox, Kind::Native],
        }
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .with_context(|| format!("{flag}: not a valid number: {text:?}"))
}

// ---------------------------------------------------------------------------------------------
// The run

/// One measured window against one server.
struct Round {
    inflight: usize,
    messages: u64,
    seconds: f64,
    server_cpu_seconds: f64,
    client_cpu_seconds: f64,
}

impl Round {
    fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
    fn server_us_per_msg(&self) -> f64 {
        per_message_us(self.server_cpu_seconds, self.messages)
    }
    fn client_us_per_msg(&self) -> f64 {
        per_message_us(self.client_cpu_seconds, self.messages)
    }
}

fn per_message_us(cpu_seconds: f64, messages: u64) -> f64 {
    if messages == 0 {
        f64::NAN
    } else {
        cpu_seconds * 1e6 / messages as f64
    }
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
    label: &'static str,
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
        results.push(bench_server(kind, o, tck)?);
    }
    print_report(o, &results);
    Ok(())
}

fn require_file(path: &Path, what: &str, build: &str) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    bail!(
        "{what} is missing: {}\nbuild it first, from {}:\n    {build}",
        path.display(),
        workspace_root().display()
    )
}

fn bench_server(kind: Kind, o: &Options, tck: f64) -> Result<ServerResult> {
    let mut server = Server::start(kind, o)?;
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
        let start = Sample::take(&clients, pid)?;
        thread::sleep(Duration::from_secs_f64(o.seconds));
        let end = Sample::take(&clients, pid)?;
        let report = clients.stop();
        report.warn(server.label, inflight);
        server.ensure_running()?;

        rounds.push(Round {
            inflight,
            messages: end.completed - start.completed,
            seconds: (end.at - start.at).as_secs_f64(),
            server_cpu_seconds: (end.server_ticks - start.server_ticks) as f64 / tck,
            client_cpu_seconds: (end.client_ticks - start.client_ticks) as f64 / tck,
        });
        // Let the server retire the closed connections before the next round.
        thread::sleep(Duration::from_millis(200));
    }
    let memory = memory.context("no round was run")?;
    Ok(ServerResult {
        label: server.label,
        rounds,
        memory,
    })
}

/// Counters read together at the edges of the measured window.
struct Sample {
    at: Instant,
    completed: u64,
    server_ticks: u64,
    client_ticks: u64,
}

impl Sample {
    fn take(clients: &client::Clients, server_pid: u32) -> Result<Sample> {
        Ok(Sample {
            at: Instant::now(),
            completed: clients.completed(),
            server_ticks: cpu_ticks(server_pid)?,
            client_ticks: cpu_ticks(std::process::id())?,
        })
    }
}

fn print_report(o: &Options, results: &[ServerResult]) {
    println!();
    println!(
        "{:<14} {:>3} {:>12} {:>18} {:>13} {:>18}",
        "server", "P", "msgs/s", "server µs CPU/msg", "server cores", "client µs CPU/msg"
    );
    for r in results {
        for round in &r.rounds {
            println!(
                "{:<14} {:>3} {:>12.0} {:>18.2} {:>13.2} {:>18.2}",
                r.label,
                round.inflight,
                round.msgs_per_sec(),
                round.server_us_per_msg(),
                round.server_cpu_seconds / round.seconds,
                round.client_us_per_msg(),
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

    let [wsbox, native] = results else { return };
    println!();
    println!("{} / {}:", wsbox.label, native.label);
    println!("{:>3} {:>8} {:>15}", "P", "msgs/s", "server CPU/msg");
    for w in &wsbox.rounds {
        if let Some(n) = native.rounds.iter().find(|n| n.inflight == w.inflight) {
            println!(
                "{:>3} {:>7.2}x {:>14.2}x",
                w.inflight,
                w.msgs_per_sec() / n.msgs_per_sec(),
                w.server_us_per_msg() / n.server_us_per_msg()
            );
        }
    }
    println!(
        "idle memory per connection: {:.2}x",
        wsbox.memory.kib_per_connection() / native.memory.kib_per_connection()
    );
}

// ---------------------------------------------------------------------------------------------
// Server processes and /proc

/// A server child process; killed when dropped, so it never outlives the bench.
struct Server {
    label: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(kind: Kind, o: &Options) -> Result<Server> {
        let addr = free_port()?;
        let (label, mut cmd) = match kind {
            Kind::Wsbox if o.native_as_wsbox => ("wsbox=native", native_command(addr)?),
            Kind::Wsbox => {
                let mut cmd = Command::new(&o.host_bin);
                cmd.arg("serve")
                    .arg(&o.guest)
                    .arg("--listen")
                    .arg(addr.to_string());
                ("wsbox", cmd)
            }
            Kind::Native => ("native", native_command(addr)?),
        };
        let log = std::env::temp_dir().join(format!("wsbox-bench-echo-{label}.log"));
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        // SAFETY: the closure only makes one async-signal-safe system call.
        unsafe {
            cmd.pre_exec(|| {
                // Die with the bench even if it is killed without unwinding.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting the {label} server: {cmd:?}"))?;
        let mut server = Server {
            label,
            child,
            addr,
            log,
        };
        eprintln!(
            "{label}: started (pid {}), listening on {addr}, log in {}",
            server.pid(),
            server.log.display()
        );
        server.wait_listening()?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            self.ensure_running()?;
            if StdTcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the {} server did not listen on {} within {STARTUP_TIMEOUT:?}{}",
                self.label,
                self.addr,
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "the {} server exited: {status}{}",
                self.label,
                self.log_tail()
            ),
        }
    }

    /// The last lines of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n    ");
        format!("\nlast lines of {}:\n    {tail}", self.log.display())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn native_command(addr: SocketAddr) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--serve-native").arg(addr.to_string());
    Ok(cmd)
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> Result<SocketAddr> {
    let listener = StdTcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tck > 0 { tck as f64 } else { 100.0 }
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Field 2, the command name, is parenthesised and may hold spaces: split after its last ')'.
    // What remains starts at field 3; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let mut next = || -> Result<u64> { Ok(fields.next().context("short stat")?.parse()?) };
    Ok(next()? + next()?)
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib = line.split_whitespace().nth(1).context("malformed VmRSS")?;
    Ok(kib.parse()?)
}

// ---------------------------------------------------------------------------------------------
// The load client

mod client {
    use std::ops::Range;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, mpsc};
    use std::thread;

    use anyhow::{Context as _, Result, bail, ensure};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use tokio::sync::watch;
    use tokio::task::JoinSet;
    use tokio::time::timeout;

    use super::{CLOSE_TIMEOUT, CONNECT_TIMEOUT};

    const OP_TEXT: u8 = 0x1;
    const OP_BINARY: u8 = 0x2;
    const OP_CLOSE: u8 = 0x8;
    const OP_PING: u8 = 0x9;
    const OP_PONG: u8 = 0xA;
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    /// The RFC 6455 §1.3 example key and the accept value it must produce.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    const INITIAL_BUFFER: usize = 16 * 1024;
    const MAX_RESPONSE_HEAD: usize = 16 * 1024;

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
            let frame = client_frame(opcode, &payload);
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
                connecting.spawn(Conn::open(config.addr));
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
        conn.stream
            .write_all(&config.frames)
            .await
            .context("sending")?;
        while !shared.stop.load(Relaxed) {
            conn.fill().await?;
            let mut echoed = 0;
            while let Some(frame) = conn.next_frame(max_payload)? {
                let payload = &conn.buf[frame.payload.clone()];
                match frame.opcode() {
                    op if op == config.opcode => {
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
                    OP_PING => control.extend(client_frame(OP_PONG, payload)),
                    OP_PONG => {}
                    OP_CLOSE => bail!(
                        "the server closed the connection: {}",
                        describe_close(payload)
                    ),
                    op => bail!("unexpected frame, opcode {op:#x}"),
                }
            }
            ensure!(echoed <= config.inflight, "more echoes than messages sent");
            if echoed == 0 && control.is_empty() {
                continue;
            }
            shared.completed.fetch_add(echoed as u64, Relaxed);
            if !control.is_empty() {
                conn.stream
                    .write_all(&control)
                    .await
                    .context("sending a pong")?;
                control.clear();
            }
            if !shared.stop.load(Relaxed) {
                conn.stream
                    .write_all(&config.frames[..echoed * config.frame_len])
                    .await
                    .context("sending")?;
            }
        }
        conn.close(max_payload).await.context("closing")
    }

    /// A frame header parsed from the read buffer; `payload` indexes [`Conn::buf`].
    struct Frame {
        head: u8,
        payload: Range<usize>,
    }

    impl Frame {
        fn fin(&self) -> bool {
            self.head & 0x80 != 0
        }
        fn opcode(&self) -> u8 {
            self.head & 0x0f
        }
    }

    /// A client WebSocket connection: the socket and its read buffer (`buf[start..end]` is unparsed).
    struct Conn {
        stream: TcpStream,
        buf: Vec<u8>,
        start: usize,
        end: usize,
    }

    impl Conn {
        /// Connects and completes the opening handshake, both bounded by [`CONNECT_TIMEOUT`].
        async fn open(addr: std::net::SocketAddr) -> Result<Conn> {
            let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .context("connect timed out")?
                .with_context(|| format!("connecting to {addr}"))?;
            stream.set_nodelay(true)?;
            let mut conn = Conn {
                stream,
                buf: vec![0; INITIAL_BUFFER],
                start: 0,
                end: 0,
            };
            timeout(CONNECT_TIMEOUT, conn.handshake(addr))
                .await
                .context("opening handshake timed out")??;
            Ok(conn)
        }

        async fn handshake(&mut self, addr: std::net::SocketAddr) -> Result<()> {
            let request = format!(
                "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            self.stream
                .write_all(request.as_bytes())
                .await
                .context("sending the opening handshake")?;
            let head_len = loop {
                if let Some(i) = self.buf[..self.end]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                {
                    break i + 4;
                }
                ensure!(
                    self.end < MAX_RESPONSE_HEAD,
                    "handshake response head over {MAX_RESPONSE_HEAD} bytes"
                );
                self.fill()
                    .await
                    .context("reading the handshake response")?;
            };
            let head = String::from_utf8_lossy(&self.buf[..head_len]);
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap_or_default();
            ensure!(
                status.split_whitespace().nth(1) == Some("101"),
                "handshake refused: {status:?}"
            );
            let accept = lines
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
                .map(|(_, value)| value.trim());
            ensure!(
                accept == Some(ACCEPT),
                "wrong Sec-WebSocket-Accept: {accept:?}"
            );
            self.start = head_len;
            Ok(())
        }

        /// Reads once more from the socket into the buffer, making room first if it is full.
        async fn fill(&mut self) -> Result<()> {
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            }
            if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    (self.start, self.end) = (0, self.end - self.start);
                } else {
                    self.buf.resize(self.buf.len() * 2, 0);
                }
            }
            let n = self
                .stream
                .read(&mut self.buf[self.end..])
                .await
                .context("reading")?;
            ensure!(n > 0, "the server closed the TCP connection");
            self.end += n;
            Ok(())
        }

        /// Takes the next complete frame out of the buffer, if there is one.
        fn next_frame(&mut self, max_payload: usize) -> Result<Option<Frame>> {
            let b = &self.buf[self.start..self.end];
            if b.len() < 2 {
                return Ok(None);
            }
            ensure!(b[0] & 0x70 == 0, "server frame with RSV bits set");
            ensure!(b[1] & 0x80 == 0, "masked server frame");
            let (header_len, payload_len) = match b[1] & 0x7f {
                126 if b.len() < 4 => return Ok(None),
                126 => (4, u64::from(u16::from_be_bytes([b[2], b[3]]))),
                127 if b.len() < 10 => return Ok(None),
                127 => (
                    10,
                    u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")),
                ),
                n => (2, u64::from(n)),
            };
            ensure!(
                payload_len <= max_payload as u64,
                "server frame of {payload_len} bytes, larger than any expected ({max_payload})"
            );
            let total = header_len + payload_len as usize;
            if b.len() < total {
                return Ok(None);
            }
            let frame = Frame {
                head: b[0],
                payload: self.start + header_len..self.start + total,
            };
            self.start += total;
            Ok(Some(frame))
        }

        /// The closing handshake: send close 1000, skip any echoes still in flight, await the reply.
        async fn close(&mut self, max_payload: usize) -> Result<()> {
            self.stream
                .write_all(&client_frame(OP_CLOSE, &1000u16.to_be_bytes()))
                .await?;
            loop {
                while let Some(frame) = self.next_frame(max_payload)? {
                    if frame.opcode() == OP_CLOSE {
                        return Ok(());
                    }
                }
                self.fill()
                    .await
                    .context("awaiting the server's close frame")?;
            }
        }
    }

    /// A complete, masked client frame.
    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&MASK);
        frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
        frame
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
