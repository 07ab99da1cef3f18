//! permessage-deflate cost: server memory per connection and echo throughput, measured on the real
//! host running `echo.wasm`.
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p echo    # or let `cargo test` build the guests
//! cargo bench -p host --bench deflate_memory -- [options]  # see USAGE below
//! ```
//!
//! **Memory.** For each server mode (default 15-bit windows with context takeover;
//! `--deflate-server-no-context-takeover`; `--deflate-server-max-window-bits 9`;
//! `--deflate false`) a fresh host is started and warmed up with one connection. Then N raw
//! clients offering `permessage-deflate` connect, and the server's VmRSS (`/proc/PID/status`) is
//! read before they connect, once all N are handshaken and idle, and once each of them has sent a
//! compressible 4 KiB message and read its echo (so that both the server's compressor and its
//! decompressor exist) while staying open. Per-connection figures are the RSS differences divided
//! by N. The clients compress with flate2 and context takeover (the server's inflater therefore
//! keeps its state too), and check every echo.
//!
//! **Throughput.** One host with the default configuration; C connections each run a closed loop
//! (send one message, wait for its echo, repeat) of 1 KiB JSON-like text messages (256 different
//! ones in turn, more than a 32 KiB window holds), first without the extension, then with it,
//! for the same time each, after a warm-up. Compressed clients offer `client_no_context_takeover`
//! so that each message can be compressed once, ahead of time (the clients then spend their CPU
//! on inflating and checking the echoes, not on compressing): the server inflates every message
//! from scratch and compresses every echo with context takeover. Server CPU (utime + stime) per
//! message is read from `/proc/PID/stat` over the same window.
//!
//! **Codec** (`--only codec`, in process, not run by default): the same messages through wsbox's
//! `MessageDeflater`/`MessageInflater` and through plain flate2, per message, with one deflater
//! and with 50 or 500 used in turn (as a server with that many busy connections does: each
//! compressor's state (sizes in README.md) is then cold in the caches, which is most of the difference
//! between the codec's cost in isolation and the server's extra CPU per compressed echo).
//!
//! The host binary is copied to a temporary file first, so that a concurrent rebuild of
//! `target/release/host` cannot swap it under a running measurement. Servers are killed when the
//! bench ends (also on panic, and via `PR_SET_PDEATHSIG` if the bench is killed).

#[path = "../../tests/interop/deflate_codec.rs"]
mod deflate_codec;
mod support;

use std::cell::Cell;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use deflate_codec::{TRAILER, deflate_message, inflate_message, xorshift};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use support::{
    Conn, Flags, Log, OP_CLOSE, OP_TEXT, RSV1, Sample, Server, Window, client_frame, free_port,
    guest_path, require_file, rss_kib, serve_command, target_dir,
};
use tokio::time::{sleep, timeout};

const USAGE: &str = "\
usage: cargo bench -p host --bench deflate_memory -- [options]

  --connections N             connections for the memory figures          [500]
  --throughput-connections N  closed-loop connections for msgs/s          [50]
  --seconds SECS              measured window per throughput run          [5]
  --warmup SECS               warm-up before each throughput window       [1]
  --only WHAT                 `memory`, `throughput` or `codec` (in-process: wsbox's own
                              MessageDeflater/MessageInflater against plain flate2 on
                              the throughput messages; not run by default)
  --host-bin PATH             wsbox host binary [<workspace>/target/release/host]
  --guest PATH                echo guest        [first of <target>/wasm32-wasip2/guest/echo.wasm,
                                                 <target>/guests/wasm32-wasip2/guest/echo.wasm]
";

