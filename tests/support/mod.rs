//! Test support: build the guests, run the real `host` binary, and talk to
//! it with a scriptable raw WebSocket client.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod interop;
pub mod metrics;
pub mod twins;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The cargo target dir (`<target>/<profile>/host` is the binary under
/// test).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_host"))
        .parent()
        .and_then(Path::parent)
        .expect("the host binary lives in <target>/<profile>/")
        .to_path_buf()
}

/// `CI` set (to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Whether `program --version` runs.
pub fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Write a line where a person running the tests sees it, even from a
/// passing test: straight to stderr, as libtest's capture would hide an
/// `eprintln!`.
pub fn tell(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A missing tool: fail under CI, else say SKIP and return None. `tests`
/// names what is skipped ("the browser chat test").
pub fn missing_tool<T>(tool: &str, tests: &str) -> Option<T> {
    assert!(!in_ci(), "{tool} is required for {tests} when CI is set");
    tell(&format!(
        "SKIP: {tool} not found; skipping {tests} (set CI to make this an error)"
    ));
    None
}

/// Run `cmd` and panic with its output unless it succeeds.
pub fn run_checked(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Path of guest component `name` (a package: `echo`, `auth`, `broadcast`,
/// `chat`, `misbehave`, `topicker`),
/// built for wasm32-wasip2 once per test process.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_guests);
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "guest {name} was not built: {}",
        path.display()
    );
    path
}

fn build_guests() -> PathBuf {
    // A target dir of its own: the outer cargo holds the lock on its own,
    // and the host's RUSTFLAGS must not leak into wasm builds.
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("guests"),
        None => workspace().join("target").join("guests"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "--quiet",
        ])
        .args([
            "-p",
            "echo",
            "-p",
            "auth",
            "-p",
            "misbehave",
            "-p",
            "topicker",
        ])
        .args(["-p", "broadcast", "-p", "chat"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo to build the guests");
    assert!(
        status.success(),
        "building the guests failed (is the wasm32-wasip2 target installed? \
         `rustup target add wasm32-wasip2`)"
    );
    target_dir.join("wasm32-wasip2").join("guest")
}

/// A running `host serve` process; killed when dropped.
pub struct Host {
    child: Child,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Host {
    /// Start `host serve GUEST --listen 127.0.0.1:0 ARGS...` and wait until it
    /// listens.
    pub fn start(guest_name: &str, args: &[&str]) -> Host {
        Host::start_path(&guest(guest_name), args)
    }

    /// Like [`Host::start`] with a component path.
    pub fn start_path(guest_path: &Path, args: &[&str]) -> Host {
        Host::start_path_within(guest_path, args, Duration::from_secs(120))
    }

    /// Like [`Host::start_path`], waiting up to `wait` for it to listen (a
    /// large component takes long to compile on a loaded machine).
    pub fn start_path_within(guest_path: &Path, args: &[&str], wait: Duration) -> Host {
        let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
            .arg("serve")
            .arg(guest_path)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the host binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line
                    .split("listening on ws://")
                    .nth(1)
                    .or_else(|| line.split("listening on wss://").nth(1))
                    && let Some(tx) = tx.take()
                {
                    // Up to a space (human logs) or a quote (JSON logs).
                    let addr = addr.split(|c: char| c.is_whitespace() || c == '"').next();
                    let _ = tx.send(addr.unwrap_or("").to_owned());
                }
                eprintln!("[host] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(wait) {
            Ok(addr) => addr.parse().expect("the host logs a socket address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "host did not start listening; logs: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        Host { child, addr, logs }
    }

    /// `ws://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Wait (up to 10 s) for a log line containing every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .logs()
                .into_iter()
                .find(|line| needles.iter().all(|needle| line.contains(needle)))
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?}; logs:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child process, e.g. to signal or wait for it.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opcodes, for scripting frames.
pub mod op {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// A frame as the raw client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code and reason of a close frame.
    pub fn close_code(&self) -> Option<(u16, String)> {
        if self.opcode != op::CLOSE || self.payload.len() < 2 {
            return None;
        }
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        Some((
            code,
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        ))
    }
}

/// A WebSocket client that sends exactly the bytes a test scripts, so tests
/// can break the protocol on purpose.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// How long a raw client waits for the server before failing the test.
pub const WAIT: Duration = Duration::from_secs(10);

impl RawClient {
    /// Connect and complete an opening handshake for `path` with extra
    /// header lines; panics unless the server answers 101.
    pub async fn connect(addr: std::net::SocketAddr, path: &str, headers: &[&str]) -> RawClient {
        let (client, head) = RawClient::handshake(addr, path, headers).await;
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "expected 101, got:\n{head}"
        );
        client
    }

    /// Send an opening handshake and return the client and the response
    /// head (status line and headers).
    pub async fn handshake(
        addr: std::net::SocketAddr,
        path: &str,
        headers: &[&str],
    ) -> (RawClient, String) {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for header in headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        RawClient::send_request(addr, request.as_bytes()).await
    }

    /// Send `request` verbatim and read the response head.
    pub async fn send_request(addr: std::net::SocketAddr, request: &[u8]) -> (RawClient, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connecting");
        stream
            .write_all(request)
            .await
            .expect("sending the request");
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head = client.read_head().await;
        (client, head)
    }

    /// Read an HTTP response head (up to the blank line).
    pub async fn read_head(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
                self.buf.drain(..end + 4);
                return head;
            }
            let mut chunk = [0u8; 4096];
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.stream.read(&mut chunk))
                .await
                .expect("timed out waiting for a response")
                .expect("reading the response");
            if n == 0 {
                return String::from_utf8_lossy(&self.buf).into_owned();
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Everything after the head until EOF (e.g. a rejection body).
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("timed out waiting for EOF")
            .expect("reading to EOF");
        rest
    }

    /// Send one masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let bytes = encode_frame(fin, 0, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]));
        self.send_raw(&bytes).await;
    }

    /// Send bytes verbatim.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("sending");
    }

    /// Read the next frame; None at EOF.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((frame, used)) = decode_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 << 10];
            let left = deadline.saturating_duration_since(Instant::now());
            let n = match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("timed out waiting for a frame"),
                Ok(Err(_)) => return None,
                Ok(Ok(n)) => n,
            };
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Read frames until a close frame; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.read_frame().await {
                Some(frame) if frame.opcode == op::CLOSE => {
                    return frame.close_code().unwrap_or((1005, String::new()));
                }
                Some(_) => continue,
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// True once the server has closed TCP (reads EOF within the wait).
    pub async fn expect_eof(&mut self) {
        let mut chunk = [0u8; 1024];
        loop {
            match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
                Err(_) => panic!("server did not close TCP"),
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => continue,
            }
        }
    }
}

