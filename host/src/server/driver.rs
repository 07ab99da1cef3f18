//! Drives one connection's socket: moves bytes between the socket and the
//! protocol state machine, and time into it. It decides nothing itself.
//!
//! The reader and the writer are futures polled by the connection's task,
//! together with its guest, so a message never crosses threads on its way
//! from the socket to the guest and back. That shape gives batching for
//! free: the reader decodes everything one `read` returned, the guest drains
//! it and queues its answers, and the writer sends everything queued in one
//! `write` when the guest blocks again.
//!
//! Each of the three parts has a waker of its own, so a wake-up polls only
//! the part it was for: resuming the guest's fiber to find it still waiting
//! costs two stack switches, and a plain `join!` would pay them for every
//! socket write and every read that was not for the guest.

use std::cell::RefCell;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};

use crate::metrics::{Metrics, TRAFFIC_FLUSH_INTERVAL};
use crate::protocol::ProtocolError;
use crate::protocol::connection::{Connection, ReadStatus, TimeoutAction, WriteStatus};
use crate::protocol::outbox::Outbox;
use crate::server::parts::{Part, Parts};
use crate::session::ConnectionHandle;

/// The most a read asks for while the peer sends little, and where reads
/// start again after a small one.
const READ_MIN: usize = 4 << 10;

/// The largest single read: reads double up to this while each one fills
/// what was offered (a peer streaming large messages).
const READ_MAX: usize = 64 << 10;

thread_local! {
    /// This thread's read buffer, shared by all its connections. A
    /// connection reads into it while it holds no partial frame of its own;
    /// the frames read are decoded before its task yields, and only a
    /// partial frame left over is copied into the connection's own buffer.
    /// So an idle connection holds no read buffer at all, and a complete
    /// small frame costs no buffer of its own. It grows once per thread, to
    /// [`READ_MAX`] at most.
    static SHARED_READS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// How much the next read asks for: [`READ_MIN`] while the peer sends
/// little, doubling to [`READ_MAX`] while reads fill what was offered, and
/// back to [`READ_MIN`] after a small read or once the connection is idle.
#[derive(Debug)]
struct ReadSizing {
    next: usize,
}

impl ReadSizing {
    fn new() -> Self {
        Self { next: READ_MIN }
    }

    /// Make room in `buf` for the next read; the room offered.
    fn prepare(&self, buf: &mut BytesMut) -> usize {
        if buf.capacity() - buf.len() < self.next {
            buf.reserve(self.next);
        }
        buf.capacity() - buf.len()
    }

    /// Learn from a read of `read` bytes into `offered` bytes of room.
    fn after_read(&mut self, read: usize, offered: usize) {
        if read >= offered {
            self.next = (self.next * 2).min(READ_MAX);
        } else if read < READ_MIN {
            self.next = READ_MIN;
        }
    }

    /// A large frame's payload is being read straight into its message:
    /// keep reads through the buffer small, so the next frame's payload
    /// goes straight in too.
    fn direct(&mut self) {
        self.next = READ_MIN;
    }

    /// The connection has gone quiet: start small again.
    fn idle(&mut self) {
        self.next = READ_MIN;
    }
}

/// A connection's own read buffer, once it holds nothing: given back, so
/// that only connections in the middle of a frame keep one.
fn release_if_empty(own: &mut BytesMut) {
    if own.is_empty() && own.capacity() > 0 {
        *own = BytesMut::new();
    }
}

/// Read once from `socket` into this thread's [`SHARED_READS`], at most
/// `limit` bytes. The buffer is borrowed only within each poll: while the
/// read waits, no connection holds it.
async fn read_shared<R: AsyncRead + Unpin>(socket: &mut R, limit: usize) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        SHARED_READS.with_borrow_mut(|shared| {
            // A no-op while the buffer has the room.
            shared.reserve(limit);
            let mut room = BufMut::limit(&mut *shared, limit);
            let read = socket.read_buf(&mut room);
            std::pin::pin!(read).poll(cx)
        })
    })
    .await
}

