//! Soak: does the host give back what a wave of connections took? N idle connections are opened,
//! then all closed, wave after wave for a duration, against one `host serve` process; the host's
//! resident memory, open file descriptors, memory mappings and (through `--metrics-listen`) its
//! live gauges are printed at the start, after each wave's opens and after each wave's closes.
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p echo
//! cargo bench -p host --bench soak -- [options]      # see USAGE below
//! ```
//!
//! Verdict: PASS if after every wave's closes the host's VmRSS is within 10 % of its VmRSS at the
//! start and its open file descriptors are back to their count at the start; else FAIL, and the
//! bench exits with status 1. The start is the host after one connection opened and closed, so
//! that what it creates once, on its first connection (the guest's memory image, a memfd), counts
//! as the start.
//!
//! Method: the host runs with `--max-connections N+64`, pings and the idle timeout off. The client
//! is this process on one current-thread tokio runtime, opening and closing at most
//! `--concurrency` connections at a time (each a TCP connect and an opening handshake; each close
//! a closing handshake, then awaiting the server's TCP close). Once the opens are done it waits
//! `--settle`; after the closes it waits until the host's descriptors are back to the start count
//! (at most 10 s), then `--settle`. Every live guest instance costs the host a few memory mappings
//! (4 measured, up to 6: `MAPS_PER_INSTANCE` in the host), so N connections need
//! `vm.max_map_count` above the host's own mappings plus 4-6·N (10,000 connections: about 60,000
//! in all, near the kernel's default 65,530): the bench warns before it starts, and names the
//! mappings and the limit if an open fails.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use futures_util::{StreamExt as _, stream};
use support::{
    Conn, Flags, Log, Server, bench_main, fd_count, free_port, guest_path, map_count,
    max_map_count, raise_open_files_limit, require_file, rss_kib, serve_command, target_dir,
    user_path,
};

const USAGE: &str = "\
usage: cargo bench -p host --bench soak -- [options]

  --connections N    idle connections per wave                       [10000]
  --duration SECS    run waves until this much time has passed       [300]
  --waves N          run exactly N waves instead (overrides --duration)
  --settle SECS      wait before each measurement                    [2]
  --concurrency N    connections opened or closed at a time          [256]
  --host-bin PATH    wsbox host binary     [<target>/release/host]
  --guest PATH       guest component       [<target>/wasm32-wasip2/guest/echo.wasm]
  --host-arg ARG     one more argument to `host serve` (repeatable)
  --no-metrics       do not run the host with --metrics-listen (no gauges)
  --smaps DIR        also copy the host's /proc/PID/smaps to DIR/<wave>-<phase>.smaps
                     at each measurement (to see which mappings hold what stays)

<target> is $CARGO_TARGET_DIR, else <workspace>/target.
";

/// Memory mappings one live guest instance costs the host at most (`MAPS_PER_INSTANCE` in
/// `host/src/main.rs`).
const MAPS_PER_INSTANCE: usize = 6;
/// How much RSS after a wave's closes may exceed RSS at the start.
const RSS_TOLERANCE: f64 = 0.10;
/// Bound on waiting for the host's descriptors to come back after a wave's closes.
const FD_WAIT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    bench_main(
        USAGE,
        |_| bail!("soak has no native peer"),
        Options::parse,
        run,
    )
}

#[derive(Debug)]
struct Options {
    connections: usize,
    duration: Duration,
    waves: Option<usize>,
    settle: Duration,
    concurrency: usize,
    host_bin: PathBuf,
    guest: PathBuf,
    host_args: Vec<String>,
    metrics: bool,
    smaps: Option<PathBuf>,
}

impl Options {
    /// The command line's options, or `None` if it asks for help.
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let mut o = Options {
            connections: 10_000,
            duration: Duration::from_secs(300),
            waves: None,
            settle: Duration::from_secs(2),
            concurrency: 256,
            host_bin: target_dir().join("release/host"),
            guest: guest_path("echo"),
            host_args: Vec::new(),
            metrics: true,
            smaps: None,
        };
        let mut flags = Flags::new(args);
        while let Some(mut flag) = flags.next_flag() {
            match flag.name.as_str() {
                "--connections" => o.connections = flag.number()?,
                "--duration" => o.duration = Duration::from_secs_f64(flag.number()?),
                "--waves" => o.waves = Some(flag.number()?),
                "--settle" => o.settle = Duration::from_secs_f64(flag.number()?),
                "--concurrency" => o.concurrency = flag.number()?,
                "--host-bin" => o.host_bin = user_path(&flag.value()?),
                "--guest" => o.guest = user_path(&flag.value()?),
                "--host-arg" => o.host_args.push(flag.value()?),
                "--no-metrics" => o.metrics = false,
                "--smaps" => o.smaps = Some(user_path(&flag.value()?)),
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                _ => bail!("unknown option {:?}\n\n{USAGE}", flag.arg),
            }
        }
        ensure!(
            o.connections > 0 && o.concurrency > 0 && o.waves != Some(0),
            "--connections, --concurrency and --waves must be at least 1"
        );
        Ok(Some(o))
    }
}