const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for the server's memory to settle before each RSS reading.
const SETTLE: Duration = Duration::from_millis(700);
/// Larger than any echo the clients expect.
const MAX_PAYLOAD: usize = 1 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match Options::parse(args) {
        Ok(None) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(o)) => match run(&o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
    connections: usize,
    throughput_connections: usize,
    seconds: f64,
    warmup: f64,
    memory: bool,
    throughput: bool,
    codec: bool,
    host_bin: PathBuf,
    guest: PathBuf,
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let target = target_dir();
        let guest = guest_path("echo");
        let mut o = Options {
            connections: 500,
            throughput_connections: 50,
            seconds: 5.0,
            warmup: 1.0,
            memory: true,
            throughput: true,
            codec: false,
            host_bin: target.join("release/host"),
            guest,
        };
        let mut flags = Flags::new(args);
        while let Some(mut flag) = flags.next_flag() {
            match flag.name.as_str() {
                "--connections" => o.connections = flag.number()?,
                "--throughput-connections" => o.throughput_connections = flag.number()?,
                "--seconds" => o.seconds = flag.number()?,
                "--warmup" => o.warmup = flag.number()?,
                "--only" => match flag.value()?.as_str() {
                    "memory" => o.throughput = false,
                    "throughput" => o.memory = false,
                    "codec" => (o.memory, o.throughput, o.codec) = (false, false, true),
                    other => bail!("--only takes `memory`, `throughput` or `codec`, not {other:?}"),
                },
                "--host-bin" => o.host_bin = flag.value()?.into(),
                "--guest" => o.guest = flag.value()?.into(),
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                _ => bail!("unknown option {:?}\n\n{USAGE}", flag.arg),
            }
        }
        ensure!(
            o.connections > 0 && o.throughput_connections > 0,
            "connections must be > 0"
        );
        ensure!(o.seconds > 0.0 && o.warmup >= 0.0, "bad --seconds/--warmup");
        Ok(Some(o))
    }
}

// ---------------------------------------------------------------------------------------------
// The run

fn run(o: &Options) -> Result<()> {
    if o.codec {
        return codec();
    }
    require_file(&o.host_bin, "the host", "cargo build --release -p host")?;
    require_file(
        &o.guest,
        "the echo guest",
        "cargo build --profile guest --target wasm32-wasip2 -p echo",
    )?;
    let host_copy =
        std::env::temp_dir().join(format!("wsbox-deflate-bench-host-{}", std::process::id()));
    fs::copy(&o.host_bin, &host_copy).with_context(|| {
        format!(
            "copying {} to {}",
            o.host_bin.display(),
            host_copy.display()
        )
    })?;
    let _cleanup = RemoveOnDrop(host_copy.clone());
    println!(
        "deflate_memory: host {} (copied), guest {}",
        o.host_bin.display(),
        o.guest.display()
    );

    if o.memory {
        memory(o, &host_copy)?;
    }
    if o.throughput {
        throughput(o, &host_copy)?;
    }
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

struct MemoryRow {
    label: &'static str,
    negotiated: Option<String>,
    before: u64,
    idle: u64,
    active: u64,
    n: usize,
}

fn memory(o: &Options, host: &Path) -> Result<()> {
    let modes: [(&str, &[&str]); 4] = [
        ("default (15-bit, takeover)", &[]),
        (
            "server_no_context_takeover",
            &["--deflate-server-no-context-takeover"],
        ),
        (
            "server_max_window_bits=9",
            &["--deflate-server-max-window-bits", "9"],
        ),
        ("--deflate false", &["--deflate", "false"]),
    ];
    let message = json_like(4096, 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for (label, args) in modes {
        let mut server = start_server(host, &o.guest, args, label)?;
        rows.push(rt.block_on(memory_row(o, &mut server, label, &message))?);
    }

    println!();
    println!(
        "server RSS, {} connections offering permessage-deflate (KiB):",
        o.connections
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>10} {:>10} {:>12}  negotiated",
        "mode", "before", "idle", "active", "KiB/idle", "KiB/active", "deflate KiB"
    );
    let plain = rows.iter().find(|r| r.negotiated.is_none()).map(per_active);
    for r in &rows {
        let extra = plain.map_or(f64::NAN, |p| per_active(r) - p);
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>10.1} {:>10.1} {:>12.1}  {}",
            r.label,
            r.before,
            r.idle,
            r.active,
            (r.idle as f64 - r.before as f64) / r.n as f64,
            per_active(r),
            extra,
            r.negotiated.as_deref().unwrap_or("-"),
        );
    }
    println!(
        "(KiB/idle: handshaken, silent connections; KiB/active: after one compressible 4 KiB \
         message each way; deflate KiB: KiB/active minus that of `--deflate false`)"
    );
    Ok(())
}

fn per_active(r: &MemoryRow) -> f64 {
    (r.active as f64 - r.before as f64) / r.n as f64
}

