//! Issue #13's rows in one run: wsbox (one or more guests) against fastwebsockets and
//! tokio-tungstenite on every row, as absolute figures and as ratios to fastwebsockets, the closest
//! native peer on these rows (DESIGN.md §5).
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p echo
//! cargo bench -p host --bench rows -- [options]      # see USAGE below
//! ```
//!
//! | row       | load                                     | figure                            |
//! |-----------|------------------------------------------|-----------------------------------|
//! | `p1`      | 100 connections × 32 B, 1 in flight      | server µs CPU per message         |
//! | `p16`     | 100 connections × 32 B, 16 in flight     | server µs CPU per message         |
//! | `64k`     | 10 connections × 64 KiB, 1 in flight     | server µs CPU per message         |
//! | `connect` | K openers: open, one echo, close         | server µs CPU per connection      |
//! | `idle`    | N silent connections                     | server KiB of RSS per connection  |
//!
//! Method:
//! - Every server is its own process on 127.0.0.1, all started at the beginning: the wsbox host
//!   once per guest, and this binary re-executed as each native peer (`support/peers.rs`, both on
//!   a multi-thread tokio runtime, one worker per core). They are killed when the bench ends.
//! - `idle` runs first, on the fresh processes: VmRSS with N handshaken, silent connections open
//!   (after a settle time), minus VmRSS before they connected, divided by N.
//! - Then row by row, each on every server in turn (so a drift of the shared machine shows in a
//!   row, not between servers): the echo rows are the closed loop of `support/echo_client.rs`
//!   (uWebSockets' `load_test` method, as the `echo` bench); after a warm-up, the completed echoes
//!   are counted over a fixed window together with the server's CPU time (utime + stime from
//!   `/proc/<pid>/stat`). The second table also gives the kernel's part (stime) per unit: no
//!   change in the server's own code goes below it.
//! - `connect`: K tasks each loop over: TCP connect, opening handshake, one 32-byte message, its
//!   echo, the closing handshake, and the server's TCP close (so the server keeps the TIME_WAIT
//!   sockets and the client does not run out of ports). Server CPU over the window divided by the
//!   cycles completed in it.
//! - The client is the bench's own process, thin (raw sockets, current-thread runtimes, no
//!   allocation on the message path); its CPU per unit is printed too, since on a small machine it
//!   competes with the server.
//!
//! `--uws-bin PATH` adds uWebSockets, the native server issue #13's goals were set against: PATH
//! is the one-thread echo server `peers/uwebsockets/echo.cpp`, which
//! `peers/uwebsockets/build.sh` builds with g++ from a uWebSockets checkout (cloned at a pinned
//! commit unless one is given). It is measured like the others; `--reference uWebSockets` makes
//! the ratios relative to it.
//!
//! `--compile-time` also times `host check GUEST` twice per guest with a fresh, empty compile
//! cache (`XDG_CACHE_HOME` pointed at a new directory, which `host check` caches in): uncached,
//! then cached. Both include the host's start-up; wall time and CPU time (the child's utime +
//! stime) are printed.

mod support;

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use support::peers::Peer;
use support::{
    ClientThreads, Common, Conn, Kind, Log, OP_BINARY, Phase, Report, Server, Window, bench_main,
    client_frame, echo_client, free_port, measure_window, native_command, peer_command,
    raise_open_files_limit, require_file, rss_kib, serve_command, split_evenly, user_path,
};
use tokio::sync::watch;