/// Encode one frame (client frames are masked).
pub fn encode_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(mask_bit | len as u8),
        len @ 126..=65535 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Decode one (unmasked, server) frame from the front of `buf`.
pub fn decode_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let rsv = (buf[0] >> 4) & 0x7;
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        len => (len as usize, 2),
    };
    let mut key = None;
    if masked {
        if buf.len() < at + 4 {
            return None;
        }
        key = Some([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        at += 4;
    }
    if buf.len() < at + len {
        return None;
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(key) = key {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }
    Some((
        Frame {
            fin,
            rsv,
            opcode,
            payload,
        },
        at + len,
    ))
}

/// A tokio-tungstenite client, for tests that speak WebSocket normally.
pub mod ws {
    use std::time::Duration;

    use futures_util::StreamExt as _;
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::Message;

    use super::{Host, WAIT};

    /// A client connection.
    pub type Client = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// Connect to `path` on `host`.
    pub async fn connect(host: &Host, path: &str) -> Client {
        let (client, _) = tokio_tungstenite::connect_async(host.url(path))
            .await
            .unwrap_or_else(|e| panic!("connecting to {path}: {e}"));
        client
    }

    /// The next data message (pings and pongs skipped).
    pub async fn next(client: &mut Client) -> Message {
        loop {
            let message = timeout(WAIT, client.next())
                .await
                .expect("timed out waiting for a message")
                .expect("the connection ended")
                .expect("a WebSocket error");
            if message.is_text() || message.is_binary() || message.is_close() {
                return message;
            }
        }
    }

    /// Nothing arrives within `window`.
    pub async fn silent(client: &mut Client, window: Duration) {
        if let Ok(Some(message)) = timeout(window, client.next()).await {
            panic!("expected nothing, got {message:?}");
        }
    }
}
