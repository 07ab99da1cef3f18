//! Fan-out across hosts: one topic with 1,000 subscribers, on one host, and spread over two hosts
//! sharing the topic through Redis (`--broker`), measured the same way in the same run.
//!
//! ```text
//! cargo build --release -p host
//! cargo build --profile guest --target wasm32-wasip2 -p broadcast
//! cargo bench -p host --bench backplane -- [options]      # see USAGE below
//! ```
//!
//! Needs `redis-server` (Debian's package); each run with a broker starts its own on a free
//! loopback port with persistence off, and stops it.
//!
//! Method: N connections (`broadcast.wasm`, path = topic) subscribe to one topic, spread evenly
//! over H hosts; P of them, spread over the hosts too, also publish: open loop, at a fixed total
//! rate, each message a binary payload that starts with its send time. Every other subscriber,
//! on every host, gets every message; the bench reads them all and counts deliveries, and takes
//! publish-to-receive latency from each one. After a warm-up, the deliveries of the messages sent
//! within a fixed window are counted (those still on their way at its end, for 2 s more), with the
//! CPU time (utime + stime from `/proc/<pid>/stat`) of every host process and of
//! Redis over the same window: host CPU per delivery is the hosts' sum over the deliveries.
//!
//! Runs, in order: one host with all N subscribers (the reference), the same with `--broker`
//! (one host: what the broker costs on the publish path, its own messages coming back and
//! skipped), and H hosts sharing Redis.
//!
//! The client is thin, as it shares the machine: raw sockets on one current-thread tokio runtime,
//! frames parsed in place. On a small machine it competes with the hosts; the CPU per delivery is
//! the fairer figure.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use support::{
    Conn, Flags, Log, OP_BINARY, OP_CLOSE, OP_PING, Server, client_frame, clock_ticks_per_second,
    cpu_ticks, free_port, require_file, serve_command, workspace_root,
};

const USAGE: &str = "\
usage: cargo bench -p host --bench backplane -- [options]

  --subscribers N   subscribers of the topic, publishers included   [1000]
  --hosts H         hosts sharing the topic in the broker run       [2]
  --publishers P    publishing subscribers, spread over the hosts   [4]
  --rate R          messages published per second, all together     [100]
  --size BYTES      message payload size (at least 8)               [64]
  --seconds SECS    measured window per run                         [5]
  --warmup SECS     warm-up before each window                      [1]
  --host-bin PATH   wsbox host binary  [<target>/release/host]
  --guest PATH      broadcast guest    [<target>/wasm32-wasip2/guest/broadcast.wasm]

<target> is $CARGO_TARGET_DIR if set, else <workspace>/target.
";

/// The topic: `broadcast.wasm` subscribes a connection to its path.
const TOPIC_PATH: &str = "/bench";
/// How long after the window messages sent in it may still arrive.
const GRACE: Duration = Duration::from_secs(2);
/// Largest frame the client expects.
const MAX_PAYLOAD: usize = 1 << 20;

struct Options {
    subscribers: usize,
    hosts: usize,
    publishers: usize,
    rate: f64,
    size: usize,
    seconds: f64,
    warmup: f64,
    host_bin: PathBuf,
    guest: PathBuf,
}