const USAGE: &str = "\
usage: cargo bench -p host --bench rows -- [options]

  --guest [NAME=]PATH   a wsbox guest to measure (repeatable; NAME defaults to
                        the file's stem)     [echo=<target>/wasm32-wasip2/guest/echo.wasm]
  --peer NAME           a native peer to measure (repeatable): fastwebsockets,
                        tokio-tungstenite    [both]
  --uws-bin PATH        also measure uWebSockets: PATH is the echo server that
                        host/benches/peers/uwebsockets/build.sh builds
  --reference NAME      the server the ratios are to         [fastwebsockets]
  --only KIND           only the `wsbox` servers or only the `native` peers
  --rows LIST           rows to run, of p1,p16,64k,connect,idle      [all]
  --connections N       connections of the p1 and p16 rows           [100]
  --size BYTES          message size of the p1, p16 and connect rows [32]
  --large-connections N connections of the 64k row                   [10]
  --large-size BYTES    message size of the 64k row                  [65536]
  --openers K           concurrent openers of the connect row        [10]
  --idle-connections N  connections of the idle row                  [1000]
  --text                send text messages (default: binary)
  --seconds SECS        measured window per row and server           [5]
  --warmup SECS         warm-up before each window                   [1]
  --client-threads N    client threads, each a current-thread runtime [1]
  --host-bin PATH       wsbox host binary     [<target>/release/host]
  --host-arg ARG        one more argument to `host serve` (repeatable)
  --compile-time        also time `host check GUEST` uncached and cached, per guest
  --native-as-wsbox     validation: run fastwebsockets in the wsbox slots too
                        (the ratios of those slots should then come out near 1.00)

<target> is $CARGO_TARGET_DIR, else <workspace>/target.
";

fn main() -> ExitCode {
    bench_main(USAGE, serve_in_wsbox_slot, Options::parse, run)
}

/// The server `--native-as-wsbox` puts in the wsbox slots: fastwebsockets, the reference.
fn serve_in_wsbox_slot(addr: &str) -> Result<()> {
    Peer::FastWebSockets.serve(addr)
}

// ---------------------------------------------------------------------------------------------
// Options

/// A row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    P1,
    P16,
    Large,
    Connect,
    Idle,
}

impl Row {
    /// In the order they are printed.
    const ALL: [Row; 5] = [Row::P1, Row::P16, Row::Large, Row::Connect, Row::Idle];

    fn name(self) -> &'static str {
        match self {
            Row::P1 => "p1",
            Row::P16 => "p16",
            Row::Large => "64k",
            Row::Connect => "connect",
            Row::Idle => "idle",
        }
    }

    fn parse(name: &str) -> Result<Row> {
        match Row::ALL.into_iter().find(|r| r.name() == name) {
            Some(row) => Ok(row),
            None => bail!("--rows: no row {name:?} (there are p1, p16, 64k, connect, idle)"),
        }
    }

    /// What the row's figure is.
    fn unit(self) -> &'static str {
        match self {
            Row::P1 | Row::P16 | Row::Large => "server µs CPU/msg",
            Row::Connect => "server µs CPU/conn",
            Row::Idle => "KiB RSS/conn",
        }
    }

    /// What the row's rate counts.
    fn rate_unit(self) -> &'static str {
        match self {
            Row::Connect => "conns/s",
            _ => "msgs/s",
        }
    }

    fn describe(self, o: &Options) -> String {
        match self {
            Row::P1 | Row::P16 | Row::Large => {
                let load = self.echo_load(o).expect("an echo row");
                format!(
                    "{} conns × {}, {} in flight",
                    load.connections,
                    bytes(load.size),
                    load.inflight
                )
            }
            Row::Connect => format!(
                "open, one {} echo, close; {} openers",
                bytes(o.counts.size),
                o.counts.openers
            ),
            Row::Idle => format!("{} idle conns", o.counts.idle_connections),
        }
    }

    /// The closed loop of an echo row.
    fn echo_load(self, o: &Options) -> Option<EchoLoad> {
        let (connections, size, inflight) = match self {
            Row::P1 => (o.counts.connections, o.counts.size, 1),
            Row::P16 => (o.counts.connections, o.counts.size, 16),
            Row::Large => (o.counts.large_connections, o.counts.large_size, 1),
            Row::Connect | Row::Idle => return None,
        };
        Some(EchoLoad {
            connections,
            size,
            inflight,
        })
    }
}

struct EchoLoad {
    connections: usize,
    size: usize,
    inflight: usize,
}

