//! One WebSocket connection's IO: the read loop, the write loop, and the
//! handle the guest runtime drives it through.
//!
//! All three parts of a connection (reader, writer, guest) are futures polled
//! by one task, so a message never crosses threads on its way from the socket
//! to the guest and back. They meet in [`Shared`]: a mutex that is never held
//! across an `.await`, plus one [`Notify`] per waiter. That shape gives
//! batching for free: the reader decodes everything one `read` returned, the
//! guest drains it and queues its answers, and the writer sends everything
//! queued in one `write` when the guest blocks again.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use crate::config::ServerConfig;
use crate::protocol::close::MAX_REASON_LEN;
use crate::protocol::deflate::{self, MessageDeflater, MessageInflater, Negotiated};
use crate::protocol::handshake::{self, Request, ResponseError};
use crate::protocol::{CloseCode, DataMessage, Decoder, DecoderConfig, Encoder, Event, OpCode};

/// Size of each socket read; the buffer grows only while a frame needs it.
const READ_CHUNK: usize = 64 << 10;
/// The reader stops reading (so TCP pushes back on the client) while this
/// many bytes of received messages wait for the guest.
const INBOUND_HIGH_WATER: usize = 1 << 20;
/// Largest control frame payload (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// How the guest's `handle` call ended.
#[derive(Debug)]
pub enum GuestOutcome {
    /// `handle` returned.
    Returned,
    /// The guest trapped (panic, out of memory, out of CPU, ...).
    Trapped(String),
}

/// A message the guest receives.
#[derive(Debug)]
pub enum Incoming {
    /// A complete data message.
    Message(DataMessage),
    /// A pong's payload (only when the guest asked for pongs).
    Pong(Vec<u8>),
}

/// A message the guest sends.
#[derive(Clone, Copy, Debug)]
pub enum Outgoing<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
    /// An unsolicited pong (a heartbeat).
    Pong(&'a [u8]),
}

/// Why a connection call could not go on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConnectionError {
    /// The peer sent a close frame; it has been answered.
    #[error("peer closed the connection with {code:?}: {reason}")]
    CloseRequest {
        /// The peer's close code (1005 when its close frame had none).
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The connection is gone or already closing.
    #[error("connection closed")]
    ConnectionClosed,
    /// The arguments break a protocol rule; nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Why `accept` or `reject` failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The subprotocol was not among those the client offered.
    #[error("subprotocol {0:?} was not offered by the client")]
    SubprotocolNotOffered(String),
    /// The response could not be built from the given parts.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// `accept` or `reject` was already called.
    #[error("the handshake was already answered")]
    AlreadyAnswered,
    /// The client is gone.
    #[error("connection closed")]
    ConnectionClosed,
}

/// The guest's choices when accepting (`AcceptRequest` in the seed).
#[derive(Clone, Debug, Default)]
pub struct AcceptParams {
    /// The chosen subprotocol; must be one the client offered.
    pub subprotocol: Option<String>,
    /// Extra headers for the 101 response.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Allow compression on this connection.
    pub compression: bool,
    /// Deliver pongs to `receive`.
    pub receive_pongs: bool,
    /// Tighter message size limit for this connection.
    pub max_message_size: Option<u64>,
}

/// The guest's rejection (`RejectRequest` in the seed).
#[derive(Clone, Debug)]
pub struct RejectParams {
    /// HTTP status, 400-599.
    pub status: u16,
    /// Reason phrase; empty means the standard one.
    pub reason: String,
    /// Extra headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Response body.
    pub body: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the guest to accept or reject.
    Handshake,
    /// Accepted: frames flow.
    Open,
    /// Rejected (or never answered): only the HTTP response is written.
    Rejected,
}

