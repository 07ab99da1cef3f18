//! What the benches share: command-line flags, server processes and their `/proc` figures, and a
//! thin raw WebSocket client. Each bench includes it with `mod support;` (a `benches/support/`
//! folder is not a bench target of its own).
#![allow(dead_code)] // each bench uses a different part of this module

use std::fs;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::ops::Range;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long a server may take to start listening (the host compiles the component first).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on each TCP connect and each opening handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The workspace root: the parent of this package's directory.
pub fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// Fails with how to build `path` (`what`) unless it is a file.
pub fn require_file(path: &Path, what: &str, build: &str) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    bail!(
        "{what} is missing: {}\nbuild it first, from {}:\n    {build}",
        path.display(),
        workspace_root().display()
    )
}

// ---------------------------------------------------------------------------------------------
// Command-line flags

/// The command line as flags, each `--name VALUE` or `--name=VALUE`.
pub struct Flags(std::vec::IntoIter<String>);

/// One flag; [`Flag::value`] takes its value.
pub struct Flag<'a> {
    /// The argument as given, for error messages.
    pub arg: String,
    /// The flag without any `=VALUE`.
    pub name: String,
    inline: Option<String>,
    rest: &'a mut std::vec::IntoIter<String>,
}

impl Flags {
    pub fn new(args: Vec<String>) -> Flags {
        Flags(args.into_iter())
    }

    pub fn next_flag(&mut self) -> Option<Flag<'_>> {
        let arg = self.0.next()?;
        let (name, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        Some(Flag {
            arg,
            name,
            inline,
            rest: &mut self.0,
        })
    }
}

impl Flag<'_> {
    /// The flag's value: after its `=`, or else the next argument.
    pub fn value(&mut self) -> Result<String> {
        match self.inline.take() {
            Some(value) => Ok(value),
            None => self
                .rest
                .next()
                .with_context(|| format!("{} needs a value", self.name)),
        }
    }

    /// The flag's value as a number.
    pub fn number<T: std::str::FromStr>(&mut self) -> Result<T>
    where
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let text = self.value()?;
        number(&self.name, &text)
    }
}

/// `text`, a value of `flag`, as a number.
pub fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse()
        .with_context(|| format!("{flag}: not a valid number: {text:?}"))
}

// ---------------------------------------------------------------------------------------------
// Server processes and /proc

/// A server child process; killed when dropped, so it never outlives the bench.
pub struct Server {
    pub label: String,
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    log_after: Log,
}

/// What becomes of a server's log file once the server is gone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Log {
    Keep,
    Remove,
}

impl Server {
    /// Starts `cmd`, a server that is to listen on `addr`, with its output in `log` and
    /// `RUST_LOG=warn` unless set, and waits until it listens. It is killed when the `Server` is
    /// dropped (also on error or panic) and, should the bench itself be killed, by
    /// `PR_SET_PDEATHSIG`.
    pub fn start(
        label: &str,
        mut cmd: Command,
        addr: SocketAddr,
        log: PathBuf,
        log_after: Log,
    ) -> Result<Server> {
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
            label: label.to_owned(),
            addr,
            child,
            log,
            log_after,
        };
        eprintln!(
            "{label}: started (pid {}), listening on {addr}, log in {}",
            server.pid(),
            server.log.display()
        );
        server.wait_listening()?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
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

    pub fn ensure_running(&mut self) -> Result<()> {
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
        if self.log_after == Log::Remove {
            let _ = fs::remove_file(&self.log);
        }
    }
}

/// `host serve GUEST --listen ADDR`: the wsbox host serving `guest` on `addr`.
pub fn serve_command(host: &Path, guest: &Path, addr: SocketAddr) -> Command {
    let mut cmd = Command::new(host);
    cmd.arg("serve")
        .arg(guest)
        .arg("--listen")
        .arg(addr.to_string());
    cmd
}

/// A loopback address with a port that was free a moment ago.
pub fn free_port() -> Result<SocketAddr> {
    let listener = StdTcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tck > 0 { tck as f64 } else { 100.0 }
}