/// `n` bytes as people write message sizes: `32 B`, `64 KiB`.
fn bytes(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

#[derive(Debug)]
struct Options {
    common: Common,
    /// wsbox guests: name and component.
    guests: Vec<(String, PathBuf)>,
    peers: Vec<Peer>,
    /// uWebSockets' echo server (`peers/uwebsockets/build.sh`), if it is to be measured.
    uws_bin: Option<PathBuf>,
    /// The label of the server the ratios are to.
    reference: String,
    rows: Vec<Row>,
    counts: Counts,
    compile_time: bool,
}

impl Options {
    /// The command line's options, or `None` if it asks for help.
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let mut o = Options {
            common: Common::new("echo"),
            guests: Vec::new(),
            peers: Vec::new(),
            uws_bin: None,
            reference: Peer::FastWebSockets.name().to_owned(),
            rows: Row::ALL.to_vec(),
            counts: Counts {
                connections: 100,
                size: 32,
                large_connections: 10,
                large_size: 64 * 1024,
                openers: 10,
                idle_connections: 1000,
            },
            compile_time: false,
        };
        let go_on = o.common.parse(args, USAGE, |flag| {
            match flag.name.as_str() {
                "--guest" => o.guests.push(guest_arg(&flag.value()?)?),
                "--peer" => o.peers.push(Peer::parse(&flag.value()?)?),
                "--uws-bin" => o.uws_bin = Some(user_path(&flag.value()?)),
                "--reference" => o.reference = flag.value()?,
                "--rows" => {
                    o.rows = flag
                        .value()?
                        .split(',')
                        .map(|r| Row::parse(r.trim()))
                        .collect::<Result<_>>()?
                }
                "--compile-time" => o.compile_time = true,
                name => match o.counts.get(name) {
                    Some(count) => *count = flag.number()?,
                    None => return Ok(false),
                },
            }
            Ok(true)
        })?;
        if !go_on {
            return Ok(None);
        }
        for (i, (name, _)) in o.guests.iter().enumerate() {
            ensure!(
                o.guests[..i].iter().all(|(other, _)| other != name),
                "two guests named {name:?}: name them (--guest NAME=PATH)"
            );
        }
        if o.guests.is_empty() {
            o.guests.push(("echo".to_owned(), o.common.guest.clone()));
        }
        if o.peers.is_empty() {
            o.peers = Peer::ALL.to_vec();
        }
        match o.common.only {
            Some(Kind::Wsbox) => {
                o.peers.clear();
                o.uws_bin = None;
            }
            Some(Kind::Native) => o.guests.clear(),
            None => {}
        }
        if !o.peers.is_empty() || o.uws_bin.is_some() {
            let mut measured =
                (o.peers.iter().map(|p| p.name())).chain(o.uws_bin.as_ref().map(|_| UWEBSOCKETS));
            ensure!(
                measured.any(|name| name == o.reference),
                "--reference {:?}: not a peer measured in this run",
                o.reference
            );
        }
        for name in Counts::FLAGS {
            let count = *o.counts.get(name).expect("a count flag");
            ensure!(count > 0, "{name} must be at least 1");
        }
        Ok(Some(o))
    }
}

/// The loads' sizes (see USAGE).
#[derive(Debug)]
struct Counts {
    connections: usize,
    size: usize,
    large_connections: usize,
    large_size: usize,
    openers: usize,
    idle_connections: usize,
}

impl Counts {
    /// The flags that set a count or a size.
    const FLAGS: [&str; 6] = [
        "--connections",
        "--size",
        "--large-connections",
        "--large-size",
        "--openers",
        "--idle-connections",
    ];

    /// The count or size that flag `name` sets, if it is one of [`Counts::FLAGS`].
    fn get(&mut self, name: &str) -> Option<&mut usize> {
        Some(match name {
            "--connections" => &mut self.connections,
            "--size" => &mut self.size,
            "--large-connections" => &mut self.large_connections,
            "--large-size" => &mut self.large_size,
            "--openers" => &mut self.openers,
            "--idle-connections" => &mut self.idle_connections,
            _ => return None,
        })
    }
}