struct State {
    phase: Phase,
    /// Encoded bytes waiting for the writer.
    out: Vec<u8>,
    encoder: Encoder,
    /// Set up at accept time, taken by the reader when it starts.
    decoder: Option<Decoder>,
    inbound: VecDeque<Queued>,
    inbound_bytes: usize,
    /// A protocol error found behind messages the guest has not received
    /// yet: the connection fails once the guest has had them.
    deferred_failure: bool,
    receive_pongs: bool,
    subprotocol: Option<String>,
    extensions: Option<String>,
    /// We have sent (or queued) our close frame; nothing more may be sent.
    close_sent: bool,
    /// The peer's close frame, once received.
    peer_close: Option<(CloseCode, String)>,
    /// `receive` already reported the peer's close to the guest.
    peer_close_reported: bool,
    /// The host closed the connection (shutdown, idle, drain): the guest
    /// sees this as the close request.
    server_close: Option<(CloseCode, String)>,
    /// We failed the connection (protocol error or close timeout).
    failed: bool,
    /// The TCP connection is unusable.
    gone: bool,
    /// The guest's `handle` returned.
    guest_done: bool,
    /// Drop the TCP connection if the peer's close has not come by then.
    close_deadline: Option<Instant>,
}

impl State {
    /// True once nothing more will ever be queued for writing.
    fn writing_finished(&self) -> bool {
        self.gone
            || self.phase == Phase::Rejected
            || (self.close_sent && (self.peer_close.is_some() || self.failed || self.guest_done))
    }

    /// Close on the host's initiative: the peer gets a close frame with
    /// `code`, the guest a close request with the same code.
    fn close_from_server(
        &mut self,
        code: CloseCode,
        reason: &str,
        close_timeout: std::time::Duration,
    ) {
        match self.phase {
            Phase::Open if !self.close_sent && !self.gone => {
                self.queue_close(code, reason, close_timeout);
                self.server_close = Some((code, reason.to_owned()));
            }
            // Not accepted yet: close right after the guest accepts.
            Phase::Handshake => self.server_close = Some((code, reason.to_owned())),
            _ => {}
        }
    }

    /// Fail the connection: send a close with `code` and stop receiving.
    fn fail(&mut self, code: CloseCode, reason: &str, close_timeout: std::time::Duration) {
        self.queue_close(code, reason, close_timeout);
        self.failed = true;
        self.inbound.clear();
        self.inbound_bytes = 0;
    }

    fn queue_close(&mut self, code: CloseCode, reason: &str, close_timeout: std::time::Duration) {
        if self.close_sent || self.gone {
            return;
        }
        self.encoder.encode_close(Some(code), reason, &mut self.out);
        self.close_sent = true;
        if self.peer_close.is_none() {
            self.close_deadline = Some(Instant::now() + close_timeout);
        }
    }
}

/// State shared by the reader, the writer and the guest of one connection.
pub struct Shared {
    id: u64,
    remote: SocketAddr,
    request: Request,
    config: Arc<ServerConfig>,
    state: Mutex<State>,
    /// Wakes the guest (a message arrived, the writer drained, or the
    /// connection ended). Only the guest waits on it.
    guest_wake: Notify,
    /// Wakes the writer (bytes queued or the connection is ending).
    writer_wake: Notify,
    /// Wakes the reader (accepted, inbound drained, or a deadline changed).
    reader_wake: Notify,
}

/// The guest runtime's view of a connection: every WIT call on
/// `pending-connection` and `connection` maps to one method here.
#[derive(Clone)]
pub struct ConnectionHandle {
    shared: Arc<Shared>,
}

