//! permessage-deflate cost: server memory per connection and echo throughput, measured on the real
//! host running `echo.wasm`.
//!
//! ```text
//! cargo build --release -p host
//! cargo build --release --target wasm32-wasip2 -p echo    # or let `cargo test` build the guests
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
//! compressor's ~370 KiB of state is then cold in the caches, which is most of the difference
//! between the codec's cost in isolation and the server's extra CPU per compressed echo).
//!
//! The host binary is copied to a temporary file first, so that a concurrent rebuild of
//! `target/release/host` cannot swap it under a running measurement. Servers are killed when the
//! bench ends (also on panic, and via `PR_SET_PDEATHSIG` if the bench is killed).

use std::cell::Cell;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

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
  --guest PATH                echo guest        [first of <target>/wasm32-wasip2/release/echo.wasm,
                                                 <target>/guests/wasm32-wasip2/release/echo.wasm]
";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Time for the server's memory to settle before each RSS reading.
const SETTLE: Duration = Duration::from_millis(700);
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const RSV1: u8 = 0x40;

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

fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let target = target_dir();
        let guest = [
            target.join("wasm32-wasip2/release/echo.wasm"),
            target.join("guests/wasm32-wasip2/release/echo.wasm"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| target.join("wasm32-wasip2/release/echo.wasm"));
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
                "--connections" => o.connections = value()?.parse()?,
                "--throughput-connections" => o.throughput_connections = value()?.parse()?,
                "--seconds" => o.seconds = value()?.parse()?,
                "--warmup" => o.warmup = value()?.parse()?,
                "--only" => match value()?.as_str() {
                    "memory" => o.throughput = false,
                    "throughput" => o.memory = false,
                    "codec" => (o.memory, o.throughput, o.codec) = (false, false, true),
                    other => bail!("--only takes `memory`, `throughput` or `codec`, not {other:?}"),
                },
                "--host-bin" => o.host_bin = value()?.into(),
                "--guest" => o.guest = value()?.into(),
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                _ => bail!("unknown option {arg:?}\n\n{USAGE}"),
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
    for (path, what, build) in [
        (&o.host_bin, "the host", "cargo build --release -p host"),
        (
            &o.guest,
            "the echo guest",
            "cargo build --release --target wasm32-wasip2 -p echo",
        ),
    ] {
        ensure!(
            path.is_file(),
            "{what} is missing: {}\nbuild it first: {build}",
            path.display()
        );
    }
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
    let mut rows = Vec::new();
    for (label, args) in modes {
        let mut server = Server::start(host, &o.guest, args, label)?;
        // Warm-up: one connection and one message, so that one-time costs (the instance
        // pool's first slot, lazily initialised runtime state) are not counted per connection.
        {
            let mut c = Conn::open(server.addr, true)?;
            c.echo(&message)?;
            c.close()?;
        }
        thread::sleep(SETTLE);
        let before = rss_kib(server.pid())?;
        eprintln!("{label}: connecting {} clients", o.connections);
        let mut conns = Vec::with_capacity(o.connections);
        for _ in 0..o.connections {
            conns.push(Conn::open(server.addr, true)?);
        }
        thread::sleep(SETTLE);
        let idle = rss_kib(server.pid())?;
        eprintln!("{label}: one 4 KiB message each way on every connection");
        for c in &mut conns {
            c.echo(&message)?;
        }
        thread::sleep(SETTLE);
        let active = rss_kib(server.pid())?;
        server.ensure_running()?;
        let negotiated = conns[0].negotiated.clone();
        for c in &mut conns {
            c.close()?;
        }
        rows.push(MemoryRow {
            label,
            negotiated,
            before,
            idle,
            active,
            n: o.connections,
        });
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

/// JSON-like text of exactly `size` bytes; `seed` varies the values.
fn json_like(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
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
// A blocking raw client for the memory figures

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The `Sec-WebSocket-Extensions` answer, if any.
    negotiated: Option<String>,
    compress: Option<Compress>,
    decompress: Option<Decompress>,
}

impl Conn {
    fn open(addr: SocketAddr, offer_deflate: bool) -> Result<Conn> {
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).context("connecting")?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let offer = if offer_deflate {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        )?;
        let mut buf = Vec::new();
        let head = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            let n = stream
                .read(&mut chunk)
                .context("reading the handshake answer")?;
            ensure!(n > 0, "connection closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        ensure!(
            head.starts_with("HTTP/1.1 101"),
            "handshake refused:\n{head}"
        );
        let negotiated = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        let (compress, decompress) = if negotiated.is_some() {
            (
                Some(Compress::new(Compression::new(6), false)),
                Some(Decompress::new(false)),
            )
        } else {
            (None, None)
        };
        Ok(Conn {
            stream,
            buf,
            negotiated,
            compress,
            decompress,
        })
    }

    /// Send `message` (compressed if negotiated) and check its echo.
    fn echo(&mut self, message: &[u8]) -> Result<()> {
        let frame = match &mut self.compress {
            Some(c) => client_frame(RSV1, OP_TEXT, &deflate(c, message)),
            None => client_frame(0, OP_TEXT, message),
        };
        self.stream.write_all(&frame)?;
        let (rsv1, opcode, payload) = self.read_message()?;
        ensure!(opcode == OP_TEXT, "unexpected opcode {opcode}");
        let echo = if rsv1 {
            let d = self
                .decompress
                .as_mut()
                .context("RSV1 without negotiation")?;
            inflate(d, &payload, message.len())?
        } else {
            payload
        };
        ensure!(echo == message, "the echo differs from the message");
        Ok(())
    }

    fn read_message(&mut self) -> Result<(bool, u8, Vec<u8>)> {
        let mut first: Option<(bool, u8)> = None;
        let mut payload = Vec::new();
        loop {
            let (fin, rsv1, opcode, data) = self.read_frame()?;
            first.get_or_insert((rsv1, opcode));
            payload.extend_from_slice(&data);
            if fin {
                let (rsv1, opcode) = first.unwrap_or_default();
                return Ok((rsv1, opcode, payload));
            }
        }
    }

    fn read_frame(&mut self) -> Result<ParsedFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Ok(frame);
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).context("reading a frame")?;
            ensure!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn close(&mut self) -> Result<()> {
        self.stream
            .write_all(&client_frame(0, OP_CLOSE, &1000u16.to_be_bytes()))?;
        loop {
            let (_, _, opcode, _) = self.read_frame()?;
            if opcode == OP_CLOSE {
                return Ok(());
            }
        }
    }
}