/// One mode's figures: the server's RSS before `o.connections` connections, with them open and
/// idle, and once each has sent a message and read its echo.
async fn memory_row(
    o: &Options,
    server: &mut Server,
    label: &'static str,
    message: &[u8],
) -> Result<MemoryRow> {
    // Warm-up: one connection and one message, so that one-time costs (the instance
    // pool's first slot, lazily initialised runtime state) are not counted per connection.
    {
        let mut c = Client::open(server.addr).await?;
        c.echo(message).await?;
        c.close().await?;
    }
    sleep(SETTLE).await;
    let before = rss_kib(server.pid())?;
    eprintln!("{label}: connecting {} clients", o.connections);
    let mut clients = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
        clients.push(Client::open(server.addr).await?);
    }
    sleep(SETTLE).await;
    let idle = rss_kib(server.pid())?;
    eprintln!("{label}: one 4 KiB message each way on every connection");
    for c in &mut clients {
        c.echo(message).await?;
    }
    sleep(SETTLE).await;
    let active = rss_kib(server.pid())?;
    server.ensure_running()?;
    let negotiated = clients[0].conn.extensions.clone();
    for c in &mut clients {
        c.close().await?;
    }
    Ok(MemoryRow {
        label,
        negotiated,
        before,
        idle,
        active,
        n: o.connections,
    })
}

/// JSON-like text of exactly `size` bytes; `seed` varies the values.
fn json_like(size: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let names = [
        "temperature",
        "pressure",
        "humidity",
        "wind",
        "status",
        "ok",
    ];
    let mut s = String::from("{\"readings\":[");
    let mut i = 0;
    while s.len() < size {
        s.push_str(&format!(
            "{{\"sensor\":\"s-{:04}\",\"kind\":\"{}\",\"value\":{}.{:02},\"ts\":{}}},",
            next() % 10_000,
            names[(next() % names.len() as u64) as usize],
            next() % 1000,
            next() % 100,
            1_700_000_000 + i * 17 + seed,
        ));
        i += 1;
    }
    let mut bytes = s.into_bytes();
    bytes.truncate(size);
    bytes
}

// ---------------------------------------------------------------------------------------------
// The raw client for the memory figures

/// A raw connection offering permessage-deflate; compresses its messages (with context takeover)
/// if the server accepts.
struct Client {
    conn: Conn,
    codec: Option<(Compress, Decompress)>,
}

impl Client {
    async fn open(addr: SocketAddr) -> Result<Client> {
        let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
        let conn = Conn::open(addr, offer).await?;
        let codec = conn.extensions.is_some().then(|| {
            (
                Compress::new(Compression::new(6), false),
                Decompress::new(false),
            )
        });
        Ok(Client { conn, codec })
    }

    /// Send `message` (compressed if negotiated) and check its echo.
    async fn echo(&mut self, message: &[u8]) -> Result<()> {
        let frame = match &mut self.codec {
            Some((c, _)) => client_frame(RSV1, OP_TEXT, &deflate_message(c, message)),
            None => client_frame(0, OP_TEXT, message),
        };
        self.conn.send(&frame).await.context("sending")?;
        let (rsv1, opcode, payload) = timeout(IO_TIMEOUT, self.read_message())
            .await
            .context("no echo in time")??;
        ensure!(opcode == OP_TEXT, "unexpected opcode {opcode}");
        let echo = if rsv1 {
            let (_, d) = self.codec.as_mut().context("RSV1 without negotiation")?;
            inflate_message(d, &payload, message.len()).context("inflating the server's message")?
        } else {
            payload
        };
        ensure!(echo == message, "the echo differs from the message");
        Ok(())
    }

    /// One whole message: (RSV1 on its first frame, opcode, payload as received).
    async fn read_message(&mut self) -> Result<(bool, u8, Vec<u8>)> {
        let first = self.conn.read_frame(MAX_PAYLOAD).await?;
        let mut payload = self.conn.payload(&first).to_vec();
        let mut fin = first.fin();
        while !fin {
            let next = self.conn.read_frame(MAX_PAYLOAD).await?;
            payload.extend_from_slice(self.conn.payload(&next));
            fin = next.fin();
        }
        Ok((first.rsv1(), first.opcode(), payload))
    }