/// Drive `conn`'s socket, given as its two halves, beside its guest, until
/// all three are over: the closing handshake done, the peer gone, or the
/// close timeout passed, and the guest returned. `leftover` holds bytes
/// read behind the opening handshake (the client's first frames). With
/// `metrics`, the connection's traffic is added to them now and then (what
/// is left at its end is the caller's to add).
pub async fn run_io<'a, R, W>(
    conn: &'a ConnectionHandle,
    (read_half, write_half): (R, W),
    leftover: BytesMut,
    metrics: Option<&'a Metrics>,
    guest: Part<'a>,
) where
    R: AsyncRead + Unpin + Send + 'a,
    W: AsyncWrite + Unpin + Send + 'a,
{
    Parts::new([
        guest,
        Box::pin(read_loop(
            conn,
            read_half,
            leftover,
            TrafficFlush::new(metrics),
        )),
        Box::pin(write_loop(conn, write_half, TrafficFlush::new(metrics))),
    ])
    .await;
}

/// Adds a connection's traffic to the metrics at most once per
/// [`TRAFFIC_FLUSH_INTERVAL`], inside a state lock taken anyway: no lock,
/// no shared atomic and no clock read per message.
struct TrafficFlush<'a> {
    metrics: Option<&'a Metrics>,
    next: std::time::Instant,
    /// Calls since the clock was last read (by a caller without the time).
    calls: u32,
}

/// A caller without the time reads the clock every this many calls.
const CALLS_PER_CLOCK_READ: u32 = 64;

impl<'a> TrafficFlush<'a> {
    fn new(metrics: Option<&'a Metrics>) -> Self {
        Self {
            metrics,
            next: std::time::Instant::now() + TRAFFIC_FLUSH_INTERVAL,
            calls: 0,
        }
    }

    /// Call with the state locked, with the time if the caller has it.
    fn maybe(&mut self, state: &mut Connection, now: Option<std::time::Instant>) {
        let Some(metrics) = self.metrics else { return };
        let now = match now {
            Some(now) => now,
            None => {
                self.calls += 1;
                if self.calls < CALLS_PER_CLOCK_READ {
                    return;
                }
                self.calls = 0;
                std::time::Instant::now()
            }
        };
        if now >= self.next {
            self.next = now + TRAFFIC_FLUSH_INTERVAL;
            metrics.add_traffic(state.take_unreported_stats());
        }
    }
}

/// What woke the reader.
enum ReadWake {
    Read(std::io::Result<usize>),
    Notified,
    Deadline,
}

