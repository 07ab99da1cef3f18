//! The closed-loop echo client (uWebSockets' `load_test` method): C connections each keep P
//! messages of S bytes in flight, every echo answered at once with a new message. Deliberately
//! thin, as it shares the machine with the server: raw `TcpStream`s on current-thread tokio
//! runtimes ([`ClientThreads`]), pre-built masked frames written with one syscall per batch of
//! echoes, responses parsed in place in a per-connection buffer, no allocation on the message
//! path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use anyhow::{Context as _, Result, ensure};

use super::{
    ClientThreads, Conn, OP_BINARY, OP_TEXT, Report, client_frame, control_frame, split_evenly,
};

/// What every connection of one run sends and expects back.
pub struct Config {
    addr: std::net::SocketAddr,
    opcode: u8,
    payload: Vec<u8>,
    inflight: usize,
    /// `inflight` copies of the masked frame: a batch of k messages is its first k frames.
    frames: Vec<u8>,
    frame_len: usize,
}

impl Config {
    pub fn new(
        addr: std::net::SocketAddr,
        size: usize,
        text: bool,
        inflight: usize,
    ) -> Arc<Config> {
        let opcode = if text { OP_TEXT } else { OP_BINARY };
        // ASCII, so the same bytes are valid as text.
        let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let frame = client_frame(0, opcode, &payload);
        Arc::new(Config {
            addr,
            opcode,
            frame_len: frame.len(),
            frames: frame.repeat(inflight),
            payload,
            inflight,
        })
    }
}

struct Shared {
    completed: AtomicU64,
    stop: AtomicBool,
}

/// Connections spread over client threads, handshaken and waiting for [`Clients::start`].
pub struct Clients {
    shared: Arc<Shared>,
    threads: ClientThreads<()>,
}

impl Clients {
    /// Opens `connections` WebSocket connections on `threads` threads; returns once all are open.
    pub fn connect(config: Arc<Config>, connections: usize, threads: usize) -> Result<Clients> {
        let shared = Arc::new(Shared {
            completed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let tasks = split_evenly(connections, threads)
            .map(|n| {
                let (config, shared) = (config.clone(), shared.clone());
                let task = move |_, conn, _| echo_loop(conn, config.clone(), shared.clone());
                (n, task)
            })
            .collect();
        let threads = ClientThreads::spawn("echo-client", config.addr, "/", tasks)?;
        Ok(Clients { shared, threads })
    }

    /// Starts the closed loop on every connection.
    pub fn start(&self) {
        self.threads.start();
    }

    /// Echoes completed so far, over all connections.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Relaxed)
    }

    /// Stops sending, closes every connection (bounded by [`CLOSE_TIMEOUT`]) and joins the threads.
    ///
    /// [`CLOSE_TIMEOUT`]: super::CLOSE_TIMEOUT
    pub fn stop(mut self) -> Report {
        self.shared.stop.store(true, Relaxed);
        self.threads.stop().0
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        // Before the threads are stopped and joined (when the field is dropped, next).
        self.shared.stop.store(true, Relaxed);
    }
}

/// The closed loop of one connection: answer every echo with a new message until stopped.
async fn echo_loop(mut conn: Conn, config: Arc<Config>, shared: Arc<Shared>) -> Result<()> {
    let max_payload = config.payload.len().max(125);
    let mut control = Vec::new(); // pongs owed to the server; normally never used
    conn.send(&config.frames).await.context("sending")?;
    while !shared.stop.load(Relaxed) {
        conn.fill().await?;
        let mut echoed = 0;
        while let Some(frame) = conn.next_frame(max_payload)? {
            let payload = conn.payload(&frame);
            match frame.opcode() {
                opcode if opcode == config.opcode => {
                    ensure!(
                        frame.fin(),
                        "fragmented echo (this client does not reassemble)"
                    );
                    ensure!(
                        payload == config.payload,
                        "the echo differs from the message sent"
                    );
                    echoed += 1;
                }
                opcode => control_frame(opcode, payload, &mut control)?,
            }
        }
        ensure!(echoed <= config.inflight, "more echoes than messages sent");
        if echoed == 0 && control.is_empty() {
            continue;
        }
        shared.completed.fetch_add(echoed as u64, Relaxed);
        if !control.is_empty() {
            conn.send(&control).await.context("sending a pong")?;
            control.clear();
        }
        if !shared.stop.load(Relaxed) {
            conn.send(&config.frames[..echoed * config.frame_len])
                .await
                .context("sending")?;
        }
    }
    conn.close(max_payload).await.context("closing")
}