/// One unfragmented, masked client frame.
fn client_frame(rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | rsv | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A parsed server frame: (fin, rsv1, opcode, payload).
type ParsedFrame = (bool, bool, u8, Vec<u8>);

/// A server frame at the front of `buf`, and the bytes it used.
fn parse_frame(buf: &[u8]) -> Option<(ParsedFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let (fin, rsv1, opcode) = (buf[0] & 0x80 != 0, buf[0] & RSV1 != 0, buf[0] & 0x0f);
    let (len, at): (usize, usize) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().ok()?) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    let end = at.checked_add(len)?;
    if buf.len() < end {
        return None;
    }
    Some(((fin, rsv1, opcode, buf[at..end].to_vec()), end))
}

/// One permessage-deflate message: sync flush, trailer stripped.
fn deflate(c: &mut Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 256);
    let mut pos = 0;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(256));
        }
        let before = c.total_in();
        c.compress_vec(&payload[pos..], &mut out, FlushCompress::Sync)
            .expect("compressing");
        pos += (c.total_in() - before) as usize;
        if pos == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    out.truncate(out.len() - TRAILER.len());
    out
}

fn inflate(d: &mut Decompress, compressed: &[u8], hint: usize) -> Result<Vec<u8>> {
    let input = [compressed, &TRAILER[..]].concat();
    let mut out = Vec::with_capacity(hint + 256);
    let mut pos = 0;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(256));
        }
        let before = d.total_in();
        d.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            .context("inflating the server's message")?;
        pos += (d.total_in() - before) as usize;
        if pos == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput

struct Window {
    messages: u64,
    seconds: f64,
    server_cpu: f64,
    wire_in: u64,
}

impl Window {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.seconds
    }
    fn cpu_us(&self) -> f64 {
        self.server_cpu * 1e6 / self.messages.max(1) as f64
    }
}