impl Options {
    fn parse(args: Vec<String>) -> Result<Option<Options>> {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let mut options = Options {
            subscribers: 1000,
            hosts: 2,
            publishers: 4,
            rate: 100.0,
            size: 64,
            seconds: 5.0,
            warmup: 1.0,
            host_bin: target.join("release/host"),
            guest: target.join("wasm32-wasip2/guest/broadcast.wasm"),
        };
        let mut flags = Flags::new(args);
        while let Some(mut flag) = flags.next_flag() {
            match flag.name.as_str() {
                "--subscribers" => options.subscribers = flag.number()?,
                "--hosts" => options.hosts = flag.number()?,
                "--publishers" => options.publishers = flag.number()?,
                "--rate" => options.rate = flag.number()?,
                "--size" => options.size = flag.number()?,
                "--seconds" => options.seconds = flag.number()?,
                "--warmup" => options.warmup = flag.number()?,
                "--host-bin" => options.host_bin = flag.value()?.into(),
                "--guest" => options.guest = flag.value()?.into(),
                "--bench" => {}
                "--help" | "-h" => return Ok(None),
                other => bail!("unknown option {other}\n{USAGE}"),
            }
        }
        ensure!(
            options.size >= 8,
            "--size must be at least 8 (the send time)"
        );
        ensure!(options.hosts >= 1, "--hosts must be at least 1");
        ensure!(
            options.publishers >= 1 && options.publishers <= options.subscribers,
            "--publishers must be 1..=--subscribers"
        );
        ensure!(options.rate > 0.0, "--rate must be positive");
        Ok(Some(options))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match Options::parse(args) {
        Ok(Some(options)) => run(&options),
        Ok(None) => {
            print!("{USAGE}");
            Ok(())
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One run's figures.
struct Figures {
    deliveries: u64,
    seconds: f64,
    host_cpu_seconds: f64,
    redis_cpu_seconds: Option<f64>,
    client_cpu_seconds: f64,
    latencies_us: Vec<u32>,
    published: u64,
}

impl Figures {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[index])
    }

    fn per_delivery_us(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.deliveries.max(1) as f64
    }
}

fn run(options: &Options) -> Result<()> {
    let build = "cargo build --release -p host && \
                 cargo build --profile guest --target wasm32-wasip2 -p broadcast";
    require_file(&options.host_bin, "the host binary", build)?;
    require_file(&options.guest, "the broadcast guest", build)?;
    ensure!(
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "redis-server is missing (apt-get install redis-server)"
    );
    let n = options.subscribers;
    let runs = [
        (format!("1 host × {n}"), 1, false),
        (format!("1 host × {n}, --broker"), 1, true),
        (
            format!("{} hosts × {}, Redis", options.hosts, n / options.hosts),
            options.hosts,
            true,
        ),
    ];
    println!(
        "{} publishers, {} msg/s in all, {} B each, {} s window\n",
        options.publishers, options.rate, options.size, options.seconds
    );
    println!(
        "| run | published/s | deliveries/s | host CPU µs/delivery (sum) | \
         Redis CPU µs/delivery | p50 µs | p99 µs | client CPU µs/delivery |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (label, hosts, broker) in runs {
        let figures = measure(options, hosts, broker).with_context(|| format!("run {label:?}"))?;
        let expected = figures.published as f64 * (n - 1) as f64;
        if (figures.deliveries as f64) < expected * 0.99 {
            eprintln!(
                "{label}: {} deliveries of {} expected: the hosts or the client fell behind",
                figures.deliveries, expected
            );
        }
        println!(
            "| {label} | {:.0} | {:.0} | {:.2} | {} | {:.0} | {:.0} | {:.2} |",
            figures.published as f64 / figures.seconds,
            figures.deliveries as f64 / figures.seconds,
            figures.per_delivery_us(figures.host_cpu_seconds),
            figures
                .redis_cpu_seconds
                .map_or("-".to_owned(), |s| format!(
                    "{:.3}",
                    figures.per_delivery_us(s)
                )),
            figures.percentile(0.5),
            figures.percentile(0.99),
            figures.per_delivery_us(figures.client_cpu_seconds),
        );
    }
    Ok(())
}

/// A `redis-server` for one run; killed when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
}

impl Redis {
    fn start() -> Result<Redis> {
        let addr = free_port()?;
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            ensure!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Redis {
            child,
            url: format!("redis://{addr}"),
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bench's clock: send times are nanoseconds since this.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// What the client tasks share (one thread).
struct Tally {
    /// Deliveries of messages sent within the window.
    deliveries: u64,
    /// Messages published within the window.
    published: u64,
    /// Their publish-to-receive times.
    latencies_us: Vec<u32>,
    /// The window, in [`now_ns`] time: messages sent in it are counted.
    window: std::ops::Range<u64>,
}

fn measure(options: &Options, hosts: usize, broker: bool) -> Result<Figures> {
    let redis = if broker { Some(Redis::start()?) } else { None };
    let mut servers = Vec::new();
    for index in 0..hosts {
        let addr = free_port()?;
        let mut cmd = serve_command(&options.host_bin, &options.guest, addr);
        cmd.args(["--ping-interval", "0", "--idle-timeout", "0"]);
        if let Some(redis) = &redis {
            cmd.args(["--broker", &redis.url]);
        }
        let log = std::env::temp_dir().join(format!(
            "wsbox-backplane-{}-{index}.log",
            std::process::id()
        ));
        servers.push(Server::start(
            &format!("host {index}"),
            cmd,
            addr,
            log,
            Log::Remove,
        )?);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let figures = local.block_on(&runtime, async {
        drive(options, &addrs, &servers, redis.as_ref()).await
    })?;
    for server in &mut servers {
        server.ensure_running()?;
    }
    Ok(figures)
}

async fn drive(
    options: &Options,
    addrs: &[SocketAddr],
    servers: &[Server],
    redis: Option<&Redis>,
) -> Result<Figures> {
    let tally = Rc::new(RefCell::new(Tally {
        deliveries: 0,
        published: 0,
        latencies_us: Vec::new(),
        window: u64::MAX..u64::MAX,
    }));
    let n = options.subscribers;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let addr = addrs[i % addrs.len()];
        let conn = Conn::open_path(addr, TOPIC_PATH, "")
            .await
            .with_context(|| format!("subscriber {i}"))?;
        conns.push(conn);
    }
    // Let every host subscribe its channel before publishing starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop = Rc::new(std::cell::Cell::new(false));
    let interval = Duration::from_secs_f64(options.publishers as f64 / options.rate);
    let mut tasks = Vec::new();
    for (i, conn) in conns.into_iter().enumerate() {
        // Publishers: the first P connections, which alternate between hosts.
        let publish = (i < options.publishers).then_some(interval);
        let tally = tally.clone();
        let stop = stop.clone();
        let size = options.size;
        tasks.push(tokio::task::spawn_local(async move {
            subscriber(conn, publish, size, tally, stop).await
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(options.warmup)).await;
    let tck = clock_ticks_per_second();
    let pids: Vec<u32> = servers.iter().map(Server::pid).collect();
    let host_ticks = |pids: &[u32]| -> Result<u64> {
        pids.iter().map(|&pid| cpu_ticks(pid)).sum::<Result<u64>>()
    };
    let redis_pid = redis.map(|r| r.child.id());
    let start = (
        Instant::now(),
        host_ticks(&pids)?,
        redis_pid.map(cpu_ticks).transpose()?,
        cpu_ticks(std::process::id())?,
    );
    let window_start = now_ns();
    tally.borrow_mut().window = window_start..u64::MAX;
    tokio::time::sleep(Duration::from_secs_f64(options.seconds)).await;
    tally.borrow_mut().window = window_start..now_ns();
    let end = (
        Instant::now(),
        host_ticks(&pids)?,
        redis_pid.map(cpu_ticks).transpose()?,
        cpu_ticks(std::process::id())?,
    );
    // Messages sent in the window and still on their way are counted when
    // they arrive.
    tokio::time::sleep(GRACE).await;
    stop.set(true);
    let (deliveries, published, mut latencies_us) = {
        let mut tally = tally.borrow_mut();
        (
            tally.deliveries,
            tally.published,
            std::mem::take(&mut tally.latencies_us),
        )
    };
    for task in tasks {
        task.await??;
    }
    latencies_us.sort_unstable();
    Ok(Figures {
        deliveries,
        seconds: (end.0 - start.0).as_secs_f64(),
        host_cpu_seconds: (end.1 - start.1) as f64 / tck,
        redis_cpu_seconds: match (start.2, end.2) {
            (Some(a), Some(b)) => Some((b - a) as f64 / tck),
            _ => None,
        },
        client_cpu_seconds: (end.3 - start.3) as f64 / tck,
        latencies_us,
        published,
    })
}

/// One subscriber: count and time every message; publish every `publish`
/// if it is a publisher. Ends with a closing handshake once `stop` is set.
async fn subscriber(
    mut conn: Conn,
    publish: Option<Duration>,
    size: usize,
    tally: Rc<RefCell<Tally>>,
    stop: Rc<std::cell::Cell<bool>>,
) -> Result<()> {
    let mut ticker = tokio::time::interval(publish.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut payload = vec![0u8; size];
    let mut check = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = ticker.tick(), if publish.is_some() && !stop.get() => {
                let sent = now_ns();
                payload[..8].copy_from_slice(&sent.to_be_bytes());
                conn.send(&client_frame(0, OP_BINARY, &payload)).await?;
                let mut tally = tally.borrow_mut();
                if tally.window.contains(&sent) {
                    tally.published += 1;
                }
            }
            frame = conn.read_frame(MAX_PAYLOAD) => {
                let frame = frame?;
                match frame.opcode() {
                    OP_BINARY => {
                        let sent = conn.payload(&frame)[..8].try_into().map(u64::from_be_bytes)?;
                        let latency = now_ns().saturating_sub(sent) / 1000;
                        let mut tally = tally.borrow_mut();
                        if tally.window.contains(&sent) {
                            tally.deliveries += 1;
                            tally.latencies_us.push(u32::try_from(latency).unwrap_or(u32::MAX));
                        }
                    }
                    OP_PING | OP_CLOSE => bail!("unexpected frame {}", frame.opcode()),
                    _ => {}
                }
            }
            _ = check.tick() => {
                if stop.get() {
                    return Ok(());
                }
            }
        }
    }
}
