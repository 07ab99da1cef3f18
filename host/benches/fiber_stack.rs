//! How deep the host's calls go on a guest's fiber stack, and how many of the stack's pages a
//! live connection therefore keeps resident.
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p echo
//! cargo bench -p host --bench fiber_stack -- [options]      # see USAGE below
//! ```
//!
//! Every guest instance runs on a fiber stack of its own (`--guest-stack` plus 1 MiB for the
//! host's calls); a page of it that a call once reached stays resident until the connection ends,
//! so an idle connection costs one 4 KiB page per page its deepest call touched. The deepest calls
//! are the host's: a guest's import enters wasmtime (about 2.5 KB of frames from the fiber's start
//! to the host function), then the host's code. This bench shows how much of the first page is
//! left, so that a change which pushes a common path onto a second page (4 KiB more per idle
//! connection) shows up here rather than as a puzzling step in `rows`' idle row.
//!
//! For each scenario a fresh `host serve` (with `--decommit-batch 1`, so that no finished
//! instance's stack lingers) gets N connections that do the scenario's steps and then stay open
//! and silent; then each fiber stack (the host's writable mappings of exactly the stack's size) is
//! read from `/proc/PID/mem` (the bench is the host's parent, which Linux allows to read it): its
//! deepest use is the distance from its top to its lowest non-zero byte (the pool hands out
//! zeroed stacks), and its resident KiB come from `/proc/PID/smaps`.
//!
//! Scenarios: `accept` (the opening handshake only: the guest's `accept` call is the deepest),
//! `echo` (one 32 B text message and its echo), `echo-64k` (one 64 KiB binary message),
//! `deflate` (permessage-deflate negotiated, one compressible 4 KiB text message: the host
//! compresses the echo inside the guest's `send`).

mod support;

#[path = "../../tests/interop/deflate_codec.rs"]
#[allow(
    dead_code,
    reason = "shared with the interop tests; this bench uses part of it"
)]
mod deflate_codec;

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use deflate_codec::{deflate_message, inflate_message};
use flate2::{Compress, Compression, Decompress};
use futures_util::{StreamExt as _, stream};
use support::{
    Conn, Flags, Log, OP_BINARY, OP_TEXT, RSV1, Server, bench_main, client_frame, free_port,
    guest_path, raise_open_files_limit, require_file, serve_command, target_dir, user_path,
};
use tokio::time::timeout;
use wsbox::config::HOST_STACK_HEADROOM;

const USAGE: &str = "\
usage: cargo bench -p host --bench fiber_stack -- [options]

  --connections N    connections per scenario                        [200]
  --scenarios LIST   of accept,echo,echo-64k,deflate                  [all]
  --guest-stack KIB  the host's --guest-stack, in KiB                [512]
  --host-bin PATH    wsbox host binary     [<target>/release/host]
  --guest PATH       echo guest            [<target>/wasm32-wasip2/guest/echo.wasm]
  --host-arg ARG     one more argument to `host serve` (repeatable)

<target> is $CARGO_TARGET_DIR, else <workspace>/target.
";

/// How much of each stack's top is read: deeper than any call of the host's goes.
const SCAN_BYTES: usize = 64 << 10;
/// Time for the last guests to go back to waiting before the stacks are read.
const SETTLE: Duration = Duration::from_millis(300);
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Larger than any echo the scenarios expect.
const MAX_PAYLOAD: usize = 1 << 20;