/// A `--guest` value: `NAME=PATH`, or `PATH` named by its file stem.
fn guest_arg(value: &str) -> Result<(String, PathBuf)> {
    if let Some((name, path)) = value.split_once('=')
        && !name.contains('/')
    {
        ensure!(!name.is_empty(), "--guest {value:?}: empty name");
        return Ok((name.to_owned(), user_path(path)));
    }
    let path = user_path(value);
    let name = path
        .file_stem()
        .with_context(|| format!("--guest {value:?}: no file name"))?
        .to_string_lossy()
        .into_owned();
    Ok((name, path))
}

// ---------------------------------------------------------------------------------------------
// The run

/// Time for a server's memory to settle once all idle connections are open.
const SETTLE: Duration = Duration::from_secs(1);
/// Connections opened and closed before the idle row's measurement.
const PRIMER: usize = 16;
/// Time for a server to retire the connections of one row before the next.
const RETIRE: Duration = Duration::from_millis(300);

/// What a server is.
#[derive(Clone, Debug)]
enum Target {
    /// The wsbox host with this guest (name, component).
    Wsbox(String, PathBuf),
    Peer(Peer),
    /// uWebSockets' echo server, this binary (`peers/uwebsockets/echo.cpp`).
    UWebSockets(PathBuf),
}

/// The label of uWebSockets' column.
const UWEBSOCKETS: &str = "uWebSockets";

/// A server's figure on one row.
struct Figure {
    /// The row's figure (see [`Row::unit`]).
    value: f64,
    /// Messages or connections per second, if the row has a rate.
    rate: Option<f64>,
    /// Cores the server used over the window.
    cores: Option<f64>,
    /// Of the figure, the server's CPU in the kernel, µs per unit.
    system_us: Option<f64>,
    /// The server's page faults per unit.
    faults: Option<f64>,
    /// The bench's own CPU per unit, µs.
    client_us: Option<f64>,
}

impl Figure {
    fn of_window(w: &Window) -> Figure {
        Figure {
            value: w.server_us_per_msg(),
            rate: Some(w.msgs_per_sec()),
            cores: Some(w.server_cpu_seconds / w.seconds),
            system_us: Some(w.server_system_us_per_msg()),
            faults: Some(w.server_faults_per_msg()),
            client_us: Some(w.client_us_per_msg()),
        }
    }
}

struct Measured {
    label: String,
    /// By row, in the order of `Options::rows`.
    figures: Vec<Option<Figure>>,
}

fn run(o: &Options) -> Result<()> {
    let c = &o.common;
    let limit = raise_open_files_limit()?;
    ensure!(
        limit as usize > o.counts.idle_connections + 100,
        "the open-file limit ({limit}) is too low for {} idle connections",
        o.counts.idle_connections
    );
    if !o.guests.is_empty() && !c.native_as_wsbox {
        require_file(
            &c.host_bin,
            "the wsbox host",
            "cargo build --release -p host",
        )?;
        for (name, path) in &o.guests {
            require_file(
                path,
                &format!("the guest {name}"),
                "cargo build --profile guest --target wasm32-wasip2 -p echo",
            )?;
        }
    }
    if let Some(path) = &o.uws_bin {
        require_file(
            path,
            "uWebSockets' echo server",
            "host/benches/peers/uwebsockets/build.sh",
        )?;
    }
    if o.compile_time {
        compile_times(o)?;
    }

    let targets: Vec<Target> = o
        .guests
        .iter()
        .map(|(name, path)| Target::Wsbox(name.clone(), path.clone()))
        .chain(o.peers.iter().map(|&p| Target::Peer(p)))
        .chain(
            o.uws_bin
                .iter()
                .map(|path| Target::UWebSockets(path.clone())),
        )
        .collect();
    ensure!(!targets.is_empty(), "nothing to measure");
    println!(
        "rows: {} s windows after {} s warm-up, {} messages, {} client thread(s)",
        c.seconds,
        c.warmup,
        if c.text { "text" } else { "binary" },
        c.client_threads,
    );
    let mut servers = Vec::new();
    for target in &targets {
        servers.push(start(o, target)?);
    }

    let mut measured: Vec<Measured> = servers
        .iter()
        .map(|s| Measured {
            label: s.label.clone(),
            figures: o.rows.iter().map(|_| None).collect(),
        })
        .collect();
    // `idle` first, on the fresh processes; then the rest in the order given.
    let mut order: Vec<(usize, Row)> = o.rows.iter().copied().enumerate().collect();
    order.sort_by_key(|&(_, row)| row != Row::Idle);
    for (r, row) in order {
        for (server, m) in servers.iter_mut().zip(&mut measured) {
            eprintln!("{}: {}: {}", server.label, row.name(), row.describe(o));
            let figure = measure(o, row, server)
                .with_context(|| format!("{} on the {} server", row.name(), server.label))?;
            server.ensure_running()?;
            m.figures[r] = Some(figure);
            thread::sleep(RETIRE);
        }
    }
    print_tables(o, &measured);
    Ok(())
}