    async fn close(&mut self) -> Result<()> {
        timeout(IO_TIMEOUT, self.conn.close(MAX_PAYLOAD))
            .await
            .context("no close frame in time")?
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput

/// One closed-loop window, and the bytes the clients read meanwhile.
struct Throughput {
    window: Window,
    wire_in: u64,
}

fn throughput(o: &Options, host: &Path) -> Result<()> {
    let mut server = start_server(host, &o.guest, &[], "throughput")?;
    let messages: Arc<Vec<Vec<u8>>> =
        Arc::new((0..256).map(|k| json_like(1024, 100 + k)).collect());
    let mut results = Vec::new();
    for compressed in [false, true] {
        let label = if compressed {
            "permessage-deflate"
        } else {
            "plain"
        };
        eprintln!(
            "throughput: {label}: {} connections, {} s + {} s",
            o.throughput_connections, o.warmup, o.seconds
        );
        let t = closed_loop(o, &server, messages.clone(), compressed)?;
        server.ensure_running()?;
        results.push((label, t));
        thread::sleep(Duration::from_millis(300));
    }
    println!();
    println!(
        "echo throughput, {} connections, closed loop, 1 KiB JSON-like text, {} s each:",
        o.throughput_connections, o.seconds
    );
    println!(
        "{:<20} {:>10} {:>20} {:>16}",
        "client", "msgs/s", "server µs CPU/msg", "wire B/echo"
    );
    for (label, t) in &results {
        println!(
            "{:<20} {:>10.0} {:>20.2} {:>16.1}",
            label,
            t.window.msgs_per_sec(),
            t.window.server_us_per_msg(),
            t.wire_in as f64 / t.window.messages.max(1) as f64
        );
    }
    if let [(_, plain), (_, deflate)] = &results[..] {
        println!(
            "compressed / plain: {:.2}x msgs/s, {:.2}x server CPU per message",
            deflate.window.msgs_per_sec() / plain.window.msgs_per_sec(),
            deflate.window.server_us_per_msg() / plain.window.server_us_per_msg()
        );
    }
    Ok(())
}

/// Run `o.throughput_connections` closed loops on a current-thread runtime; count echoes over the
/// window that follows the warm-up.
fn closed_loop(
    o: &Options,
    server: &Server,
    messages: Arc<Vec<Vec<u8>>>,
    compressed: bool,
) -> Result<Throughput> {
    // Pre-built frames: plain, or compressed once each (valid because the client promises
    // `client_no_context_takeover`).
    let frames: Rc<Vec<Vec<u8>>> = Rc::new(
        messages
            .iter()
            .map(|m| {
                if compressed {
                    let mut c = Compress::new(Compression::new(6), false);
                    client_frame(RSV1, OP_TEXT, &deflate_message(&mut c, m))
                } else {
                    client_frame(0, OP_TEXT, m)
                }
            })
            .collect(),
    );
    let offer = if compressed {
        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
    } else {
        ""
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = server.addr;
    let pid = server.pid();
    let warmup = Duration::from_secs_f64(o.warmup);
    let measured = Duration::from_secs_f64(o.seconds);
    let n = o.throughput_connections;
    rt.block_on(async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let count = Rc::new(Cell::new(0u64));
                let wire = Rc::new(Cell::new(0u64));
                let stop = Rc::new(Cell::new(false));
                let mut tasks = Vec::new();
                for first in 0..n {
                    let mut conn = Conn::open(addr, offer).await?;
                    ensure!(
                        conn.extensions.is_some() == compressed,
                        "unexpected negotiation: {:?}",
                        conn.extensions
                    );
                    let (frames, messages) = (frames.clone(), messages.clone());
                    let (count, wire, stop) = (count.clone(), wire.clone(), stop.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        let mut d = Decompress::new(false);
                        let mut i = first;
                        while !stop.get() {
                            let k = i % frames.len();
                            i += 1;
                            conn.send(&frames[k]).await?;
                            let frame = conn.read_frame(MAX_PAYLOAD).await?;
                            ensure!(frame.fin(), "fragmented echo");
                            wire.set(wire.get() + frame.len as u64);
                            let payload = conn.payload(&frame);
                            let same = if frame.rsv1() {
                                inflate_message(&mut d, payload, messages[k].len())
                                    .context("inflating the server's message")?
                                    == messages[k]
                            } else {
                                payload == messages[k]
                            };
                            ensure!(same, "echo differs");
                            count.set(count.get() + 1);
                        }
                        conn.send(&client_frame(0, OP_CLOSE, &1000u16.to_be_bytes()))
                            .await?;
                        anyhow::Ok(())
                    }));
                }
                tokio::time::sleep(warmup).await;
                let (start, wire0) = (Sample::take(count.get(), pid)?, wire.get());
                tokio::time::sleep(measured).await;
                let (end, wire1) = (Sample::take(count.get(), pid)?, wire.get());
                stop.set(true);
                for t in tasks {
                    t.await??;
                }
                Ok(Throughput {
                    window: Window::between(&start, &end),
                    wire_in: wire1 - wire0,
                })
            })
            .await
    })
}

// ---------------------------------------------------------------------------------------------
// Codec micro-benchmark (in process)

