//! Echo benchmark: round trips through the wsbox host running `echo.wasm`, and through a native
//! tokio-tungstenite echo server, measured the same way in the same run (DESIGN.md §5).
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p echo
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
//! Both servers are separate processes on 127.0.0.1 (the native one, tokio-tungstenite from
//! `support/peers.rs`, is this binary re-executed with the hidden `--serve-native ADDR` flag) and
//! are killed when the bench ends, also on error or panic (a guard's `Drop`), and should the bench
//! itself be killed (`PR_SET_PDEATHSIG`). `rows` measures wsbox against fastwebsockets too.
//!
//! The client is deliberately thin, as it shares the machine (`support/echo_client.rs`).

mod support;

use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use support::peers::Peer;
use support::{
    Common, Kind, Window, bench_main, clock_ticks_per_second, echo_client, measure_window, number,
    rss_kib, serve_command,
};

const USAGE: &str = "\
usage: cargo bench -p host --bench echo -- [options]

  --connections N     concurrent connections                           [100]
  --inflight LIST     messages in flight per connection, one run each  [1,16]
  --size BYTES        message payload size                             [32]
  --text              send text messages (default: binary)
  --seconds SECS      measured window per run                          [5]
  --warmup SECS       warm-up before each window                       [1]
  --only KIND         run only `wsbox` or only `native`
  --host-bin PATH     wsbox host binary     [<target>/release/host]
  --guest PATH        echo guest component  [<target>/wasm32-wasip2/guest/echo.wasm]
  --host-arg ARG      one more argument to `host serve` (repeatable)
  --client-threads N  client threads, each a current-thread runtime    [1]
  --native-as-wsbox   validation: run the native server in the wsbox slot too
                      (the wsbox/native ratios should then come out near 1.00)
  --metrics           also run wsbox with --metrics-listen (as wsbox+metrics),
                      to measure what counting costs
  --repeat N          with --metrics: run the wsbox, wsbox+metrics pair N times
                      (ABBA order) and report each pair's ratio and the median [1]

<target> is $CARGO_TARGET_DIR, else <workspace>/target.
";

/// Time for a server's memory to settle once all idle connections are open.
const SETTLE: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    bench_main(
        USAGE,
        |addr| Peer::Tungstenite.serve(addr),
        Options::parse,
        run,
    )
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug)]
struct Options {
    connections: usize,
    inflight: Vec<usize>,
    size: usize,
    /// Also run wsbox with `--metrics-listen`.
    metrics: bool,
    /// How many wsbox, wsbox+metrics pairs.
    repeat: usize,
    common: Common,
}

impl Options {
    /// Parses the command line; `Ok(None)` means help was asked for.
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let mut o = Options {
            connections: 100,
            inflight: vec![1, 16],
            size: 32,
            metrics: false,
            repeat: 1,
            common: Common::new("echo"),
        };
        let go_on = o.common.parse(args, USAGE, |flag| {
            match flag.name.as_str() {
                "--connections" => o.connections = flag.number()?,
                "--inflight" => {
                    o.inflight = flag
                        .value()?
                        .split(',')
                        .map(|p| number(&flag.name, p.trim()))
                        .collect::<Result<_>>()?
                }
                "--size" => o.size = flag.number()?,
                "--metrics" => o.metrics = true,
                "--repeat" => o.repeat = flag.number()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if !go_on {
            return Ok(None);
        }
        ensure!(o.connections > 0, "--connections must be at least 1");
        ensure!(
            !o.inflight.is_empty() && o.inflight.iter().all(|&p| p > 0),
            "--inflight values must be at least 1"
        );
        Ok(Some(o))
    }

    /// The servers to measure, in order: with `--metrics`, the wsbox and
    /// wsbox+metrics pair `--repeat` times in ABBA order (so a drift of the
    /// machine over the run favours neither), then native.
    fn variants(&self) -> Vec<Variant> {
        let kinds = self.common.kinds();
        if !self.metrics || !kinds.contains(&Kind::Wsbox) {
            return kinds.into_iter().map(Variant::Server).collect();
        }
        let mut variants = Vec::new();
        for i in 0..self.repeat.max(1) {
            let pair = [Variant::Server(Kind::Wsbox), Variant::WsboxMetrics];
            if i % 2 == 0 {
                variants.extend(pair);
            } else {
                variants.extend(pair.into_iter().rev());
            }
        }
        if kinds.contains(&Kind::Native) {
            variants.push(Variant::Server(Kind::Native));
        }
        variants
    }
}

/// One server to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// wsbox or the native peer.
    Server(Kind),
    /// wsbox with `--metrics-listen`.
    WsboxMetrics,
}

// ---------------------------------------------------------------------------------------------
// The run

/// One measured window against one server.
struct Round {
    inflight: usize,
    window: Window,
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
    label: String,
    rounds: Vec<Round>,
    memory: Memory,
}

fn run(o: &Options) -> Result<()> {
    o.common.require_wsbox()?;
    let c = &o.common;
    let tck = clock_ticks_per_second();
    println!(
        "echo: {} connections, {}-byte {} messages, in flight {:?}, {} s window after {} s warm-up, \
         {} client thread(s), CLK_TCK {tck}",
        o.connections,
        o.size,
        if c.text { "text" } else { "binary" },
        o.inflight,
        c.seconds,
        c.warmup,
        c.client_threads,
    );

    let mut results = Vec::new();
    for variant in o.variants() {
        results.push(bench_server(variant, o)?);
    }
    print_report(o, &results);
    Ok(())
}

fn bench_server(variant: Variant, o: &Options) -> Result<ServerResult> {
    let c = &o.common;
    let mut server = match variant {
        Variant::Server(kind) => c.start_server("echo", kind)?,
        Variant::WsboxMetrics => {
            let mut server = support::start_server("echo", Kind::Wsbox, false, |addr| {
                let mut cmd = serve_command(&c.host_bin, &c.guest, addr);
                cmd.args(&c.host_args)
                    .args(["--metrics-listen", "127.0.0.1:0"]);
                cmd
            })?;
            server.label = "wsbox+metrics".into();
            server
        }
    };
    let pid = server.pid();
    let mut rounds = Vec::new();
    let mut memory = None;
    for &inflight in &o.inflight {
        eprintln!(
            "{}: P={inflight}: connecting {} clients",
            server.label, o.connections
        );
        let config = echo_client::Config::new(server.addr, o.size, c.text, inflight);
        let before_kib = if memory.is_none() {
            Some(rss_kib(pid)?)
        } else {
            None
        };
        let clients = echo_client::Clients::connect(config, o.connections, c.client_threads)
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
            server.label, c.warmup, c.seconds
        );
        clients.start();
        let window = measure_window(|| clients.completed(), pid, c.warmup, c.seconds)?;
        let report = clients.stop();
        report.warn(&format!("{} P={inflight}", server.label));
        server.ensure_running()?;

        rounds.push(Round { inflight, window });
        // Let the server retire the closed connections before the next round.
        thread::sleep(Duration::from_millis(200));
    }
    let memory = memory.context("no round was run")?;
    Ok(ServerResult {
        label: server.label.clone(),
        rounds,
        memory,
    })
}