/// What is measured of the host at one point.
struct Snapshot {
    rss_kib: u64,
    fds: usize,
    maps: usize,
    /// The host's gauges (`name value` lines of its metrics), if it serves metrics.
    gauges: String,
}

impl Snapshot {
    fn take(pid: u32, metrics: Option<SocketAddr>) -> Result<Snapshot> {
        Ok(Snapshot {
            rss_kib: rss_kib(pid)?,
            fds: fd_count(pid)?,
            maps: map_count(pid)?,
            gauges: match metrics {
                Some(addr) => gauges(addr).unwrap_or_else(|e| format!("(metrics: {e:#})")),
                None => "-".to_owned(),
            },
        })
    }

    fn print(&self, wave: &str, phase: &str, elapsed: Duration) {
        println!(
            "| {wave} | {phase} | {:.0} | {:.1} | {} | {} | {} |",
            elapsed.as_secs_f64(),
            self.rss_kib as f64 / 1024.0,
            self.fds,
            self.maps,
            self.gauges
        );
    }
}

fn run(o: &Options) -> Result<()> {
    let build = "cargo build --release -p host && \
                 cargo build --profile guest --target wasm32-wasip2 -p echo";
    require_file(&o.host_bin, "the wsbox host", build)?;
    require_file(&o.guest, "the guest", build)?;
    let limit = raise_open_files_limit()?;
    ensure!(
        limit as usize >= o.connections + 256,
        "the open-file limit ({limit}) is too low for {} connections in the host and in this \
         client: raise the hard limit (ulimit -Hn) or lower --connections",
        o.connections
    );

    let addr = free_port()?;
    let metrics = if o.metrics { Some(free_port()?) } else { None };
    let mut cmd = serve_command(&o.host_bin, &o.guest, addr);
    cmd.args(["--max-connections", &(o.connections + 64).to_string()])
        .args(["--ping-interval", "0", "--idle-timeout", "0"]);
    if let Some(metrics) = metrics {
        cmd.arg("--metrics-listen").arg(metrics.to_string());
    }
    cmd.args(&o.host_args);
    let log = std::env::temp_dir().join("wsbox-bench-soak-wsbox.log");
    let mut server = Server::start("wsbox", cmd, addr, log, Log::Keep)?;
    let pid = server.pid();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One connection first, so that what the host creates once, on its first connection (e.g. the
    // guest's memory image, a memfd), is part of the start.
    let primer = runtime.block_on(open(addr, 1, 1))?;
    ensure!(
        runtime.block_on(close(primer, 1)) == 0,
        "closing the first connection failed"
    );
    thread::sleep(o.settle);
    let start = Snapshot::take(pid, metrics)?;
    let keep_smaps = |wave: &str, phase: &str| -> Result<()> {
        let Some(dir) = &o.smaps else { return Ok(()) };
        std::fs::create_dir_all(dir)?;
        let to = dir.join(format!("{wave}-{phase}.smaps"));
        std::fs::copy(format!("/proc/{pid}/smaps"), &to)
            .with_context(|| format!("copying the host's smaps to {}", to.display()))?;
        Ok(())
    };
    keep_smaps("0", "start")?;

    let max_maps = max_map_count()?;
    let needed = start.maps + MAPS_PER_INSTANCE * o.connections;
    if needed >= max_maps {
        eprintln!(
            "warning: vm.max_map_count is {max_maps}, likely too low for {} live instances (the \
             host has {} mappings and each instance adds up to {MAPS_PER_INSTANCE}: up to \
             {needed}); opening connections may fail: raise it, e.g. \
             `sysctl -w vm.max_map_count=262144`",
            o.connections, start.maps
        );
    }
    println!(
        "soak: {} connections a wave, {}, host pid {pid}, vm.max_map_count {max_maps}",
        o.connections,
        match o.waves {
            Some(n) => format!("{n} waves"),
            None => format!("waves for {:?}", o.duration),
        }
    );
    println!();
    println!("| wave | phase | s | RSS MiB | fds | maps | gauges |");
    println!("|---|---|---|---|---|---|---|");
    let began = Instant::now();
    start.print("-", "start", Duration::ZERO);

    let mut closed = Vec::new();
    let mut wave = 0;
    while match o.waves {
        Some(n) => wave < n,
        None => wave == 0 || began.elapsed() < o.duration,
    } {
        wave += 1;
        let conns = runtime
            .block_on(open(addr, o.connections, o.concurrency))
            .with_context(|| {
                format!(
                    "wave {wave}: the host has {} memory mappings, vm.max_map_count {max_maps}",
                    map_count(pid).unwrap_or(0)
                )
            })?;
        thread::sleep(o.settle);
        server.ensure_running()?;
        Snapshot::take(pid, metrics)?.print(&wave.to_string(), "open", began.elapsed());
        keep_smaps(&wave.to_string(), "open")?;

        let failed = runtime.block_on(close(conns, o.concurrency));
        if failed > 0 {
            eprintln!("warning: wave {wave}: {failed} closing handshake(s) failed");
        }
        let deadline = Instant::now() + FD_WAIT;
        while fd_count(pid)? > start.fds && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        thread::sleep(o.settle);
        server.ensure_running()?;
        let after = Snapshot::take(pid, metrics)?;
        after.print(&wave.to_string(), "closed", began.elapsed());
        keep_smaps(&wave.to_string(), "closed")?;
        closed.push(after);
    }
    verdict(&start, &closed)
}

/// Opens `n` connections to `addr`, at most `concurrency` at a time.
async fn open(addr: SocketAddr, n: usize, concurrency: usize) -> Result<Vec<Conn>> {
    let opened: Vec<Result<Conn>> = stream::iter(0..n)
        .map(|_| Conn::open(addr, ""))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut conns = Vec::with_capacity(n);
    for (i, conn) in opened.into_iter().enumerate() {
        conns.push(conn.with_context(|| format!("opening connection {i} of {n}"))?);
    }
    Ok(conns)
}

/// Closes every connection (closing handshake, then the server's TCP close), at most
/// `concurrency` at a time; returns how many failed.
async fn close(conns: Vec<Conn>, concurrency: usize) -> usize {
    stream::iter(conns)
        .map(|mut conn| async move {
            conn.close(125).await?;
            conn.closed().await
        })
        .buffer_unordered(concurrency)
        .filter(|result| std::future::ready(result.is_err()))
        .count()
        .await
}

/// Prints PASS or FAIL (then an error, for the exit status) as the module docs define it.
fn verdict(start: &Snapshot, closed: &[Snapshot]) -> Result<()> {
    let rss_limit = start.rss_kib as f64 * (1.0 + RSS_TOLERANCE);
    let mut failures = Vec::new();
    for (i, s) in closed.iter().enumerate() {
        if s.rss_kib as f64 > rss_limit {
            failures.push(format!(
                "wave {}: RSS {:.1} MiB after closing, over {:.1} MiB (start + {:.0} %)",
                i + 1,
                s.rss_kib as f64 / 1024.0,
                rss_limit / 1024.0,
                RSS_TOLERANCE * 100.0
            ));
        }
        if s.fds != start.fds {
            failures.push(format!(
                "wave {}: {} fds after closing, {} at the start",
                i + 1,
                s.fds,
                start.fds
            ));
        }
    }
    let last = closed.last().expect("at least one wave");
    println!();
    println!(
        "RSS at start {:.1} MiB; after closing: min {:.1}, max {:.1}, last {:.1} MiB",
        start.rss_kib as f64 / 1024.0,
        closed.iter().map(|s| s.rss_kib).min().unwrap_or(0) as f64 / 1024.0,
        closed.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
    );
    if failures.is_empty() {
        println!(
            "verdict: PASS ({} waves: RSS within {:.0} % of the start and fds back to {} after each)",
            closed.len(),
            RSS_TOLERANCE * 100.0,
            start.fds
        );
        return Ok(());
    }
    println!("verdict: FAIL");
    for failure in &failures {
        println!("  {failure}");
    }
    bail!("verdict: FAIL ({} finding(s))", failures.len())
}

/// The host's gauges from its metrics endpoint, as `name value` pairs joined by `, `.
fn gauges(addr: SocketAddr) -> Result<String> {
    let mut stream = StdTcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .context("no HTTP body")?;
    let kinds: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" gauge"))
        .collect();
    let samples: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            kinds.contains(&name)
        })
        .collect();
    Ok(samples.join(", "))
}
