//! What the benches share: command-line flags, server processes (the wsbox host, or the bench
//! binary re-executed as its native peer) and their `/proc` figures, a thin raw WebSocket client,
//! and the load-client threads that drive many of its connections. Each bench includes it with `mod support;` (a `benches/support/`
//! folder is not a bench target of its own).
#![allow(dead_code)] // each bench uses a different part of this module

pub mod echo_client;
pub mod peers;

use std::fs;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::ops::Range;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
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

/// The cargo target directory: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Where the built guest `name` is (the `guest` profile): the first that exists of
/// `<target>/wasm32-wasip2/guest/NAME.wasm` (`cargo build --profile guest --target wasm32-wasip2 -p
/// NAME`) and `<target>/guests/wasm32-wasip2/guest/NAME.wasm` (built by `cargo test`), else the
/// former.
pub fn guest_path(name: &str) -> PathBuf {
    let target = target_dir();
    let built = target.join(format!("wasm32-wasip2/guest/{name}.wasm"));
    let by_tests = target.join(format!("guests/wasm32-wasip2/guest/{name}.wasm"));
    if !built.is_file() && by_tests.is_file() {
        by_tests
    } else {
        built
    }
}

/// A path given on the command line. `cargo bench` runs a bench in the package's directory
/// (`host/`), so a relative path that is not there is taken from the workspace root, where the
/// user most likely typed it.
pub fn user_path(text: &str) -> PathBuf {
    let path = PathBuf::from(text);
    if path.is_relative() && !path.exists() {
        workspace_root().join(path)
    } else {
        path
    }
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

/// The options the benches that compare wsbox with a native peer share.
#[derive(Debug)]
pub struct Common {
    /// Text messages instead of binary.
    pub text: bool,
    /// The measured window, seconds.
    pub seconds: f64,
    /// The warm-up before each window, seconds.
    pub warmup: f64,
    /// Only one of the servers.
    pub only: Option<Kind>,
    pub host_bin: PathBuf,
    pub guest: PathBuf,
    /// Load-client threads.
    pub client_threads: usize,
    /// The native peer in the wsbox slot too, to validate a bench.
    pub native_as_wsbox: bool,
    /// More arguments to `host serve`.
    pub host_args: Vec<String>,
    guest_name: &'static str,
}

impl Common {
    /// The defaults, with the release builds of the host and of the guest named `guest`
    /// ([`guest_path`]).
    pub fn new(guest: &'static str) -> Common {
        Common {
            text: false,
            seconds: 5.0,
            warmup: 1.0,
            only: None,
            host_bin: target_dir().join("release/host"),
            guest: guest_path(guest),
            client_threads: 1,
            native_as_wsbox: false,
            host_args: Vec::new(),
            guest_name: guest,
        }
    }

    /// Parses `args`: each flag goes to `own` first, which returns whether it took it, then to
    /// these options. Returns `Ok(false)` if help was asked for.
    pub fn parse(
        &mut self,
        args: Vec<String>,
        usage: &str,
        mut own: impl FnMut(&mut Flag) -> Result<bool>,
    ) -> Result<bool> {
        let mut flags = Flags::new(args);
        while let Some(mut flag) = flags.next_flag() {
            if own(&mut flag)? {
                continue;
            }
            match flag.name.as_str() {
                "--text" => self.text = true,
                "--binary" => self.text = false,
                "--seconds" => self.seconds = flag.number()?,
                "--warmup" => self.warmup = flag.number()?,
                "--only" => self.only = Some(Kind::parse(&flag.value()?)?),
                "--host-bin" => self.host_bin = user_path(&flag.value()?),
                "--guest" => self.guest = user_path(&flag.value()?),
                "--host-arg" => self.host_args.push(flag.value()?),
                "--client-threads" => self.client_threads = flag.number()?,
                "--native-as-wsbox" => self.native_as_wsbox = true,
                // `cargo bench` passes `--bench` to harness-less benches.
                "--bench" => {}
                "-h" | "--help" => return Ok(false),
                _ => bail!("unknown option {:?}\n\n{usage}", flag.arg),
            }
        }
        ensure!(
            self.seconds > 0.0 && self.warmup >= 0.0,
            "--seconds must be positive and --warmup not negative"
        );
        ensure!(
            self.client_threads > 0,
            "--client-threads must be at least 1"
        );
        Ok(true)
    }

    /// The servers to measure, wsbox first.
    pub fn kinds(&self) -> Vec<Kind> {
        Kind::selected(self.only)
    }

    /// Fails with how to build them unless the host and the guest exist, if wsbox is measured.
    pub fn require_wsbox(&self) -> Result<()> {
        if !self.kinds().contains(&Kind::Wsbox) || self.native_as_wsbox {
            return Ok(());
        }
        require_file(
            &self.host_bin,
            "the wsbox host",
            "cargo build --release -p host",
        )?;
        require_file(
            &self.guest,
            &format!("the {} guest", self.guest_name),
            &format!(
                "cargo build --profile guest --target wasm32-wasip2 -p {}",
                self.guest_name
            ),
        )
    }

    /// Starts the server of `kind` for bench `bench` (see [`start_server`]).
    pub fn start_server(&self, bench: &str, kind: Kind) -> Result<Server> {
        start_server(bench, kind, self.native_as_wsbox, |addr| {
            let mut cmd = serve_command(&self.host_bin, &self.guest, addr);
            cmd.args(&self.host_args);
            cmd
        })
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

/// Which of the two servers a measurement is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// The wsbox host running a guest.
    Wsbox,
    /// The bench's native peer.
    Native,
}

impl Kind {
    /// The value of `--only`: `wsbox` or `native`.
    pub fn parse(text: &str) -> Result<Kind> {
        match text {
            "wsbox" => Ok(Kind::Wsbox),
            "native" => Ok(Kind::Native),
            other => bail!("--only takes `wsbox` or `native`, not {other:?}"),
        }
    }

    /// `[only]`, or both, wsbox first.
    pub fn selected(only: Option<Kind>) -> Vec<Kind> {
        match only {
            Some(kind) => vec![kind],
            None => vec![Kind::Wsbox, Kind::Native],
        }
    }
}

/// The hidden flag that makes a bench binary its own native peer: `--serve-native ADDR`.
pub const SERVE_NATIVE: &str = "--serve-native";
/// The hidden flag that makes a bench binary one of the shared native echo servers of
/// [`peers`]: `--serve-peer NAME ADDR`.
pub const SERVE_PEER: &str = "--serve-peer";

/// A bench's `main`: with [`SERVE_NATIVE`] `ADDR` among the arguments it runs `serve(ADDR)`, the
/// bench's native server, and with [`SERVE_PEER`] `NAME ADDR` the [`peers::Peer`] `NAME`; else it
/// runs the bench with the options `parse` makes of the arguments, or prints `usage` if `parse`
/// says help was asked for (`None`). An error is printed and exits with status 1.
pub fn bench_main<O>(
    usage: &str,
    serve: impl FnOnce(&str) -> Result<()>,
    parse: impl FnOnce(Vec<String>) -> Result<Option<O>>,
    bench: impl FnOnce(&O) -> Result<()>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let after = |flag: &str| args.iter().position(|a| a == flag).map(|i| &args[i + 1..]);
    let result = match (after(SERVE_NATIVE), after(SERVE_PEER)) {
        (Some([addr, ..]), _) => serve(addr),
        (_, Some([name, addr, ..])) => peers::Peer::parse(name).and_then(|peer| peer.serve(addr)),
        (Some(_), _) => Err(anyhow::anyhow!("{SERVE_NATIVE} needs an address")),
        (_, Some(_)) => Err(anyhow::anyhow!("{SERVE_PEER} needs a name and an address")),
        (None, None) => parse(args).and_then(|options| match options {
            Some(options) => bench(&options),
            None => {
                print!("{usage}");
                Ok(())
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the server of `kind` on a free port: the wsbox host as `wsbox(addr)` makes it, or this
/// bench binary as its native peer ([`SERVE_NATIVE`]). With `native_as_wsbox` the native peer
/// takes the wsbox slot too (labelled `wsbox=native`), to validate the bench. The log goes to
/// `<tmp>/wsbox-bench-BENCH-LABEL.log` and is kept.
pub fn start_server(
    bench: &str,
    kind: Kind,
    native_as_wsbox: bool,
    wsbox: impl FnOnce(SocketAddr) -> Command,
) -> Result<Server> {
    let addr = free_port()?;
    let (label, cmd) = match kind {
        Kind::Wsbox if native_as_wsbox => ("wsbox=native", native_command(addr)?),
        Kind::Wsbox => ("wsbox", wsbox(addr)),
        Kind::Native => ("native", native_command(addr)?),
    };
    let log = std::env::temp_dir().join(format!("wsbox-bench-{bench}-{label}.log"));
    Server::start(label, cmd, addr, log, Log::Keep)
}

/// This bench binary, re-executed as its native peer listening on `addr`.
pub fn native_command(addr: SocketAddr) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg(SERVE_NATIVE).arg(addr.to_string());
    Ok(cmd)
}

/// This bench binary, re-executed as the shared native echo server `peer` listening on `addr`.
pub fn peer_command(peer: peers::Peer, addr: SocketAddr) -> Result<Command> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg(SERVE_PEER).arg(peer.name()).arg(addr.to_string());
    Ok(cmd)
}

/// The native peers' accept loop: runs `connection` for every TCP connection accepted on `addr`,
/// on a multi-thread tokio runtime (one worker per core), until killed.
pub fn serve_native<F>(addr: &str, connection: fn(TcpStream) -> F) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("{SERVE_NATIVE}: bad address {addr:?}"))?;
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

/// Raises this process's soft limit on open files to its hard limit (servers started afterwards
/// inherit it), so that a bench can hold thousands of connections; returns the new limit.
pub fn raise_open_files_limit() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to write to.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit, its soft limit not above its hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
        }
    }
    Ok(limit.rlim_cur)
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
    proc_stat(pid).map(|stat| stat.user_ticks + stat.system_ticks)
}

/// What `/proc/PID/stat` counts for a process (all its threads).
pub struct ProcStat {
    /// CPU time in user space, in clock ticks.
    pub user_ticks: u64,
    /// CPU time in the kernel, in clock ticks.
    pub system_ticks: u64,
    /// Page faults served without reading from disk: a page touched for the first time, or again
    /// after the process gave it back (`madvise`, `munmap`).
    pub minor_faults: u64,
}

/// A process's CPU time and page faults so far.
pub fn proc_stat(pid: u32) -> Result<ProcStat> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Field 2, the command name, is parenthesised and may hold spaces: split after its last ')'.
    // What remains starts at field 3; minflt is field 10, utime and stime fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        Ok(fields
            .get(n - 3)
            .with_context(|| format!("{path}: no field {n}"))?
            .parse()?)
    };
    Ok(ProcStat {
        user_ticks: field(14)?,
        system_ticks: field(15)?,
        minor_faults: field(10)?,
    })
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