/// Starts the server of `target` on a free port; its log is kept in the temporary directory.
fn start(o: &Options, target: &Target) -> Result<Server> {
    let c = &o.common;
    let addr = free_port()?;
    let (label, cmd) = match target {
        Target::Wsbox(name, path) => {
            let label = if o.guests.len() == 1 && name == "echo" {
                "wsbox".to_owned()
            } else {
                format!("wsbox:{name}")
            };
            if c.native_as_wsbox {
                (format!("{label}=native"), native_command(addr)?)
            } else {
                let mut cmd = serve_command(&c.host_bin, path, addr);
                cmd.args([
                    "--max-connections",
                    &(o.counts.idle_connections + 64).to_string(),
                ])
                .args(&c.host_args);
                (label, cmd)
            }
        }
        Target::Peer(peer) => (peer.name().to_owned(), peer_command(*peer, addr)?),
        Target::UWebSockets(path) => {
            // It listens on 127.0.0.1 and takes only the port.
            let mut cmd = Command::new(path);
            cmd.arg(addr.port().to_string());
            (UWEBSOCKETS.to_owned(), cmd)
        }
    };
    let log = std::env::temp_dir().join(format!("wsbox-bench-rows-{label}.log"));
    Server::start(&label, cmd, addr, log, Log::Keep)
}

fn measure(o: &Options, row: Row, server: &mut Server) -> Result<Figure> {
    let c = &o.common;
    let pid = server.pid();
    if let Some(load) = row.echo_load(o) {
        let config = echo_client::Config::new(server.addr, load.size, c.text, load.inflight);
        let clients = echo_client::Clients::connect(config, load.connections, c.client_threads)?;
        clients.start();
        let window = measure_window(|| clients.completed(), pid, c.warmup, c.seconds)?;
        let report = clients.stop();
        report.warn(&format!("{} {}", server.label, row.name()));
        return Ok(Figure::of_window(&window));
    }
    match row {
        Row::Connect => {
            let (window, report) = connect::run(server.addr, pid, o)?;
            report.warn(&format!("{} connect", server.label));
            ensure!(window.messages > 0, "no connection completed in the window");
            Ok(Figure::of_window(&window))
        }
        Row::Idle => idle(server, o),
        Row::P1 | Row::P16 | Row::Large => unreachable!("echo rows are measured above"),
    }
}

/// KiB of server RSS per idle connection.
fn idle(server: &Server, o: &Options) -> Result<Figure> {
    let pid = server.pid();
    // A few connections first, so what a server sets up once (allocator arenas of its worker
    // threads, the guest's memory image) is not counted per connection.
    let (report, _) = open_idle(server, PRIMER, o.common.client_threads)?.stop();
    report.warn(&format!("{} idle, the first connections", server.label));
    thread::sleep(SETTLE);
    let before = rss_kib(pid)?;
    let mut clients = open_idle(server, o.counts.idle_connections, o.common.client_threads)?;
    thread::sleep(SETTLE);
    let after = rss_kib(pid)?;
    let (report, _) = clients.stop();
    report.warn(&format!("{} idle", server.label));
    Ok(Figure {
        value: (after as f64 - before as f64) / o.counts.idle_connections as f64,
        rate: None,
        cores: None,
        system_us: None,
        faults: None,
        client_us: None,
    })
}