fn throughput(o: &Options, host: &Path) -> Result<()> {
    let mut server = Server::start(host, &o.guest, &[], "throughput")?;
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
        let w = closed_loop(o, &server, messages.clone(), compressed)?;
        server.ensure_running()?;
        results.push((label, w));
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
    for (label, w) in &results {
        println!(
            "{:<20} {:>10.0} {:>20.2} {:>16.1}",
            label,
            w.rate(),
            w.cpu_us(),
            w.wire_in as f64 / w.messages.max(1) as f64
        );
    }
    if let [(_, plain), (_, deflate)] = &results[..] {
        println!(
            "compressed / plain: {:.2}x msgs/s, {:.2}x server CPU per message",
            deflate.rate() / plain.rate(),
            deflate.cpu_us() / plain.cpu_us()
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
) -> Result<Window> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    // Pre-built frames: plain, or compressed once each (valid because the client promises
    // `client_no_context_takeover`).
    let frames: Rc<Vec<Vec<u8>>> = Rc::new(
        messages
            .iter()
            .map(|m| {
                if compressed {
                    let mut c = Compress::new(Compression::new(6), false);
                    client_frame(RSV1, OP_TEXT, &deflate(&mut c, m))
                } else {
                    client_frame(0, OP_TEXT, m)
                }
            })
            .collect(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = server.addr;
    let pid = server.pid();
    let warmup = Duration::from_secs_f64(o.warmup);
    let window = Duration::from_secs_f64(o.seconds);
    let n = o.throughput_connections;
    rt.block_on(async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let count = Rc::new(Cell::new(0u64));
                let wire = Rc::new(Cell::new(0u64));
                let stop = Rc::new(Cell::new(false));
                let mut tasks = Vec::new();
                for conn in 0..n {
                    let mut s = tokio::net::TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    let offer = if compressed {
                        "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
                    } else {
                        ""
                    };
                    s.write_all(
                        format!(
                            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
                             Sec-WebSocket-Version: 13\r\n{offer}\r\n"
                        )
                        .as_bytes(),
                    )
                    .await?;
                    let mut buf = Vec::new();
                    let head = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            break head;
                        }
                        let mut chunk = [0u8; 4096];
                        let k = s.read(&mut chunk).await?;
                        ensure!(k > 0, "closed during the handshake");
                        buf.extend_from_slice(&chunk[..k]);
                    };
                    ensure!(head.starts_with("HTTP/1.1 101"), "refused: {head}");
                    ensure!(
                        head.to_ascii_lowercase().contains("sec-websocket-extensions")
                            == compressed,
                        "unexpected negotiation: {head}"
                    );
                    let (frames, messages) = (frames.clone(), messages.clone());
                    let (count, wire, stop) = (count.clone(), wire.clone(), stop.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        let mut d = Decompress::new(false);
                        let mut chunk = vec![0u8; 16384];
                        let mut i = conn;
                        while !stop.get() {
                            let k = i % frames.len();
                            i += 1;
                            s.write_all(&frames[k]).await?;
                            let (rsv1, payload, used) = loop {
                                if let Some(((fin, rsv1, _op, payload), used)) = parse_frame(&buf) {
                                    ensure!(fin, "fragmented echo");
                                    break (rsv1, payload, used);
                                }
                                let got = s.read(&mut chunk).await?;
                                ensure!(got > 0, "connection closed");
                                buf.extend_from_slice(&chunk[..got]);
                            };
                            buf.drain(..used);
                            wire.set(wire.get() + used as u64);
                            let echo = if rsv1 {
                                inflate(&mut d, &payload, messages[k].len())?
                            } else {
                                payload
                            };
                            ensure!(echo == messages[k], "echo differs");
                            count.set(count.get() + 1);
                        }
                        s.write_all(&client_frame(0, OP_CLOSE, &1000u16.to_be_bytes()))
                            .await?;
                        anyhow::Ok(())
                    }));
                }
                tokio::time::sleep(warmup).await;
                let (c0, w0, t0, cpu0) = (count.get(), wire.get(), Instant::now(), cpu_ticks(pid)?);
                tokio::time::sleep(window).await;
                let (c1, w1, t1, cpu1) = (count.get(), wire.get(), Instant::now(), cpu_ticks(pid)?);
                stop.set(true);
                for t in tasks {
                    t.await??;
                }
                Ok(Window {
                    messages: c1 - c0,
                    seconds: (t1 - t0).as_secs_f64(),
                    server_cpu: (cpu1 - cpu0) as f64 / clock_ticks_per_second(),
                    wire_in: w1 - w0,
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
    // message then finds its compressor's ~370 KiB state cold in the caches.
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
        .map(|m| deflate(&mut Compress::new(Compression::new(6), false), m))
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
// Server processes and /proc

struct Server {
    label: String,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(host: &Path, guest: &Path, args: &[&str], label: &str) -> Result<Server> {
        let addr = StdTcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::env::temp_dir().join(format!(
            "wsbox-bench-deflate-{}-{}.log",
            std::process::id(),
            label.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let out = fs::File::create(&log)?;
        let mut cmd = Command::new(host);
        cmd.arg("serve")
            .arg(guest)
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        // SAFETY: the closure only makes one async-signal-safe system call.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let mut server = Server {
            label: label.to_owned(),
            child,
            addr,
            log,
        };
        eprintln!("{label}: host pid {} on {addr} {args:?}", server.pid());
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            server.ensure_running()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{label}: the host did not listen"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            bail!("{}: the host exited: {status}\n{log}", self.label);
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tck > 0 { tck as f64 } else { 100.0 }
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let mut next = || -> Result<u64> { Ok(fields.next().context("short stat")?.parse()?) };
    Ok(next()? + next()?)
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?)
}