impl ConnectionHandle {
    /// A handle for a client whose opening handshake `request` was valid.
    pub fn new(id: u64, remote: SocketAddr, request: Request, config: Arc<ServerConfig>) -> Self {
        let state = State {
            phase: Phase::Handshake,
            out: Vec::new(),
            encoder: Encoder::new(),
            decoder: None,
            inbound: VecDeque::new(),
            inbound_bytes: 0,
            deferred_failure: false,
            receive_pongs: false,
            subprotocol: None,
            extensions: None,
            close_sent: false,
            peer_close: None,
            peer_close_reported: false,
            server_close: None,
            failed: false,
            gone: false,
            guest_done: false,
            close_deadline: None,
        };
        let shared = Shared {
            id,
            remote,
            request,
            config,
            state: Mutex::new(state),
            guest_wake: Notify::new(),
            writer_wake: Notify::new(),
            reader_wake: Notify::new(),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// The connection's id, as it appears in logs.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.shared.remote
    }

    /// The client's opening handshake.
    pub fn request(&self) -> &Request {
        &self.shared.request
    }

    /// Answer the handshake with `101 Switching Protocols`.
    pub fn accept(&self, params: AcceptParams) -> Result<(), AnswerError> {
        let mut state = self.lock();
        check_unanswered(&state)?;
        let request = &self.shared.request;
        if let Some(chosen) = &params.subprotocol
            && !request.subprotocols.iter().any(|offered| offered == chosen)
        {
            return Err(AnswerError::SubprotocolNotOffered(chosen.clone()));
        }
        let config = &self.shared.config;
        let decoder_config = DecoderConfig {
            max_frame_size: config.max_frame_size,
            max_message_size: params
                .max_message_size
                .map_or(config.max_message_size, |limit| {
                    limit.min(config.max_message_size)
                }),
            ..DecoderConfig::default()
        };
        let mut decoder = Decoder::new(decoder_config);
        // permessage-deflate, if the client offered it, the server allows
        // it, and the guest did not turn it off for this connection. The
        // codecs allocate their zlib state lazily, on first use.
        let negotiated = (params.compression && config.deflate.enabled)
            .then(|| deflate::negotiate(&config.deflate, &request.extension_header))
            .flatten();
        let extensions = negotiated.as_ref().map(Negotiated::response_header);
        if let Some(negotiated) = &negotiated {
            decoder.set_inflater(Box::new(MessageInflater::new(negotiated)));
            let deflater = MessageDeflater::new(negotiated, &config.deflate);
            state
                .encoder
                .set_deflater(Box::new(deflater), config.deflate.min_size);
        }
        let response = handshake::build_accept_response(
            &request.key,
            params.subprotocol.as_deref(),
            extensions.as_deref(),
            &params.headers,
        )?;
        state.out.extend_from_slice(&response);
        state.phase = Phase::Open;
        state.decoder = Some(decoder);
        state.receive_pongs = params.receive_pongs;
        state.subprotocol = params.subprotocol;
        state.extensions = extensions;
        if let Some((code, reason)) = state.server_close.take() {
            state.close_from_server(code, &reason, config.close_timeout);
        }
        drop(state);
        self.shared.writer_wake.notify_one();
        self.shared.reader_wake.notify_one();
        Ok(())
    }

    /// Answer the handshake with an HTTP error response.
    pub fn reject(&self, params: RejectParams) -> Result<(), AnswerError> {
        let mut state = self.lock();
        check_unanswered(&state)?;
        let response = handshake::build_reject_response(
            params.status,
            &params.reason,
            &params.headers,
            &params.body,
        )?;
        state.out.extend_from_slice(&response);
        state.phase = Phase::Rejected;
        drop(state);
        self.wake_all();
        Ok(())
    }

    /// The subprotocol agreed at accept time.
    pub fn subprotocol(&self) -> Option<String> {
        self.lock().subprotocol.clone()
    }

    /// The `Sec-WebSocket-Extensions` value answered at accept time.
    pub fn extensions(&self) -> Option<String> {
        self.lock().extensions.clone()
    }

    /// Wait for the next message (or pong, if asked for).
    pub async fn receive(&self) -> Result<Incoming, ConnectionError> {
        loop {
            // Register interest before looking, so a wake-up between the
            // look and the wait is not lost.
            let notified = self.shared.guest_wake.notified();
            {
                let mut state = self.lock();
                if state.phase != Phase::Open {
                    return Err(ConnectionError::ConnectionClosed);
                }
                match state.inbound.pop_front() {
                    Some(Queued::Incoming(incoming)) => {
                        let was_above = state.inbound_bytes >= INBOUND_HIGH_WATER;
                        state.inbound_bytes -= incoming_len(&incoming);
                        if was_above && state.inbound_bytes < INBOUND_HIGH_WATER {
                            self.shared.reader_wake.notify_one();
                        }
                        return Ok(incoming);
                    }
                    Some(Queued::Failure(code, reason)) => {
                        // The guest has had every message before the error
                        // (and answered them): now fail the connection.
                        state.fail(code, &reason, self.shared.config.close_timeout);
                        drop(state);
                        self.wake_all();
                        return Err(ConnectionError::ConnectionClosed);
                    }
                    None => {}
                }
                if let Some((code, reason)) =
                    state.peer_close.as_ref().or(state.server_close.as_ref())
                    && !state.peer_close_reported
                {
                    let error = ConnectionError::CloseRequest {
                        code: *code,
                        reason: reason.clone(),
                    };
                    state.peer_close_reported = true;
                    return Err(error);
                }
                if state.gone || state.failed || state.peer_close_reported {
                    return Err(ConnectionError::ConnectionClosed);
                }
            }
            notified.await;
        }
    }

    /// Queue messages as one batch, then wait while the write buffer is over
    /// its high-water mark.
    pub async fn send_all(&self, messages: &[Outgoing<'_>]) -> Result<(), ConnectionError> {
        {
            let mut state = self.lock();
            check_sendable(&state)?;
            let max = self.shared.config.max_message_size;
            for message in messages {
                if let Outgoing::Pong(payload) = message
                    && payload.len() > MAX_CONTROL_PAYLOAD
                {
                    return Err(ConnectionError::InvalidArgument(format!(
                        "a pong payload is at most {MAX_CONTROL_PAYLOAD} bytes"
                    )));
                }
                if outgoing_len(message) as u64 > max {
                    return Err(ConnectionError::InvalidArgument(format!(
                        "message of {} bytes is over the {max}-byte limit",
                        outgoing_len(message)
                    )));
                }
            }
            let State { encoder, out, .. } = &mut *state;
            for message in messages {
                match message {
                    Outgoing::Text(text) => {
                        encoder.encode_message(OpCode::Text, text.as_bytes(), out)
                    }
                    Outgoing::Binary(data) => encoder.encode_message(OpCode::Binary, data, out),
                    Outgoing::Pong(data) => encoder.encode_control(OpCode::Pong, data, out),
                }
            }
        }
        self.shared.writer_wake.notify_one();
        self.wait_for_drain().await
    }

    /// Send one message.
    pub async fn send(&self, message: Outgoing<'_>) -> Result<(), ConnectionError> {
        self.send_all(&[message]).await
    }

    /// Send a ping; its pong is not awaited.
    pub async fn ping(&self, payload: &[u8]) -> Result<(), ConnectionError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(ConnectionError::InvalidArgument(format!(
                "a ping payload is at most {MAX_CONTROL_PAYLOAD} bytes"
            )));
        }
        {
            let mut state = self.lock();
            check_sendable(&state)?;
            let State { encoder, out, .. } = &mut *state;
            encoder.encode_control(OpCode::Ping, payload, out);
        }
        self.shared.writer_wake.notify_one();
        self.wait_for_drain().await
    }