fn main() -> ExitCode {
    bench_main(
        USAGE,
        |_| bail!("fiber_stack has no native peer"),
        Options::parse,
        run,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Accept,
    Echo,
    Echo64k,
    Deflate,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Accept,
        Scenario::Echo,
        Scenario::Echo64k,
        Scenario::Deflate,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::Accept => "accept",
            Scenario::Echo => "echo",
            Scenario::Echo64k => "echo-64k",
            Scenario::Deflate => "deflate",
        }
    }

    fn parse(name: &str) -> Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .with_context(|| {
                format!("no scenario {name:?} (there are accept, echo, echo-64k, deflate)")
            })
    }

    /// One connection's steps: open, then (but for `accept`) one message and its echo.
    async fn run(self, addr: SocketAddr) -> Result<Conn> {
        let offer = match self {
            Scenario::Deflate => "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            _ => "",
        };
        let mut conn = Conn::open(addr, offer).await?;
        let (opcode, message) = match self {
            Scenario::Accept => return Ok(conn),
            Scenario::Echo => (OP_TEXT, vec![b'x'; 32]),
            Scenario::Echo64k => (OP_BINARY, (0..65536u32).map(|i| i as u8).collect()),
            Scenario::Deflate => {
                ensure!(
                    conn.extensions.is_some(),
                    "the host did not negotiate permessage-deflate"
                );
                let text = "{\"user\":\"ada\",\"text\":\"hello\"}".repeat(150);
                (OP_TEXT, text.into_bytes()[..4096].to_vec())
            }
        };
        let frame = if self == Scenario::Deflate {
            let mut compress = Compress::new(Compression::new(6), false);
            client_frame(RSV1, opcode, &deflate_message(&mut compress, &message))
        } else {
            client_frame(0, opcode, &message)
        };
        conn.send(&frame).await.context("sending")?;
        let echo = timeout(IO_TIMEOUT, conn.read_frame(MAX_PAYLOAD))
            .await
            .context("no echo in time")??;
        ensure!(
            echo.fin() && echo.opcode() == opcode,
            "unexpected echo frame"
        );
        let payload = conn.payload(&echo).to_vec();
        let payload = if echo.rsv1() {
            inflate_message(&mut Decompress::new(false), &payload, message.len())?
        } else {
            payload
        };
        ensure!(payload == message, "the echo differs from the message");
        Ok(conn)
    }
}

#[derive(Debug)]
struct Options {
    connections: usize,
    scenarios: Vec<Scenario>,
    guest_stack_kib: usize,
    host_bin: PathBuf,
    guest: PathBuf,
    host_args: Vec<String>,
}

impl Options {
    /// The command line's options, or `None` if it asks for help.
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let mut o = Options {
            connections: 200,
            scenarios: Scenario::ALL.to_vec(),
            guest_stack_kib: 512,
            host_bin: target_dir().join("release/host"),
            guest: guest_path("echo"),
            host_args: Vec::new(),
        };
        let mut flags = Flags::new(args);
        while let Some(mut flag) = flags.next_flag() {
            match flag.name.as_str() {
                "--connections" => o.connections = flag.number()?,
                "--scenarios" => {
                    o.scenarios = flag
                        .value()?
                        .split(',')
                        .map(Scenario::parse)
                        .collect::<Result<_>>()?;
                }
                "--guest-stack" => o.guest_stack_kib = flag.number()?,
                "--host-bin" => o.host_bin = user_path(&flag.value()?),
                "--guest" => o.guest = user_path(&flag.value()?),
                "--host-arg" => o.host_args.push(flag.value()?),
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                _ => bail!("unknown option {:?}\n\n{USAGE}", flag.arg),
            }
        }
        ensure!(o.connections > 0, "--connections must be at least 1");
        Ok(Some(o))
    }
}

/// What the fiber stacks of one scenario's connections held.
struct Stacks {
    /// Stacks with anything on them (one per open connection).
    used: usize,
    /// Deepest and shallowest use, in bytes from the top.
    deepest: usize,
    shallowest: usize,
    /// Resident KiB per used stack.
    resident_kib: f64,
}