/// Open file descriptors of a process (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Result<usize> {
    let path = format!("/proc/{pid}/fd");
    Ok(fs::read_dir(&path)
        .with_context(|| format!("reading {path}"))?
        .count())
}

/// Memory mappings of a process (lines of `/proc/PID/maps`), against `vm.max_map_count`.
pub fn map_count(pid: u32) -> Result<usize> {
    let path = format!("/proc/{pid}/maps");
    Ok(fs::read_to_string(&path)
        .with_context(|| format!("reading {path}"))?
        .lines()
        .count())
}

/// The kernel's limit on memory mappings per process, `vm.max_map_count`.
pub fn max_map_count() -> Result<usize> {
    let path = "/proc/sys/vm/max_map_count";
    let text = fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    number("vm.max_map_count", text.trim())
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// Counters read together at the edges of a measured window.
pub struct Sample {
    at: Instant,
    completed: u64,
    server_ticks: u64,
    /// Of `server_ticks`, those spent in the kernel.
    server_system_ticks: u64,
    server_minor_faults: u64,
    client_ticks: u64,
}

impl Sample {
    /// The time, `completed` (echoes so far), and the CPU time of the server and of this process.
    pub fn take(completed: u64, server_pid: u32) -> Result<Sample> {
        let server = proc_stat(server_pid)?;
        Ok(Sample {
            at: Instant::now(),
            completed,
            server_ticks: server.user_ticks + server.system_ticks,
            server_system_ticks: server.system_ticks,
            server_minor_faults: server.minor_faults,
            client_ticks: cpu_ticks(std::process::id())?,
        })
    }
}

/// Waits `warmup` seconds, then measures a window of `seconds`: what `completed` (a running count)
/// and the CPU time of server `pid` and of this process advanced by meanwhile.
pub fn measure_window(
    completed: impl Fn() -> u64,
    server_pid: u32,
    warmup: f64,
    seconds: f64,
) -> Result<Window> {
    thread::sleep(Duration::from_secs_f64(warmup));
    let start = Sample::take(completed(), server_pid)?;
    thread::sleep(Duration::from_secs_f64(seconds));
    let end = Sample::take(completed(), server_pid)?;
    Ok(Window::between(&start, &end))
}

/// One measured window: echoes completed, and the CPU time server and clients used meanwhile.
pub struct Window {
    pub messages: u64,
    pub seconds: f64,
    pub server_cpu_seconds: f64,
    /// Of `server_cpu_seconds`, the time spent in the kernel (system calls, page faults, the
    /// network stack, context switches): a floor no user-space change can go under.
    pub server_system_cpu_seconds: f64,
    /// The server's page faults: a page the server gives back and touches again costs one each
    /// time (with a system call and the other cores' TLB flush to give it back).
    pub server_minor_faults: u64,
    pub client_cpu_seconds: f64,
}

impl Window {
    pub fn between(start: &Sample, end: &Sample) -> Window {
        let tck = clock_ticks_per_second();
        Window {
            messages: end.completed - start.completed,
            seconds: (end.at - start.at).as_secs_f64(),
            server_cpu_seconds: (end.server_ticks - start.server_ticks) as f64 / tck,
            server_system_cpu_seconds: (end.server_system_ticks - start.server_system_ticks) as f64
                / tck,
            server_minor_faults: end.server_minor_faults - start.server_minor_faults,
            client_cpu_seconds: (end.client_ticks - start.client_ticks) as f64 / tck,
        }
    }

    pub fn msgs_per_sec(&self) -> f64 {
        self.messages as f64 / self.seconds
    }

    pub fn server_us_per_msg(&self) -> f64 {
        self.per_message_us(self.server_cpu_seconds)
    }

    pub fn server_system_us_per_msg(&self) -> f64 {
        self.per_message_us(self.server_system_cpu_seconds)
    }

    pub fn server_faults_per_msg(&self) -> f64 {
        self.per_message(self.server_minor_faults as f64)
    }

    pub fn client_us_per_msg(&self) -> f64 {
        self.per_message_us(self.client_cpu_seconds)
    }

    fn per_message_us(&self, cpu_seconds: f64) -> f64 {
        self.per_message(cpu_seconds * 1e6)
    }

    /// `total` over the window, per message completed in it (NaN if none was).
    fn per_message(&self, total: f64) -> f64 {
        if self.messages == 0 {
            f64::NAN
        } else {
            total / self.messages as f64
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
    /// Connects and completes the opening handshake for `/`, with `extra_headers` (each line
    /// ending in CRLF) in the request; both bounded by [`CONNECT_TIMEOUT`].
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

    /// After the closing handshake: waits (bounded by [`CLOSE_TIMEOUT`]) for the server to close
    /// TCP, discarding anything it still sends. The side that closes first keeps the TIME_WAIT
    /// state; were it the client, a bench opening thousands of connections a second would run
    /// out of local ports.
    pub async fn closed(&mut self) -> Result<()> {
        let drain = async {
            while self.stream.read(&mut self.buf).await? > 0 {}
            std::io::Result::Ok(())
        };
        timeout(CLOSE_TIMEOUT, drain)
            .await
            .context("the server did not close TCP after the closing handshake")?
            .context("reading to EOF")
    }
}

/// Handles a server frame that is not a data message: a ping's pong is appended to `control` (to
/// be sent), a pong is ignored, and a close or an unknown opcode is an error.
pub fn control_frame(opcode: u8, payload: &[u8], control: &mut Vec<u8>) -> Result<()> {
    match opcode {
        OP_PING => control.extend(client_frame(0, OP_PONG, payload)),
        OP_PONG => {}
        OP_CLOSE => bail!(
            "the server closed the connection: {}",
            describe_close(payload)
        ),
        opcode => bail!("unexpected frame, opcode {opcode:#x}"),
    }
    Ok(())
}

/// What a close frame's payload says: its code and reason.
pub fn describe_close(payload: &[u8]) -> String {
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

// ---------------------------------------------------------------------------------------------
// Load-client threads

/// Bound on the closing handshakes after a run.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the bench's main thread has its client threads: all connections open, running, stopping.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Connected,
    Run,
    Stop,
}

/// Problems seen by the connections of one run.
#[derive(Default)]
pub struct Report {
    failed: usize,
    unclosed: usize,
    first_error: Option<String>,
}

impl Report {
    /// Counts a connection that failed with `error`.
    pub fn fail(&mut self, error: anyhow::Error) {
        self.failed += 1;
        self.first_error.get_or_insert_with(|| format!("{error:#}"));
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Report) {
        self.failed += other.failed;
        self.unclosed += other.unclosed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Connections that failed, and that did not close in time.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Prints what went wrong, if anything, to stderr; `run` names the run (server and round).
    pub fn warn(&self, run: &str) {
        if self.failed > 0 {
            eprintln!(
                "warning: {run}: {} connection(s) failed; first error: {}",
                self.failed,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        if self.unclosed > 0 {
            eprintln!(
                "warning: {run}: {} connection(s) did not finish the closing handshake within \
                 {CLOSE_TIMEOUT:?}",
                self.unclosed
            );
        }
    }
}

/// `total` split as evenly as possible into `parts` (earlier parts take the remainder).
pub fn split_evenly(total: usize, parts: usize) -> impl Iterator<Item = usize> {
    (0..parts).map(move |t| total / parts + usize::from(t < total % parts))
}

/// Load-client threads, each a current-thread tokio runtime with its share of the connections.
/// A thread opens its connections, reports them open, and on [`Phase::Run`] runs one task per
/// connection; on [`Phase::Stop`] it gives the tasks [`CLOSE_TIMEOUT`] to finish (their closing
/// handshakes) and aborts the rest. Tasks see the phases too and must end on their own once told
/// to stop. Dropping the threads stops and joins them.
pub struct ClientThreads<T> {
    phase: watch::Sender<Phase>,
    threads: Vec<thread::JoinHandle<(Report, Vec<T>)>>,
}

impl<T: Send + 'static> ClientThreads<T> {
    /// Starts one thread (named `NAME-I`) for each `(n, task)` of `threads`: it opens `n`
    /// connections to `path` on `addr` and, on [`Phase::Run`], runs `task(index, conn, phase)` for
    /// each, `index` counting the connections of all threads from 0. Returns once every
    /// connection is open, or with the first error.
    pub fn spawn<F, Fut>(
        name: &str,
        addr: SocketAddr,
        path: &str,
        threads: Vec<(usize, F)>,
    ) -> Result<ClientThreads<T>>
    where
        F: Fn(usize, Conn, watch::Receiver<Phase>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let (phase, _) = watch::channel(Phase::Connected);
        let (ready_tx, ready_rx) = mpsc::channel();
        // From here on, dropping `clients` (on an error below) stops and joins the threads.
        let mut clients = ClientThreads {
            phase,
            threads: Vec::new(),
        };
        let mut first_index = 0;
        for (t, (connections, task)) in threads.into_iter().enumerate() {
            if connections == 0 {
                continue;
            }
            let (phase, ready, path) =
                (clients.phase.subscribe(), ready_tx.clone(), path.to_owned());
            let handle = thread::Builder::new()
                .name(format!("{name}-{t}"))
                .spawn(move || {
                    client_thread(
                        addr,
                        path,
                        first_index..first_index + connections,
                        task,
                        phase,
                        ready,
                    )
                })
                .context("spawning a client thread")?;
            clients.threads.push(handle);
            first_index += connections;
        }
        drop(ready_tx);
        for _ in 0..clients.threads.len() {
            match ready_rx.recv_timeout(CONNECT_TIMEOUT * 2) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bail!("{e}"),
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "client threads did not connect within {:?}",
                    CONNECT_TIMEOUT * 2
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("a client thread ended before connecting")
                }
            }
        }
        Ok(clients)
    }

    /// Starts the tasks on every connection.
    pub fn start(&self) {
        self.phase.send_replace(Phase::Run);
    }

    /// Tells the tasks to stop, joins the threads, and returns what the tasks returned (in no
    /// particular order) and what went wrong.
    pub fn stop(&mut self) -> (Report, Vec<T>) {
        self.phase.send_replace(Phase::Stop);
        let mut report = Report::default();
        let mut outputs = Vec::new();
        for handle in self.threads.drain(..) {
            match handle.join() {
                Ok((r, o)) => {
                    report.merge(r);
                    outputs.extend(o);
                }
                Err(_) => report.fail(anyhow::anyhow!("a client thread panicked")),
            }
        }
        (report, outputs)
    }
}

impl<T> Drop for ClientThreads<T> {
    fn drop(&mut self) {
        self.phase.send_replace(Phase::Stop);
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// The body of one client thread (see [`ClientThreads`]).
fn client_thread<T, F, Fut>(
    addr: SocketAddr,
    path: String,
    indices: Range<usize>,
    task: F,
    mut phase: watch::Receiver<Phase>,
    ready: mpsc::Sender<Result<(), String>>,
) -> (Report, Vec<T>)
where
    T: Send + 'static,
    F: Fn(usize, Conn, watch::Receiver<Phase>) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("building a client runtime: {e}")));
            return (Report::default(), Vec::new());
        }
    };
    runtime.block_on(async move {
        let mut connecting = JoinSet::new();
        for index in indices {
            let path = path.clone();
            connecting.spawn(async move { (index, Conn::open_path(addr, &path, "").await) });
        }
        let mut conns = Vec::with_capacity(connecting.len());
        while let Some(joined) = connecting.join_next().await {
            match joined {
                Ok((index, Ok(conn))) => conns.push((index, conn)),
                Ok((_, Err(e))) => {
                    let _ = ready.send(Err(format!("{e:#}")));
                    return (Report::default(), Vec::new());
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("{e:#}")));
                    return (Report::default(), Vec::new());
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
            return (Report::default(), Vec::new());
        }
        let mut running = JoinSet::new();
        for (index, conn) in conns {
            running.spawn(task(index, conn, phase.clone()));
        }
        let _ = phase.wait_for(|p| *p == Phase::Stop).await;

        let mut report = Report::default();
        let mut outputs = Vec::new();
        let deadline = tokio::time::sleep(CLOSE_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = running.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(output))) => outputs.push(output),
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
        (report, outputs)
    })
}