/// `n` open, silent connections to `server`; each closes (closing handshake) when the threads
/// are stopped.
fn open_idle(server: &Server, n: usize, threads: usize) -> Result<ClientThreads<()>> {
    let tasks = split_evenly(n, threads)
        .map(|n| {
            let task = |_, mut conn: Conn, mut phase: watch::Receiver<Phase>| async move {
                let _ = phase.wait_for(|p| *p == Phase::Stop).await;
                conn.close(125).await?;
                conn.closed().await
            };
            (n, task)
        })
        .collect();
    let clients = ClientThreads::spawn("idle-client", server.addr, "/", tasks)?;
    clients.start();
    Ok(clients)
}

// ---------------------------------------------------------------------------------------------
// Report

fn print_tables(o: &Options, measured: &[Measured]) {
    // Parsing made sure the reference is measured whenever a peer is.
    let reference = measured.iter().position(|m| m.label == o.reference);
    println!();
    match reference {
        Some(i) => println!(
            "Figures, and in brackets each as a ratio to {} (lower is better):",
            measured[i].label
        ),
        None => println!("Figures (lower is better):"),
    }
    println!();
    let mut head = "| row | unit |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for m in measured {
        head.push_str(&format!(" {} |", m.label));
        rule.push_str("---|");
    }
    println!("{head}\n{rule}");
    for (r, row) in o.rows.iter().enumerate() {
        let mut line = format!("| {} | {} |", row.describe(o), row.unit());
        let base = reference.and_then(|i| measured[i].figures[r].as_ref());
        for m in measured {
            match (&m.figures[r], base) {
                (Some(f), Some(b)) => {
                    line.push_str(&format!(" {:.2} ({:.2}×) |", f.value, f.value / b.value))
                }
                (Some(f), None) => line.push_str(&format!(" {:.2} |", f.value)),
                (None, _) => line.push_str(" - |"),
            }
        }
        println!("{line}");
    }

    println!();
    println!(
        "Rates, server cores, how much of the server's CPU per unit was the kernel's, the \
         server's page faults per unit, and the client's own CPU per unit:"
    );
    println!();
    println!(
        "| row | server | rate | server cores | server µs in the kernel/unit | server page \
         faults/unit | client µs CPU/unit |\n\
         |---|---|---|---|---|---|---|"
    );
    for (r, row) in o.rows.iter().enumerate() {
        for m in measured {
            if let Some(Figure {
                rate: Some(rate),
                cores: Some(cores),
                system_us: Some(system_us),
                faults: Some(faults),
                client_us: Some(client_us),
                ..
            }) = &m.figures[r]
            {
                println!(
                    "| {} | {} | {rate:.0} {} | {cores:.2} | {system_us:.2} | {faults:.2} | \
                     {client_us:.2} |",
                    row.name(),
                    m.label,
                    row.rate_unit()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compile time

/// Times `host check GUEST` twice per guest against a fresh compile cache.
fn compile_times(o: &Options) -> Result<()> {
    println!();
    println!("`host check GUEST`, fresh compile cache (wall s, CPU s):");
    println!();
    println!("| guest | size | uncached wall | uncached CPU | cached wall | cached CPU |");
    println!("|---|---|---|---|---|---|");
    for (name, path) in &o.guests {
        let cache = std::env::temp_dir().join(format!(
            "wsbox-bench-rows-cache-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        let check = || -> Result<(f64, f64)> {
            let mut cmd = Command::new(&o.common.host_bin);
            cmd.arg("check")
                .arg(path)
                .env("XDG_CACHE_HOME", &cache)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let cpu_before = children_cpu_seconds();
            let at = Instant::now();
            let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
            let wall = at.elapsed().as_secs_f64();
            ensure!(
                out.status.success(),
                "`host check {}` failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok((wall, children_cpu_seconds() - cpu_before))
        };
        let uncached = check();
        let cached = uncached.as_ref().ok().map(|_| check());
        let _ = std::fs::remove_dir_all(&cache);
        let (uncached, cached) = (uncached?, cached.expect("checked once")?);
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!(
            "| {name} | {:.1} MB | {:.2} | {:.2} | {:.2} | {:.2} |",
            size as f64 / 1e6,
            uncached.0,
            uncached.1,
            cached.0,
            cached.1
        );
    }
    Ok(())
}

/// User + system CPU time of this process's waited-for children, seconds.
fn children_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes to it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to write to.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return f64::NAN;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

// ---------------------------------------------------------------------------------------------
// The connect row's client

mod connect {
    use super::*;

    use std::net::SocketAddr;

    struct Shared {
        completed: AtomicU64,
        stop: AtomicBool,
    }

    /// Runs `o.counts.openers` open-echo-close loops against `addr` on the client threads, and measures
    /// a window of completed cycles against server `pid`.
    pub fn run(addr: SocketAddr, pid: u32, o: &Options) -> Result<(Window, Report)> {
        let shared = Arc::new(Shared {
            completed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let payload: Arc<[u8]> = (0..o.counts.size).map(|i| b'a' + (i % 26) as u8).collect();
        let frame: Arc<[u8]> = client_frame(0, OP_BINARY, &payload).into();
        let threads: Vec<_> = split_evenly(o.counts.openers, o.common.client_threads)
            .filter(|&n| n > 0)
            .enumerate()
            .map(|(t, openers)| {
                let (shared, payload, frame) = (shared.clone(), payload.clone(), frame.clone());
                thread::Builder::new()
                    .name(format!("connect-client-{t}"))
                    .spawn(move || openers_thread(addr, openers, &shared, payload, frame))
            })
            .collect::<std::io::Result<_>>()
            .context("spawning a client thread")?;
        let window = measure_window(
            || shared.completed.load(Relaxed),
            pid,
            o.common.warmup,
            o.common.seconds,
        );
        shared.stop.store(true, Relaxed);
        let mut report = Report::default();
        for handle in threads {
            match handle.join() {
                Ok(r) => report.merge(r),
                Err(_) => report.fail(anyhow::anyhow!("a client thread panicked")),
            }
        }
        Ok((window?, report))
    }

    /// `openers` loops on a current-thread runtime until told to stop; each loop ends at its
    /// first failure, which the report counts.
    fn openers_thread(
        addr: SocketAddr,
        openers: usize,
        shared: &Arc<Shared>,
        payload: Arc<[u8]>,
        frame: Arc<[u8]>,
    ) -> Report {
        let mut report = Report::default();
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                report.fail(e.into());
                return report;
            }
        };
        runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..openers {
                let (shared, payload, frame) = (shared.clone(), payload.clone(), frame.clone());
                tasks.spawn(async move {
                    while !shared.stop.load(Relaxed) {
                        cycle(addr, &payload, &frame).await?;
                        shared.completed.fetch_add(1, Relaxed);
                    }
                    Ok::<_, anyhow::Error>(())
                });
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => report.fail(e),
                    Err(e) => report.fail(e.into()),
                }
            }
        });
        report
    }

    /// One connection: open, one echo, the closing handshake, the server's TCP close.
    async fn cycle(addr: SocketAddr, payload: &[u8], frame: &[u8]) -> Result<()> {
        let max_payload = payload.len().max(125);
        let mut conn = Conn::open(addr, "").await?;
        conn.send(frame).await.context("sending")?;
        let echo = conn
            .read_frame(max_payload)
            .await
            .context("awaiting the echo")?;
        ensure!(
            echo.opcode() == OP_BINARY && echo.fin() && conn.payload(&echo) == payload,
            "the echo differs from the message sent"
        );
        conn.close(max_payload).await.context("closing")?;
        conn.closed().await
    }
}