async fn read_loop<R: AsyncRead + Unpin>(
    conn: &ConnectionHandle,
    mut socket: R,
    leftover: BytesMut,
    mut flush: TrafficFlush<'_>,
) {
    let mut sizing = ReadSizing::new();
    // Bytes of a frame not yet complete; the last read went here if this
    // was not empty, else into the thread's shared buffer.
    let mut own = leftover;
    // One clock read per wake-up: the time it woke serves the next round.
    let mut now = Instant::now();
    // A read not yet noted as heard from the peer: noted under the next
    // round's lock rather than in a lock of its own.
    let mut heard: Option<Instant> = None;
    // The timer is moved only towards an earlier deadline (or re-armed
    // once it went off): a keep-alive deadline that moves later with every
    // message fires once early and finds nothing to do, instead of costing
    // a timer update per message.
    let mut timer = std::pin::pin!(sleep_until(now));
    let mut timer_at: Option<Instant> = None;
    loop {
        let notified = conn.reader_notified();
        let now_std = now.into_std();
        let (status, deadline, mut loan) = conn.with_state(|state| {
            note_heard(state, &mut heard);
            let error = if own.is_empty() {
                SHARED_READS.with_borrow_mut(|shared| {
                    let error = state.receive_data(shared, now_std);
                    // A partial frame (or, with the reader paused, whole
                    // ones) stays with this connection.
                    if !shared.is_empty() {
                        own.extend_from_slice(shared);
                        shared.clear();
                    }
                    error
                })
            } else {
                state.receive_data(&mut own, now_std)
            };
            if let Some(error) = error {
                log_failure(conn, &error);
            }
            flush.maybe(state, Some(now_std));
            // The rest of a large frame goes straight into its message.
            let loan = state.lend_payload(own.len());
            (state.read_status(), state.poll_timeout(), loan)
        });
        match status {
            ReadStatus::Stop => return,
            ReadStatus::AwaitAnswer => {
                notified.await;
                now = Instant::now();
                continue;
            }
            ReadStatus::Discard => own.clear(),
            ReadStatus::Read | ReadStatus::Paused => {}
        }
        release_if_empty(&mut own);
        let reading = status != ReadStatus::Paused;
        let into_own = !own.is_empty();
        let offered = if reading && loan.is_none() && into_own {
            sizing.prepare(&mut own)
        } else {
            sizing.next
        };
        let deadline = deadline.map(Instant::from_std);
        if let Some(at) = deadline
            && timer_at.is_none_or(|armed| at < armed || armed <= now)
        {
            timer.as_mut().reset(at);
            timer_at = Some(at);
        }
        let wake = tokio::select! {
            read = async {
                match loan.as_mut() {
                    Some(loan) => socket.read_buf(loan).await,
                    None if into_own => socket.read_buf(&mut own).await,
                    None => read_shared(&mut socket, offered).await,
                }
            }, if reading => ReadWake::Read(read),
            () = notified => ReadWake::Notified,
            () = &mut timer, if deadline.is_some() => ReadWake::Deadline,
        };
        now = Instant::now();
        let read = match wake {
            ReadWake::Read(Ok(read)) => read,
            _ => 0,
        };
        if loan.is_some() {
            sizing.direct();
        } else if read > 0 {
            sizing.after_read(read, offered);
        }
        if read > 0 {
            heard = Some(now);
        }
        // A lent buffer goes back whatever woke the reader.
        if let Some(loan) = loan {
            conn.with_state(|state| {
                note_heard(state, &mut heard);
                if let Some(error) = state.repay_payload(loan, now.into_std()) {
                    log_failure(conn, &error);
                }
            });
        }
        match wake {
            ReadWake::Read(Ok(0)) => {
                tracing::debug!(conn = conn.id(), "peer closed TCP");
                conn.with_state(|state| state.receive_eof());
                return;
            }
            ReadWake::Read(Ok(_)) => {}
            ReadWake::Read(Err(error)) => {
                tracing::debug!(conn = conn.id(), %error, "read failed");
                conn.with_state(|state| state.receive_eof());
                return;
            }
            ReadWake::Notified => {}
            ReadWake::Deadline => {
                timer_at = None;
                let action = conn.with_state(|state| {
                    note_heard(state, &mut heard);
                    state.on_timeout(now.into_std())
                });
                match action {
                    TimeoutAction::IdleClose => tracing::info!(conn = conn.id(), "idle timeout"),
                    TimeoutAction::FailedLate => tracing::debug!(
                        conn = conn.id(),
                        "guest did not receive in time; failing now"
                    ),
                    TimeoutAction::CloseTimedOut => {
                        tracing::debug!(conn = conn.id(), "peer did not answer our close in time")
                    }
                    TimeoutAction::Pinged => sizing.idle(),
                    TimeoutAction::Nothing => {}
                }
            }
        }
    }
}

/// Tell the state machine about a read the reader has not reported yet
/// (the peer was heard at that time), under a lock taken anyway.
fn note_heard(state: &mut Connection, heard: &mut Option<Instant>) {
    if let Some(at) = heard.take() {
        state.heard_from_peer(at.into_std());
    }
}

/// Log the protocol error that failed the connection, with its close code.
fn log_failure(conn: &ConnectionHandle, error: &ProtocolError) {
    let code = error.close_code();
    tracing::info!(conn = conn.id(), %error, code = code.0, "failing connection");
}

async fn write_loop<W: AsyncWrite + Unpin>(
    conn: &ConnectionHandle,
    mut socket: W,
    mut flush: TrafficFlush<'_>,
) {
    let mut batch = Outbox::new();
    // A batch written and not yet reported: reported under the next
    // round's lock rather than in a lock of its own.
    let mut wrote = false;
    loop {
        let notified = conn.writer_notified();
        let status = conn.with_state(|state| {
            if std::mem::take(&mut wrote) {
                state.wrote();
            }
            let status = state.poll_write(&mut batch);
            flush.maybe(state, None);
            status
        });
        match status {
            WriteStatus::Stop => return,
            WriteStatus::Finished { shutdown } => {
                if shutdown {
                    let _ = socket.shutdown().await;
                }
                return;
            }
            WriteStatus::Idle => {
                notified.await;
                continue;
            }
            WriteStatus::Write => {}
        }
        if let Err(error) = write_batch(&mut socket, &mut batch).await {
            tracing::debug!(conn = conn.id(), %error, "write failed");
            conn.with_state(|state| state.receive_eof());
            return;
        }
        // Give back a huge buffer rather than keep it for the connection's
        // whole life.
        batch.clear(4 * READ_MAX);
        wrote = true;
    }
}