    /// Start the closing handshake with `code` and `reason`.
    pub async fn close(&self, code: u16, reason: &str) -> Result<(), ConnectionError> {
        let code = CloseCode(code);
        if !code.is_sendable() {
            return Err(ConnectionError::InvalidArgument(format!(
                "close code {} may not be sent",
                code.0
            )));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(ConnectionError::InvalidArgument(format!(
                "a close reason is at most {MAX_REASON_LEN} bytes"
            )));
        }
        {
            let mut state = self.lock();
            check_sendable(&state)?;
            state.queue_close(code, reason, self.shared.config.close_timeout);
        }
        self.wake_all();
        self.wait_for_drain().await
    }

    /// Close the connection on the host's initiative (shutdown, drain): the
    /// peer gets a close frame with `code`, the guest sees a close request.
    pub fn close_from_server(&self, code: CloseCode, reason: &str) {
        let close_timeout = self.shared.config.close_timeout;
        self.lock().close_from_server(code, reason, close_timeout);
        self.wake_all();
    }

    /// Record how the guest ended: finish the handshake or the closing
    /// handshake on its behalf.
    pub fn guest_finished(&self, outcome: &GuestOutcome) {
        let mut state = self.lock();
        state.guest_done = true;
        let close_timeout = self.shared.config.close_timeout;
        match state.phase {
            Phase::Handshake => {
                let body: &[u8] = match outcome {
                    GuestOutcome::Returned => b"the application did not answer the handshake\n",
                    GuestOutcome::Trapped(_) => b"the application failed\n",
                };
                if let Ok(response) = handshake::build_reject_response(500, "", &[], body) {
                    state.out.extend_from_slice(&response);
                }
                state.phase = Phase::Rejected;
            }
            Phase::Open => match outcome {
                // A guest that returns without closing is done with the
                // connection: close it normally.
                GuestOutcome::Returned => state.queue_close(CloseCode::NORMAL, "", close_timeout),
                GuestOutcome::Trapped(_) => state.queue_close(
                    CloseCode::INTERNAL_ERROR,
                    "application error",
                    close_timeout,
                ),
            },
            Phase::Rejected => {}
        }
        drop(state);
        self.wake_all();
    }