fn print_report(o: &Options, results: &[ServerResult]) {
    println!();
    println!(
        "{:<14} {:>3} {:>12} {:>18} {:>13} {:>18}",
        "server", "P", "msgs/s", "server µs CPU/msg", "server cores", "client µs CPU/msg"
    );
    for r in results {
        for round in &r.rounds {
            let w = &round.window;
            println!(
                "{:<14} {:>3} {:>12.0} {:>18.2} {:>13.2} {:>18.2}",
                r.label,
                round.inflight,
                w.msgs_per_sec(),
                w.server_us_per_msg(),
                w.server_cpu_seconds / w.seconds,
                w.client_us_per_msg(),
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

    // Each wsbox variant against native, and with metrics against without.
    if let Some((native, variants)) = results.split_last()
        && native.label == "native"
    {
        for variant in variants {
            print_ratios(variant, native);
        }
    }
    let pairs: Vec<(&ServerResult, &ServerResult)> = results
        .chunks_exact(2)
        .filter_map(
            |pair| match (pair[0].label.as_str(), pair[1].label.as_str()) {
                ("wsbox", "wsbox+metrics") => Some((&pair[1], &pair[0])),
                ("wsbox+metrics", "wsbox") => Some((&pair[0], &pair[1])),
                _ => None,
            },
        )
        .collect();
    for (metrics, wsbox) in &pairs {
        print_ratios(metrics, wsbox);
    }
    if pairs.len() > 1 {
        println!();
        println!("wsbox+metrics / wsbox, median of {} pairs:", pairs.len());
        println!("{:>3} {:>8} {:>15}", "P", "msgs/s", "server CPU/msg");
        for round in &pairs[0].0.rounds {
            let p = round.inflight;
            let median = |f: fn(&Window) -> f64| {
                let mut ratios: Vec<f64> = pairs
                    .iter()
                    .filter_map(|(m, w)| {
                        let m = m.rounds.iter().find(|r| r.inflight == p)?;
                        let w = w.rounds.iter().find(|r| r.inflight == p)?;
                        Some(f(&m.window) / f(&w.window))
                    })
                    .collect();
                ratios.sort_by(f64::total_cmp);
                ratios[ratios.len() / 2]
            };
            println!(
                "{:>3} {:>7.2}x {:>14.2}x",
                p,
                median(Window::msgs_per_sec),
                median(Window::server_us_per_msg)
            );
        }
    }
}

/// How `a` compares to `b`, round by round.
fn print_ratios(a: &ServerResult, b: &ServerResult) {
    println!();
    println!("{} / {}:", a.label, b.label);
    println!("{:>3} {:>8} {:>15}", "P", "msgs/s", "server CPU/msg");
    for w in &a.rounds {
        if let Some(n) = b.rounds.iter().find(|n| n.inflight == w.inflight) {
            println!(
                "{:>3} {:>7.2}x {:>14.2}x",
                w.inflight,
                w.window.msgs_per_sec() / n.window.msgs_per_sec(),
                w.window.server_us_per_msg() / n.window.server_us_per_msg()
            );
        }
    }
    println!(
        "idle memory per connection: {:.2}x",
        a.memory.kib_per_connection() / b.memory.kib_per_connection()
    );
}