/// How many pieces one vectored write offers (Linux takes up to 1024).
const WRITE_SLICES: usize = 64;

/// Write all of `batch`: vectored, so large payloads go out from where they
/// are, next to the buffered headers and small frames.
async fn write_batch<W: AsyncWrite + Unpin>(
    socket: &mut W,
    batch: &mut Outbox,
) -> std::io::Result<()> {
    while !batch.is_empty() {
        // The slices are built inside each poll, on the stack: held across
        // the await they would make every connection's task 1 KiB larger.
        // Bytes all in the buffer (small frames only) go in a plain write.
        let written = std::future::poll_fn(|cx| {
            if let Some(bytes) = batch.contiguous() {
                return Pin::new(&mut *socket).poll_write(cx, bytes);
            }
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let filled = batch.io_slices(&mut slices);
            Pin::new(&mut *socket).poll_write_vectored(cx, &slices[..filled])
        })
        .await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        batch.advance(written);
    }
    // Flushing matters for TLS, whose records may wait in its buffer.
    socket.flush().await
}

#[cfg(test)]
mod tests {
    //! The IO glue in-process: the driver over an in-memory pipe, a scripted
    //! guest and client, and paused time, so no test waits on the real
    //! clock.

    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::protocol::connection::{AcceptParams, ConnectionConfig, Outgoing};
    use crate::protocol::frame::{OpCode, apply_mask, decode_header, encode_header};
    use crate::protocol::handshake::{HandshakeLimits, parse_request};
    use crate::session::GuestOutcome;

    const MASK: [u8; 4] = [1, 2, 3, 4];

    fn handle(config: ConnectionConfig) -> ConnectionHandle {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let (request, _) = parse_request(raw, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        let remote = "127.0.0.1:1".parse().unwrap();
        let topics = crate::session::topics::Topics::new(crate::session::topics::TopicsConfig {
            max_backpressure: 1 << 20,
            close_slow_subscribers: false,
            deflate: crate::protocol::deflate::DeflateConfig::default(),
            broker: None,
        });
        ConnectionHandle::new(1, remote, request, Arc::new(config), 1 << 20, topics)
    }

    #[test]
    fn the_request_is_freed_once_released_and_its_path_stays_for_the_access_log() {
        let conn = handle(ConnectionConfig::default());
        let target = conn.with_request(|request| request.target.clone());
        assert_eq!(target.as_deref(), Some("/"));
        conn.accept(AcceptParams::default()).unwrap();
        conn.release_request();
        assert_eq!(conn.with_request(|request| request.target.clone()), None);
        assert_eq!(conn.path(), "/");
        // Answering again is refused, request or not.
        assert!(matches!(
            conn.accept(AcceptParams::default()),
            Err(crate::protocol::connection::AnswerError::AlreadyAnswered)
        ));
    }

    #[test]
    fn reads_double_while_they_fill_and_drop_back_after_a_small_one() {
        let mut sizing = ReadSizing::new();
        let mut buf = BytesMut::new();
        assert!(sizing.prepare(&mut buf) >= READ_MIN);
        let mut asked = Vec::new();
        for _ in 0..6 {
            sizing.after_read(sizing.next, sizing.next);
            asked.push(sizing.next >> 10);
        }
        assert_eq!(asked, [8, 16, 32, 64, 64, 64]);
        sizing.after_read(13, READ_MAX);
        assert_eq!(sizing.next, READ_MIN);
        // A quiet connection starts small again.
        sizing.after_read(READ_MIN, READ_MIN);
        sizing.idle();
        assert_eq!(sizing.next, READ_MIN);
    }

    #[test]
    fn a_connection_keeps_a_read_buffer_only_while_it_holds_part_of_a_frame() {
        let mut sizing = ReadSizing::new();
        let mut own = BytesMut::new();
        for _ in 0..4 {
            let offered = sizing.prepare(&mut own);
            sizing.after_read(offered, offered);
        }
        sizing.prepare(&mut own);
        own.extend_from_slice(b"partial frame");
        release_if_empty(&mut own);
        assert!(own.capacity() >= READ_MAX);
        own.clear();
        release_if_empty(&mut own);
        assert_eq!(own.capacity(), 0);
    }

    #[tokio::test]
    async fn reads_land_in_the_threads_buffer_and_only_a_partial_frame_is_kept() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let conn = handle(ConnectionConfig::default());
        // One and a half frames in one write: the whole one is decoded from
        // the shared buffer, the half moves to the connection's own.
        let first = client_frame(OpCode::Text, b"one");
        let second = client_frame(OpCode::Text, b"two");
        let mut bytes = first.clone();
        bytes.extend_from_slice(&second[..4]);
        client.write_all(&bytes).await.unwrap();
        let reader = read_loop(&conn, server, BytesMut::new(), TrafficFlush::new(None));
        let reading = async {
            // The guest's side: both messages arrive, the second only once
            // its rest is written.
            conn.accept(AcceptParams::default()).unwrap();
            let one = text_of(conn.receive().await);
            assert_eq!(SHARED_READS.with_borrow(|shared| shared.len()), 0);
            client.write_all(&second[4..]).await.unwrap();
            let two = text_of(conn.receive().await);
            drop(client);
            (one, two)
        };
        let ((one, two), ()) = tokio::join!(reading, reader);
        assert_eq!((one.as_str(), two.as_str()), ("one", "two"));
    }