    async fn wait_for_drain(&self) -> Result<(), ConnectionError> {
        let high_water = self.shared.config.write_buffer_high_water;
        loop {
            let notified = self.shared.guest_wake.notified();
            {
                let state = self.lock();
                if state.gone {
                    return Err(ConnectionError::ConnectionClosed);
                }
                if state.out.len() < high_water {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    fn wake_all(&self) {
        self.shared.guest_wake.notify_one();
        self.shared.writer_wake.notify_one();
        self.shared.reader_wake.notify_one();
    }

    /// Drive the connection's socket until the connection is over: the
    /// closing handshake done, the peer gone, or the close timeout passed.
    /// Runs concurrently with the guest, in the same task.
    pub async fn run_io<S>(&self, stream: S, leftover: BytesMut)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (read_half, write_half) = tokio::io::split(stream);
        tokio::join!(
            self.read_loop(read_half, leftover),
            self.write_loop(write_half)
        );
    }

    async fn read_loop<R: AsyncRead + Unpin>(&self, mut socket: R, mut buf: BytesMut) {
        // Wait for the guest's answer: only an accepted connection has frames.
        let mut decoder = loop {
            let notified = self.shared.reader_wake.notified();
            {
                let mut state = self.lock();
                match state.phase {
                    Phase::Open => match state.decoder.take() {
                        Some(decoder) => break decoder,
                        None => return,
                    },
                    Phase::Rejected => return,
                    Phase::Handshake if state.gone || state.guest_done => return,
                    Phase::Handshake => {}
                }
            }
            notified.await;
        };
        // After failing the connection we keep reading, discarding, until
        // the peer closes or the close timeout: closing a socket with unread
        // data sends a reset, which can destroy our close frame in flight.
        let mut discarding = false;
        let mut keepalive = Keepalive::new(&self.shared.config);
        loop {
            if discarding {
                buf.clear();
            } else {
                match self.decode_available(&mut decoder, &mut buf) {
                    ReadOn::Continue => {}
                    ReadOn::Stop => return,
                    ReadOn::Discard => discarding = true,
                }
            }
            let (timer, paused) = {
                let state = self.lock();
                let keepalive_timer = (!state.close_sent).then(|| keepalive.next()).flatten();
                let close_timer = state.close_deadline.map(|at| (at, Timer::Close));
                let timer = match (close_timer, keepalive_timer) {
                    (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
                    (a, b) => a.or(b),
                };
                // Pause while the guest is behind, so memory stays bounded.
                (timer, state.inbound_bytes >= INBOUND_HIGH_WATER)
            };
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            let far_future = Instant::now() + std::time::Duration::from_secs(86_400);
            let wake_at = timer.map_or(far_future, |(at, _)| at);
            tokio::select! {
                read = socket.read_buf(&mut buf), if !paused => match read {
                    Ok(0) => {
                        tracing::debug!(conn = self.shared.id, "peer closed TCP");
                        self.mark_gone();
                        return;
                    }
                    Ok(_) => keepalive.heard_from_peer(),
                    Err(error) => {
                        tracing::debug!(conn = self.shared.id, %error, "read failed");
                        self.mark_gone();
                        return;
                    }
                },
                () = self.shared.reader_wake.notified() => {}
                () = sleep_until(wake_at), if timer.is_some() => {
                    let Some((_, kind)) = timer else { continue };
                    if !self.on_timer(kind, &mut keepalive) {
                        return;
                    }
                }
            }
        }
    }

    /// React to a reader timer; false once the reader should stop.
    fn on_timer(&self, kind: Timer, keepalive: &mut Keepalive) -> bool {
        let close_timeout = self.shared.config.close_timeout;
        let mut state = self.lock();
        match kind {
            Timer::Ping => {
                if !state.close_sent && !state.gone {
                    let State { encoder, out, .. } = &mut *state;
                    encoder.encode_control(OpCode::Ping, b"", out);
                    keepalive.pinged();
                }
                drop(state);
                self.shared.writer_wake.notify_one();
                true
            }
            Timer::Idle => {
                tracing::info!(conn = self.shared.id, "idle timeout");
                state.close_from_server(CloseCode::GOING_AWAY, "idle timeout", close_timeout);
                drop(state);
                self.wake_all();
                true
            }
            Timer::Close if state.deferred_failure && !state.failed => {
                tracing::debug!(
                    conn = self.shared.id,
                    "guest did not receive in time; failing now"
                );
                let failure = state.inbound.iter().find_map(|queued| match queued {
                    Queued::Failure(code, reason) => Some((*code, reason.clone())),
                    Queued::Incoming(_) => None,
                });
                if let Some((code, reason)) = failure {
                    state.fail(code, &reason, close_timeout);
                }
                drop(state);
                self.wake_all();
                true
            }
            Timer::Close => {
                tracing::debug!(
                    conn = self.shared.id,
                    "peer did not answer our close in time"
                );
                state.failed = true;
                state.gone = true;
                drop(state);
                self.wake_all();
                false
            }
        }
    }

    /// Decode every complete event in `buf`, and say how reading goes on.
    fn decode_available(&self, decoder: &mut Decoder, buf: &mut BytesMut) -> ReadOn {
        let mut guest_has_news = false;
        let mut writer_has_news = false;
        let keep_reading = loop {
            match decoder.decode(buf) {
                Ok(None) => break ReadOn::Continue,
                Ok(Some(event)) => {
                    let mut state = self.lock();
                    match event {
                        Event::Message(message) => {
                            let incoming = Incoming::Message(message);
                            state.inbound_bytes += incoming_len(&incoming);
                            state.inbound.push_back(Queued::Incoming(incoming));
                            guest_has_news = true;
                        }
                        Event::Ping(payload) => {
                            // "Upon receipt of a Ping frame, an endpoint MUST send a
                            // Pong frame in response, unless it already received a
                            // Close frame." (RFC 6455 section 5.5.2)
                            if !state.close_sent {
                                let State { encoder, out, .. } = &mut *state;
                                encoder.encode_control(OpCode::Pong, &payload, out);
                                writer_has_news = true;
                            }
                        }
                        Event::Pong(payload) => {
                            if state.receive_pongs {
                                let incoming = Incoming::Pong(payload);
                                state.inbound_bytes += incoming_len(&incoming);
                                state.inbound.push_back(Queued::Incoming(incoming));
                                guest_has_news = true;
                            }
                        }
                        Event::Close(frame) => {
                            // "If an endpoint receives a Close frame and did not
                            // previously send a Close frame, the endpoint MUST send
                            // a Close frame in response." (section 5.5.1) We echo
                            // the peer's code, as is customary.
                            let (code, reason) =
                                frame.unwrap_or((CloseCode::NO_STATUS, String::new()));
                            if !state.close_sent && !state.gone {
                                let echo = (code != CloseCode::NO_STATUS).then_some(code);
                                let State { encoder, out, .. } = &mut *state;
                                encoder.encode_close(echo, "", out);
                                state.close_sent = true;
                            }
                            state.close_deadline = None;
                            state.peer_close = Some((code, reason));
                            drop(state);
                            self.wake_all();
                            return ReadOn::Stop;
                        }
                    }
                }
                Err(error) => {
                    let code = error.close_code();
                    tracing::info!(conn = self.shared.id, %error, code = code.0, "failing connection");
                    let mut state = self.lock();
                    let reason = error.close_reason();
                    let close_timeout = self.shared.config.close_timeout;
                    if state.inbound.is_empty() {
                        state.fail(code, &reason, close_timeout);
                    } else {
                        // Messages that arrived before the bad frame are
                        // valid: the guest gets them (and its answers go
                        // out) before the close. A guest that stops
                        // receiving gets the close timeout to get there.
                        state.inbound.push_back(Queued::Failure(code, reason));
                        state.deferred_failure = true;
                        state.close_deadline = Some(Instant::now() + close_timeout);
                    }
                    drop(state);
                    self.wake_all();
                    return ReadOn::Discard;
                }
            }
        };
        if guest_has_news {
            self.shared.guest_wake.notify_one();
        }
        if writer_has_news {
            self.shared.writer_wake.notify_one();
        }
        keep_reading
    }

    fn mark_gone(&self) {
        self.lock().gone = true;
        self.wake_all();
    }

    async fn write_loop<W: AsyncWrite + Unpin>(&self, mut socket: W) {
        let mut batch = Vec::new();
        loop {
            let notified = self.shared.writer_wake.notified();
            let (finished, close_tcp) = {
                let mut state = self.lock();
                if state.gone {
                    return;
                }
                std::mem::swap(&mut batch, &mut state.out);
                let finished = batch.is_empty() && state.writing_finished();
                let handshake_over = state.peer_close.is_some() || state.failed;
                (finished, handshake_over || state.phase == Phase::Rejected)
            };
            if finished {
                // Once both close frames have crossed (or the handshake was
                // refused), the server closes TCP first (RFC 6455 section
                // 7.1.1). Otherwise the peer's close is still awaited and the
                // socket closes when the reader is done.
                if close_tcp {
                    let _ = socket.shutdown().await;
                }
                return;
            }
            if batch.is_empty() {
                notified.await;
                continue;
            }
            if let Err(error) = socket.write_all(&batch).await {
                tracing::debug!(conn = self.shared.id, %error, "write failed");
                self.mark_gone();
                return;
            }
            batch.clear();
            // Give back a huge buffer rather than keep it for the
            // connection's whole life.
            if batch.capacity() > 4 * READ_CHUNK {
                batch = Vec::new();
            }
            self.shared.guest_wake.notify_one();
        }
    }
}

/// What a reader timer is for.
#[derive(Clone, Copy, Debug)]
enum Timer {
    /// Our close (or a deferred failure) is due.
    Close,
    /// The peer has been silent for the ping interval.
    Ping,
    /// The peer has been silent for the idle timeout.
    Idle,
}

/// Keep-alive bookkeeping of one reader: when the peer was last heard
/// from, and whether it has been pinged since.
struct Keepalive {
    ping_interval: Option<std::time::Duration>,
    idle_timeout: Option<std::time::Duration>,
    last_heard: Instant,
    pinged: bool,
}

impl Keepalive {
    fn new(config: &ServerConfig) -> Self {
        Self {
            ping_interval: config.ping_interval,
            idle_timeout: config.idle_timeout,
            last_heard: Instant::now(),
            pinged: false,
        }
    }

    fn heard_from_peer(&mut self) {
        self.last_heard = Instant::now();
        self.pinged = false;
    }

    fn pinged(&mut self) {
        self.pinged = true;
    }

    /// The next keep-alive timer: a ping once silent for the interval (once
    /// per silence), a close once silent for the idle timeout.
    fn next(&self) -> Option<(Instant, Timer)> {
        let ping = self
            .ping_interval
            .filter(|_| !self.pinged)
            .map(|interval| (self.last_heard + interval, Timer::Ping));
        let idle = self
            .idle_timeout
            .map(|timeout| (self.last_heard + timeout, Timer::Idle));
        match (ping, idle) {
            (Some(p), Some(i)) => Some(if p.0 < i.0 { p } else { i }),
            (p, i) => p.or(i),
        }
    }
}

/// An entry of the guest's inbound queue.
enum Queued {
    /// Something to hand to the guest.
    Incoming(Incoming),
    /// The connection fails here (close code and reason).
    Failure(CloseCode, String),
}

/// What the reader does after decoding what it has.
enum ReadOn {
    /// Read more frames.
    Continue,
    /// The peer's close arrived: reading is over.
    Stop,
    /// The connection failed: read and drop until the peer closes.
    Discard,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panic while holding this lock is a bug in this file; the state is
    // still consistent enough to close the connection, so ignore poisoning.
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check_unanswered(state: &State) -> Result<(), AnswerError> {
    if state.phase != Phase::Handshake {
        return Err(AnswerError::AlreadyAnswered);
    }
    if state.gone {
        return Err(AnswerError::ConnectionClosed);
    }
    Ok(())
}

fn check_sendable(state: &State) -> Result<(), ConnectionError> {
    if state.phase != Phase::Open || state.close_sent || state.gone {
        return Err(ConnectionError::ConnectionClosed);
    }
    Ok(())
}

fn incoming_len(incoming: &Incoming) -> usize {
    match incoming {
        Incoming::Message(DataMessage::Text(text)) => text.len(),
        Incoming::Message(DataMessage::Binary(data)) => data.len(),
        Incoming::Pong(data) => data.len(),
    }
}

fn outgoing_len(outgoing: &Outgoing<'_>) -> usize {
    match outgoing {
        Outgoing::Text(text) => text.len(),
        Outgoing::Binary(data) | Outgoing::Pong(data) => data.len(),
    }
}