/// CPU time (user + system) a process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
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
pub fn rss_kib(pid: u32) -> Result<u64> {
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
// Measuring

/// Counters read together at the edges of a measured window.
pub struct Sample {
    at: Instant,
    completed: u64,
    server_ticks: u64,
    client_ticks: u64,
}

impl Sample {
    /// The time, `completed` (echoes so far), and the CPU time of the server and of this process.
    pub fn take(completed: u64, server_pid: u32) -> Result<Sample> {
        Ok(Sample {
            at: Instant::now(),
            completed,
            server_ticks: cpu_ticks(server_pid)?,
            client_ticks: cpu_ticks(std::process::id())?,
        })
    }
}

/// One measured window: echoes completed, and the CPU time server and clients used meanwhile.
pub struct Window {
    pub messages: u64,
    pub seconds: f64,
    pub server_cpu_seconds: f64,
    pub client_cpu_seconds: f64,
}

impl Window {
    pub fn between(start: &Sample, end: &Sample) -> Window {
        let tck = clock_ticks_per_second();
        Window {
            messages: end.completed - start.completed,
            seconds: (end.at - start.at).as_secs_f64(),
            server_cpu_seconds: (end.server_ticks - start.server_ticks) as f64 / tck,
            client_cpu_seconds: (end.client_ticks - start.client_ticks) as f64 / tck,
        }
    }

    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.seconds
    }

    pub fn server_us_per_msg(&self) -> f64 {
        self.per_message_us(self.server_cpu_seconds)
    }

    pub fn client_us_per_msg(&self) -> f64 {
        self.per_message_us(self.client_cpu_seconds)
    }

    fn per_message_us(&self, cpu_seconds: f64) -> f64 {
        if self.messages == 0 {
            f64::NAN
        } else {
            cpu_seconds * 1e6 / self.messages as f64
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The raw client

// Frame opcodes (RFC 6455 §5.2).
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// The RFC 6455 §1.3 example key and the accept value it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The RSV1 bit of a frame's first byte: a compressed message (RFC 7692 §6).
pub const RSV1: u8 = 0x40;
const INITIAL_BUFFER: usize = 16 * 1024;
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A complete (unfragmented), masked client frame; `rsv` is 0 or [`RSV1`].
pub fn client_frame(rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | rsv | opcode);
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

/// A frame parsed from the read buffer; `payload` indexes it (see [`Conn::payload`]).
pub struct Frame {
    head: u8,
    payload: Range<usize>,
    /// The whole frame's size on the wire.
    pub len: usize,
}

impl Frame {
    pub fn fin(&self) -> bool {
        self.head & 0x80 != 0
    }
    pub fn rsv1(&self) -> bool {
        self.head & RSV1 != 0
    }
    pub fn opcode(&self) -> u8 {
        self.head & 0x0f
    }
}

/// A client WebSocket connection: the socket and its read buffer (`buf[start..end]` is unparsed).
/// Frames are parsed in place, without allocating.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    pub extensions: Option<String>,
}

impl Conn {
    /// Connects and completes the opening handshake, with `extra_headers` (each line ending in
    /// CRLF) in the request; both bounded by [`CONNECT_TIMEOUT`].
    pub async fn open(addr: SocketAddr, extra_headers: &str) -> Result<Conn> {
        Conn::open_path(addr, "/", extra_headers).await
    }

    /// [`Conn::open`] with the request path `path`.
    pub async fn open_path(addr: SocketAddr, path: &str, extra_headers: &str) -> Result<Conn> {
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
            extensions: None,
        };
        timeout(CONNECT_TIMEOUT, conn.handshake(addr, path, extra_headers))
            .await
            .context("opening handshake timed out")??;
        Ok(conn)
    }

    async fn handshake(&mut self, addr: SocketAddr, path: &str, extra_headers: &str) -> Result<()> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
        );
        self.send(request.as_bytes())
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
        let status = head.split("\r\n").next().unwrap_or_default();
        ensure!(
            status.split_whitespace().nth(1) == Some("101"),
            "handshake refused: {status:?}"
        );
        let header = |name: &str| {
            head.split("\r\n")
                .skip(1)
                .filter_map(|line| line.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim().to_owned())
        };
        let accept = header("sec-websocket-accept");
        ensure!(
            accept.as_deref() == Some(ACCEPT),
            "wrong Sec-WebSocket-Accept: {accept:?}"
        );
        self.extensions = header("sec-websocket-extensions");
        self.start = head_len;
        Ok(())
    }

    /// Writes `bytes` to the socket.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads once more from the socket into the buffer, making room first if it is full.
    pub async fn fill(&mut self) -> Result<()> {
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

    /// Takes the next complete frame out of the buffer, if there is one. RSV1 is accepted only
    /// once an extension was negotiated.
    pub fn next_frame(&mut self, max_payload: usize) -> Result<Option<Frame>> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(None);
        }
        let rsv = if self.extensions.is_some() {
            0x30
        } else {
            0x70
        };
        ensure!(b[0] & rsv == 0, "server frame with RSV bits set");
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
            len: total,
        };
        self.start += total;
        Ok(Some(frame))
    }

    /// The next frame, read from the socket as needed.
    pub async fn read_frame(&mut self, max_payload: usize) -> Result<Frame> {
        loop {
            if let Some(frame) = self.next_frame(max_payload)? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// The payload of `frame`, the frame last taken out of the buffer.
    pub fn payload(&self, frame: &Frame) -> &[u8] {
        &self.buf[frame.payload.clone()]
    }

    /// The closing handshake: send close 1000, skip any messages still in flight, await the reply.
    pub async fn close(&mut self, max_payload: usize) -> Result<()> {
        self.send(&client_frame(0, OP_CLOSE, &1000u16.to_be_bytes()))
            .await?;
        while self
            .read_frame(max_payload)
            .await
            .context("awaiting the server's close frame")?
            .opcode()
            != OP_CLOSE
        {}
        Ok(())
    }
}
