//! Memory of idle subscribers: the host's resident memory per connection with N idle
//! connections, each subscribed (through `broadcast.wasm`, path = topic) to one shared topic or to
//! a topic of its own, next to the same N connections on `echo.wasm` (no topics) in the same run.
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p echo -p broadcast
//! cargo bench -p host --bench topic_memory -- [--connections N]
//! ```
//!
//! Each run starts a fresh host with `--max-connections N+64`, reads its VmRSS, opens N
//! connections with plain blocking sockets (the client holds no runtime), waits for the host to
//! settle, and reads VmRSS again. More than about 10,000 live instances need a larger
//! `vm.max_map_count` than the kernel's default 65,530 (`sysctl -w vm.max_map_count=262144`) and
//! enough file descriptors (`ulimit -n`).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use support::{
    Flags, Log, Server, free_port, require_file, rss_kib, serve_command, workspace_root,
};

const USAGE: &str = "\
usage: cargo bench -p host --bench topic_memory -- [--connections N]

  --connections N   idle connections per run   [10000]
";

/// The request path of connection `i`.
type PathOf = fn(usize) -> String;

/// Time for the host's memory to settle once every connection is open.
const SETTLE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("topic_memory: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut connections = 10_000usize;
    let mut flags = Flags::new(std::env::args().skip(1).collect());
    while let Some(mut flag) = flags.next_flag() {
        match flag.name.as_str() {
            "--connections" => connections = flag.number()?,
            "--bench" => {}
            "--help" | "-h" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown option {other}\n{USAGE}"),
        }
    }
    let root = workspace_root();
    let host = root.join("target/release/host");
    let guests = root.join("target/wasm32-wasip2/guest");
    let build = "cargo build --release -p host && \
                 cargo build --profile guest --target wasm32-wasip2 -p echo -p broadcast";
    require_file(&host, "the host binary", build)?;
    require_file(&guests.join("echo.wasm"), "the echo guest", build)?;
    require_file(&guests.join("broadcast.wasm"), "the broadcast guest", build)?;

    let runs: [(&str, &str, PathOf); 3] = [
        ("echo, no topics", "echo.wasm", |_| "/".to_owned()),
        ("1 topic", "broadcast.wasm", |_| "/all".to_owned()),
        ("1 topic each", "broadcast.wasm", |i| format!("/t{i}")),
    ];
    println!("| {connections} idle connections | host RSS growth | KiB per connection |");
    println!("|---|---|---|");
    let mut baseline = None;
    for (label, guest, path) in runs {
        let kib = measure(&host, &guests.join(guest), connections, path)
            .with_context(|| format!("run {label:?}"))?;
        let per = kib as f64 / connections as f64;
        println!("| {label} | {:.1} MiB | {per:.1} |", kib as f64 / 1024.0);
        match baseline {
            None => baseline = Some(per),
            Some(base) => println!("|   topics' own share | | {:.2} |", per - base),
        }
    }
    Ok(())
}

/// Host RSS growth in KiB with `n` idle connections to `path(i)`.
fn measure(host: &Path, guest: &Path, n: usize, path: PathOf) -> Result<u64> {
    let addr = free_port()?;
    let mut cmd = serve_command(host, guest, addr);
    cmd.args([
        "--max-connections",
        &(n + 64).to_string(),
        "--ping-interval",
        "0",
    ]);
    cmd.args(["--idle-timeout", "0"]);
    let log = std::env::temp_dir().join(format!("wsbox-topic-memory-{}.log", std::process::id()));
    let mut server = Server::start("wsbox", cmd, addr, log, Log::Remove)?;
    std::thread::sleep(SETTLE);
    let before = rss_kib(server.pid())?;
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        sockets.push(open(addr, &path(i)).with_context(|| format!("connection {i}"))?);
    }
    std::thread::sleep(SETTLE);
    server.ensure_running()?;
    let after = rss_kib(server.pid())?;
    drop(sockets);
    Ok(after.saturating_sub(before))
}

/// A blocking WebSocket connection to `path`, handshake done.
fn open(addr: SocketAddr, path: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(stream.read(&mut byte)? == 1, "closed during the handshake");
        head.push(byte[0]);
    }
    ensure!(head.starts_with(b"HTTP/1.1 101 "), "handshake refused");
    Ok(stream)
}