    fn text_of(
        incoming: Result<
            crate::protocol::connection::Incoming,
            crate::protocol::connection::ConnectionError,
        >,
    ) -> String {
        match incoming {
            Ok(crate::protocol::connection::Incoming::Message(
                crate::protocol::DataMessage::Text(text),
            )) => text.to_string(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out, true, false, opcode, payload.len(), Some(MASK));
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], MASK, 0);
        out
    }

    /// Read the 101 response's head.
    async fn read_head(client: &mut DuplexStream) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(client.read_u8().await.unwrap());
        }
        String::from_utf8(head).unwrap()
    }

    /// Read one server frame: (opcode, payload).
    async fn read_frame<R: AsyncRead + Unpin>(client: &mut R) -> (OpCode, Vec<u8>) {
        let mut buf = vec![
            client.read_u8().await.unwrap(),
            client.read_u8().await.unwrap(),
        ];
        loop {
            if let Some((header, len)) = decode_header(&buf).unwrap() {
                let mut payload = vec![0; header.payload_len as usize];
                client.read_exact(&mut payload).await.unwrap();
                assert_eq!(len, buf.len());
                return (OpCode::from_u8(header.opcode).unwrap(), payload);
            }
            buf.push(client.read_u8().await.unwrap());
        }
    }

    /// An echo guest: accept, echo every message, return at the close.
    async fn echo_guest(conn: ConnectionHandle) {
        conn.accept(AcceptParams::default()).unwrap();
        while let Ok(incoming) = conn.receive().await {
            if let crate::protocol::connection::Incoming::Message(
                crate::protocol::DataMessage::Text(text),
            ) = incoming
            {
                conn.send(Outgoing::Text(text.into())).await.unwrap();
            }
        }
        conn.guest_finished(&GuestOutcome::Returned);
    }

    /// Send `text` as a text frame and read its echo.
    async fn echo_text(client: &mut DuplexStream, text: &[u8]) {
        client
            .write_all(&client_frame(OpCode::Text, text))
            .await
            .unwrap();
        assert_eq!(read_frame(client).await, (OpCode::Text, text.to_vec()));
    }

    /// The connection's task: the echo guest and the driver, together.
    async fn serve_echo(conn: &ConnectionHandle, server: DuplexStream) {
        run_io(
            conn,
            tokio::io::split(server),
            BytesMut::new(),
            None,
            Box::pin(echo_guest(conn.clone())),
        )
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn echo_and_closing_handshake_over_a_pipe() {
        let conn = handle(ConnectionConfig::default());
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let server_side = serve_echo(&conn, server);
        let client_side = async {
            assert!(read_head(&mut client).await.starts_with("HTTP/1.1 101 "));
            echo_text(&mut client, b"hello").await;
            client
                .write_all(&client_frame(OpCode::Close, &1000u16.to_be_bytes()))
                .await
                .unwrap();
            assert_eq!(
                read_frame(&mut client).await,
                (OpCode::Close, 1000u16.to_be_bytes().to_vec())
            );
            // The server closes TCP after the closing handshake.
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        };
        tokio::join!(server_side, client_side);
    }

    #[tokio::test(start_paused = true)]
    async fn large_messages_are_read_straight_in_and_written_in_pieces() {
        let conn = handle(ConnectionConfig::default());
        // A pipe far smaller than the messages: every write is partial.
        let (server, mut client) = tokio::io::duplex(8 << 10);
        let server_side = serve_echo(&conn, server);
        let client_side = async {
            read_head(&mut client).await;
            for len in [300_000, 16_384, 70_000] {
                let text: String = (0..len)
                    .map(|i| char::from(b'a' + (i % 26) as u8))
                    .collect();
                let frame = client_frame(OpCode::Text, text.as_bytes());
                let (mut reader, mut writer) = tokio::io::split(&mut client);
                let ((), echoed) = tokio::join!(
                    async { writer.write_all(&frame).await.unwrap() },
                    read_frame(&mut reader)
                );
                assert_eq!(echoed.0, OpCode::Text);
                assert!(echoed.1 == text.as_bytes(), "{len} bytes echoed intact");
            }
            client
                .write_all(&client_frame(OpCode::Close, &1000u16.to_be_bytes()))
                .await
                .unwrap();
            read_frame(&mut client).await
        };
        let ((), closed) = tokio::join!(server_side, client_side);
        assert_eq!(closed.0, OpCode::Close);
        let stats = conn.with_state(|state| state.stats());
        assert_eq!(stats.messages_received, 3);
        assert_eq!(stats.messages_sent, 3);
        // Every frame byte counted once, read straight in or not.
        let frame_bytes = (300_000 + 14) + (16_384 + 8) + (70_000 + 14) + (2 + 4 + 2);
        assert_eq!(stats.bytes_received, frame_bytes);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_pinged_then_closed_then_dropped() {
        let conn = handle(ConnectionConfig {
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(5),
            ..ConnectionConfig::default()
        });
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let start = Instant::now();
        let server_side = async {
            serve_echo(&conn, server).await;
            Instant::now()
        };
        let client_side = async {
            read_head(&mut client).await;
            assert_eq!(read_frame(&mut client).await, (OpCode::Ping, Vec::new()));
            assert_eq!(start.elapsed(), Duration::from_secs(30));
            let (opcode, payload) = read_frame(&mut client).await;
            assert_eq!(opcode, OpCode::Close);
            assert_eq!(payload[..2], 1001u16.to_be_bytes());
            assert_eq!(start.elapsed(), Duration::from_secs(60));
            // We never answer: the server gives up after the close timeout.
            client
        };
        let (ended, _client) = tokio::join!(server_side, client_side);
        assert_eq!(ended - start, Duration::from_secs(65));
    }

    /// The keep-alive timer stays where it was first armed while the peer
    /// talks: it goes off early, finds nothing due, and re-arms at the
    /// deadline the last message set. The ping comes one interval after the
    /// peer fell silent, not one interval after the timer was first armed.
    #[tokio::test(start_paused = true)]
    async fn a_talking_peer_moves_the_ping_to_an_interval_after_its_last_message() {
        let conn = handle(ConnectionConfig {
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            ..ConnectionConfig::default()
        });
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let server_side = serve_echo(&conn, server);
        let client_side = async {
            read_head(&mut client).await;
            let start = Instant::now();
            // A message every 10 s for 50 s: past the first armed deadline
            // (30 s) and the idle timeout (60 s) had nobody spoken.
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                echo_text(&mut client, b"hi").await;
            }
            assert_eq!(start.elapsed(), Duration::from_secs(50));
            // Silent from here: pinged 30 s after the last message.
            assert_eq!(read_frame(&mut client).await, (OpCode::Ping, Vec::new()));
            assert_eq!(start.elapsed(), Duration::from_secs(80));
            client
                .write_all(&client_frame(OpCode::Close, &1000u16.to_be_bytes()))
                .await
                .unwrap();
            let (opcode, _) = read_frame(&mut client).await;
            assert_eq!(opcode, OpCode::Close);
        };
        tokio::join!(server_side, client_side);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_gone_mid_message_ends_the_guest() {
        let conn = handle(ConnectionConfig::default());
        let (server, mut client) = tokio::io::duplex(1 << 16);
        let server_side = serve_echo(&conn, server);
        let client_side = async {
            read_head(&mut client).await;
            let frame = client_frame(OpCode::Text, b"never finished");
            client.write_all(&frame[..6]).await.unwrap();
            drop(client);
        };
        tokio::join!(server_side, client_side);
        assert!(conn.with_state(|state| state.is_gone()));
    }
}