fn run(o: &Options) -> Result<()> {
    let build = "cargo build --release -p host && \
                 cargo build --profile guest --target wasm32-wasip2 -p echo";
    require_file(&o.host_bin, "the wsbox host", build)?;
    require_file(&o.guest, "the guest", build)?;
    let limit = raise_open_files_limit()?;
    ensure!(
        limit as usize >= o.connections + 256,
        "the open-file limit ({limit}) is too low for {} connections",
        o.connections
    );
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let page =
        usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).context("the page size")?;
    let stack_bytes = (o.guest_stack_kib << 10) + HOST_STACK_HEADROOM;
    println!(
        "fiber stacks of {} KiB ({} KiB --guest-stack + {} KiB for the host), {} connections \
         per scenario, {}",
        stack_bytes >> 10,
        o.guest_stack_kib,
        HOST_STACK_HEADROOM >> 10,
        o.connections,
        o.host_bin.display()
    );
    println!();
    println!(
        "| scenario | stacks in use | deepest use, bytes | shallowest | left on the first page | resident KiB per stack |"
    );
    println!("|---|---|---|---|---|---|");
    for &scenario in &o.scenarios {
        let stacks = measure(o, scenario, stack_bytes)?;
        let left = match page.checked_sub(stacks.deepest) {
            Some(left) => format!("{left}"),
            None => format!("none: {} pages", stacks.deepest.div_ceil(page)),
        };
        println!(
            "| {} | {} | {} | {} | {left} | {:.1} |",
            scenario.name(),
            stacks.used,
            stacks.deepest,
            stacks.shallowest,
            stacks.resident_kib
        );
        if stacks.used != o.connections {
            eprintln!(
                "warning: {} stacks in use for {} open connections",
                stacks.used, o.connections
            );
        }
    }
    Ok(())
}

fn measure(o: &Options, scenario: Scenario, stack_bytes: usize) -> Result<Stacks> {
    let addr = free_port()?;
    let mut cmd = serve_command(&o.host_bin, &o.guest, addr);
    cmd.args(["--max-connections", &(o.connections + 64).to_string()])
        .args(["--guest-stack", &format!("{}KiB", o.guest_stack_kib)])
        .args(["--decommit-batch", "1"])
        .args(["--ping-interval", "0", "--idle-timeout", "0"])
        .args(&o.host_args);
    let log = std::env::temp_dir().join(format!("wsbox-bench-fiber-stack-{}.log", scenario.name()));
    let mut server = Server::start("wsbox", cmd, addr, log, Log::Keep)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let conns = runtime.block_on(async {
        let opened: Vec<Result<Conn>> = stream::iter(0..o.connections)
            .map(|_| scenario.run(addr))
            .buffer_unordered(32)
            .collect()
            .await;
        opened.into_iter().collect::<Result<Vec<Conn>>>()
    })?;
    thread::sleep(SETTLE);
    server.ensure_running()?;
    let stacks = read_stacks(server.pid(), stack_bytes)?;
    drop(conns);
    Ok(stacks)
}

/// The fiber stacks of process `pid`: its writable private mappings of exactly `stack_bytes`.
fn read_stacks(pid: u32, stack_bytes: usize) -> Result<Stacks> {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let mut mem = fs::File::open(format!("/proc/{pid}/mem"))
        .with_context(|| format!("opening /proc/{pid}/mem"))?;
    let scan = SCAN_BYTES.min(stack_bytes);
    let mut top = vec![0u8; scan];
    let (mut used, mut deepest, mut shallowest, mut resident_kib) = (0, 0, usize::MAX, 0u64);
    // The end address of the stack mapping whose fields come next, if they are a stack's.
    let mut current: Option<u64> = None;
    for line in smaps.lines() {
        if let Some((start, end, perms)) = mapping_header(line) {
            current = (perms == "rw-p" && end - start == stack_bytes as u64).then_some(end);
            continue;
        }
        let (Some(end), Some(rss)) = (current, line.strip_prefix("Rss:")) else {
            continue;
        };
        current = None;
        let rss: u64 = rss.trim().trim_end_matches("kB").trim().parse()?;
        mem.seek(SeekFrom::Start(end - scan as u64))?;
        mem.read_exact(&mut top)
            .with_context(|| format!("reading the stack ending at {end:#x}"))?;
        let depth = scan - top.iter().position(|&b| b != 0).unwrap_or(scan);
        if depth > 0 {
            used += 1;
            deepest = deepest.max(depth);
            shallowest = shallowest.min(depth);
            resident_kib += rss;
        }
    }
    ensure!(used > 0, "no fiber stack of {stack_bytes} bytes in use");
    Ok(Stacks {
        used,
        deepest,
        shallowest,
        resident_kib: resident_kib as f64 / used as f64,
    })
}

/// A mapping's header line of `/proc/PID/smaps` (`start-end perms ...`): start, end, perms.
fn mapping_header(line: &str) -> Option<(u64, u64, &str)> {
    let mut fields = line.split_whitespace();
    let (range, perms) = (fields.next()?, fields.next()?);
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    Some((start, end, perms))
}