/// The throughput run's messages through wsbox's codecs and through plain flate2, timed per
/// message, to tell the codec's share of the server's CPU per compressed echo.
fn codec() -> Result<()> {
    use wsbox::protocol::deflate::{DeflateConfig, MessageDeflater, MessageInflater, Negotiated};
    use wsbox::protocol::{Deflate as _, Inflate as _};

    let messages: Vec<Vec<u8>> = (0..256).map(|k| json_like(1024, 100 + k)).collect();
    let rounds = 100usize;
    let n = (messages.len() * rounds) as f64;
    type PerMessage<'a> = Box<dyn FnMut(&[u8]) -> usize + 'a>;
    let time = |mut f: PerMessage<'_>| {
        let start = Instant::now();
        let mut bytes = 0;
        for _ in 0..rounds {
            for m in &messages {
                bytes += f(m);
            }
        }
        (start.elapsed().as_secs_f64() * 1e6 / n, bytes as f64 / n)
    };
    println!("codec, 1 KiB JSON-like messages, µs per message (bytes out per message):");
    for level in [1, 6] {
        let mut config = DeflateConfig::default();
        config.level = level;
        let mut d = MessageDeflater::new(&Negotiated::default(), &config);
        let mut out = Vec::new();
        let (us, b) = time(Box::new(|m| {
            out.clear();
            d.deflate(m, &mut out).expect("deflate");
            out.len()
        }));
        println!("  wsbox MessageDeflater level {level}, takeover      {us:>7.2} µs ({b:.0} B)");
        let mut c = Compress::new(Compression::new(level), false);
        let mut out = Vec::with_capacity(4096);
        let (us, b) = time(Box::new(|m| {
            out.clear();
            c.compress_vec(m, &mut out, FlushCompress::Sync)
                .expect("compress");
            out.len()
        }));
        println!("  flate2 Compress level {level}, one call, 4 KiB out  {us:>7.2} µs ({b:.0} B)");
    }
    // The same, with one deflater per connection used in turn, as the server does: each
    // message then finds its compressor's state (sizes in README.md) cold in the caches.
    for conns in [50usize, 500] {
        let mut ds: Vec<MessageDeflater> = (0..conns)
            .map(|_| MessageDeflater::new(&Negotiated::default(), &DeflateConfig::default()))
            .collect();
        let mut out = Vec::new();
        let mut turn = 0usize;
        let (us, b) = time(Box::new(|m| {
            out.clear();
            ds[turn % conns].deflate(m, &mut out).expect("deflate");
            turn += 1;
            out.len()
        }));
        println!("  wsbox MessageDeflater level 1, {conns} in turn     {us:>7.2} µs ({b:.0} B)");
    }
    // Inflate what a client_no_context_takeover client sends (each message compressed alone).
    let compressed: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| deflate_message(&mut Compress::new(Compression::new(6), false), m))
        .collect();
    let lookup: std::collections::HashMap<*const u8, usize> = messages
        .iter()
        .enumerate()
        .map(|(k, m)| (m.as_ptr(), k))
        .collect();
    for cnct in [true, false] {
        let negotiated = Negotiated {
            client_no_context_takeover: cnct,
            ..Negotiated::default()
        };
        let mut i = MessageInflater::new(&negotiated);
        let mut out = Vec::new();
        let (us, b) = time(Box::new(|m| {
            out.clear();
            let z = &compressed[lookup[&m.as_ptr()]];
            i.inflate(z, 1 << 20, &mut out).expect("inflate");
            out.len()
        }));
        println!(
            "  wsbox MessageInflater, client_no_context_takeover={cnct:<5} {us:>6.2} µs ({b:.0} B)"
        );
    }
    let mut dz = Decompress::new(false);
    let mut out = Vec::with_capacity(4096);
    let (us, b) = time(Box::new(|m| {
        let z = [&compressed[lookup[&m.as_ptr()]][..], &TRAILER[..]].concat();
        dz.reset(false);
        out.clear();
        dz.decompress_vec(&z, &mut out, FlushDecompress::Sync)
            .expect("inflate");
        out.len()
    }));
    println!("  flate2 Decompress + reset, one call            {us:>7.2} µs ({b:.0} B)");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The server

/// Starts the host serving `guest` with `args` on a free port.
fn start_server(host: &Path, guest: &Path, args: &[&str], label: &str) -> Result<Server> {
    let addr = free_port()?;
    let mut cmd = serve_command(host, guest, addr);
    cmd.args(args);
    let log = std::env::temp_dir().join(format!(
        "wsbox-bench-deflate-{}-{}.log",
        std::process::id(),
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    Server::start(label, cmd, addr, log, Log::Remove)
}
