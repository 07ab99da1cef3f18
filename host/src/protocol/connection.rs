//! One server-side WebSocket connection's rules, sans-IO: the answer to the
//! opening handshake, the closing handshake, the close timeout, failing the
//! connection behind messages still owed to the application, and keep-alive.
//!
//! [`Connection`] owns the [`Decoder`], the [`Encoder`] and the bytes waiting
//! to be written. The IO layer only moves bytes and time through it:
//!
//! - bytes read go to [`Connection::receive_data`]; end of stream (or a read
//!   error) to [`Connection::receive_eof`];
//! - bytes to write come from [`Connection::poll_write`];
//! - timers: sleep until [`Connection::poll_timeout`], then call
//!   [`Connection::on_timeout`];
//! - after every call, [`Connection::take_wakes`] says which of the
//!   application, the writer and the reader has something new to look at.
//!
//! The application (the guest) talks to it through [`Connection::accept`],
//! [`Connection::reject`], [`Connection::receive`], [`Connection::send`],
//! [`Connection::close`] and [`Connection::guest_finished`]. Nothing here
//! knows about sockets, tasks or clocks: every method that needs the time
//! takes `now`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use thiserror::Error;

use bytes::Bytes;

use super::close::{CloseCode, MAX_REASON_LEN};
use super::decoder::{DataMessage, Decoder, DecoderConfig, Event, PayloadLoan};
use super::deflate::{self, DeflateConfig, MessageDeflater, MessageInflater, Negotiated};
use super::encoder::Encoder;
use super::error::ProtocolError;
use super::fanout::Published;
use super::frame::OpCode;
use super::handshake::{self, Request, ResponseError};
use super::outbox::Outbox;

/// Largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Most messages one [`Connection::receive_all`] hands over.
pub const RECEIVE_ALL_MAX_MESSAGES: usize = 64;
/// Most payload bytes one [`Connection::receive_all`] hands over, unless its
/// first message alone is larger: a batch costs the guest's memory little
/// more than one message does.
pub const RECEIVE_ALL_MAX_BYTES: usize = 64 << 10;

/// The rules' knobs, shared by every connection of a server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Largest frame payload accepted; larger frames fail the connection with
    /// 1009. Default 16 MiB.
    pub max_frame_size: u64,
    /// Largest message accepted (after decompression) and sent; larger
    /// received messages fail the connection with 1009. Default 64 MiB.
    pub max_message_size: u64,
    /// After our close frame, how long the peer has to answer with its own
    /// before the TCP connection is dropped; also how long the application
    /// has to receive the messages in front of a protocol error. Default 5 s.
    pub close_timeout: Duration,
    /// Ping a peer that has been silent this long. Default 30 s.
    pub ping_interval: Option<Duration>,
    /// Close (1001) a connection silent for this long. Default 120 s.
    pub idle_timeout: Option<Duration>,
    /// Stop reading while this many bytes of received messages wait for the
    /// application, so TCP pushes back on the client. Default 1 MiB.
    pub inbound_high_water: usize,
    /// permessage-deflate: what the server accepts and asks for.
    pub deflate: DeflateConfig,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            close_timeout: Duration::from_secs(5),
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(120)),
            inbound_high_water: 1 << 20,
            deflate: DeflateConfig::default(),
        }
    }
}

/// A message the application receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete data message.
    Message(DataMessage),
    /// A pong's payload (only when the application asked for pongs).
    Pong(Vec<u8>),
}

impl Incoming {
    fn len(&self) -> usize {
        match self {
            Incoming::Message(DataMessage::Text(text)) => text.len(),
            Incoming::Message(DataMessage::Binary(data)) | Incoming::Pong(data) => data.len(),
        }
    }
}

/// A message published to a topic, delivered to an application that asked
/// for its topics' messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMessage {
    /// The topic.
    pub topic: std::sync::Arc<str>,
    /// Text (valid UTF-8) or binary.
    pub text: bool,
    /// The payload, shared by every subscriber.
    pub payload: Bytes,
    /// The publishing connection's id.
    pub publisher: u64,
}

/// Something for the application, in the order it happened.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// A message (or pong) from the peer.
    Message(Incoming),
    /// A delivered topic message.
    Topic(TopicMessage),
    /// The connection is ending (reported like `receive`'s errors).
    Closed(ConnectionError),
}

/// What became of one topic delivery to one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued.
    Queued,
    /// The connection's queue is over its backpressure limit: dropped.
    Dropped,
    /// The connection is closing or gone: nothing more is delivered.
    Closed,
}

/// A message the application sends. Owned, a large payload is written from
/// where it is (see [`Outbox`]); borrowed (from a guest's memory), it is
/// copied into the write buffer when queued, the only copy the host makes.
#[derive(Clone, Debug)]
pub enum Outgoing<'a> {
    /// A text message.
    Text(Cow<'a, str>),
    /// A binary message.
    Binary(Cow<'a, [u8]>),
    /// An unsolicited pong (a heartbeat).
    Pong(Cow<'a, [u8]>),
}

impl Outgoing<'_> {
    fn len(&self) -> usize {
        match self {
            Outgoing::Text(text) => text.len(),
            Outgoing::Binary(data) | Outgoing::Pong(data) => data.len(),
        }
    }
}

/// Why an application call on an open connection could not go on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConnectionError {
    /// A close frame ended the conversation: the peer's (already answered),
    /// or the host's own (shutdown, idle timeout, drain), reported once.
    #[error("connection closing with {code}: {reason}")]
    CloseRequest {
        /// The close code (1005 when the peer's close frame had none).
        code: CloseCode,
        /// The close reason.
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

/// The application's choices when accepting (`AcceptRequest` in the seed).
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

/// The application's rejection (`RejectRequest` in the seed).
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

/// How the application's part of the connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestEnd {
    /// It returned.
    Returned,
    /// It failed (trap, resource limit, ...).
    Failed,
}

/// A close frame's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason.
    pub reason: String,
}

impl CloseFrame {
    fn new(code: CloseCode, reason: &str) -> Self {
        Self {
            code,
            reason: reason.to_owned(),
        }
    }
}

/// Who sent the first close frame of this connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// The application called `close`, or ended (returned or failed).
    Application,
    /// The host (shutdown, idle timeout, drain): the application sees
    /// `frame` as a close request.
    Host(CloseFrame),
    /// The peer broke a protocol rule: we failed the connection and read no
    /// more of its frames.
    Failure,
}

/// Who started a connection's closing handshake, for its access log line
/// and metrics. Unlike [`Initiator`] it survives the handshake's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClosedBy {
    /// The peer sent the first close frame.
    Peer,
    /// The application called `close`, or ended (returned or failed).
    Application,
    /// The host (shutdown, idle timeout, drain, a slow subscriber).
    Host,
    /// The peer broke a protocol rule and the connection was failed.
    ProtocolError,
}

impl ClosedBy {
    /// A short, stable name (`client`, `guest`, `host`, `protocol-error`),
    /// for log fields and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedBy::Peer => "client",
            ClosedBy::Application => "guest",
            ClosedBy::Host => "host",
            ClosedBy::ProtocolError => "protocol-error",
        }
    }
}

impl From<&Initiator> for ClosedBy {
    fn from(initiator: &Initiator) -> Self {
        match initiator {
            Initiator::Application => ClosedBy::Application,
            Initiator::Host(_) => ClosedBy::Host,
            Initiator::Failure => ClosedBy::ProtocolError,
        }
    }
}

/// What went through one connection so far. Data messages only (pings,
/// pongs and close frames are not messages); bytes are WebSocket frame
/// bytes on the wire (headers included, compressed where compression was
/// negotiated), without the HTTP handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Data messages received from the peer.
    pub messages_received: u64,
    /// Frame bytes decoded from the peer.
    pub bytes_received: u64,
    /// Data messages queued for the peer (the application's and topics').
    pub messages_sent: u64,
    /// Frame bytes handed to the writer.
    pub bytes_sent: u64,
}

impl ConnectionStats {
    /// What `self` has that `earlier` (a previous reading) had not.
    pub fn since(&self, earlier: &ConnectionStats) -> ConnectionStats {
        ConnectionStats {
            messages_received: self.messages_received - earlier.messages_received,
            bytes_received: self.bytes_received - earlier.bytes_received,
            messages_sent: self.messages_sent - earlier.messages_sent,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
        }
    }
}

/// Where the closing handshake stands (RFC 6455 §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    /// Neither side has sent a close frame.
    Open,
    /// The peer broke a rule behind messages the application has not
    /// received yet: the connection fails (with `frame`) once it has had
    /// them, or at `deadline`, whichever comes first.
    FailurePending {
        /// The close frame the failure sends.
        frame: CloseFrame,
        /// When to fail anyway.
        deadline: Instant,
    },
    /// We sent our close frame first and wait for the peer's until
    /// `deadline`.
    CloseSent {
        /// Why we closed.
        initiator: Initiator,
        /// When to give up on the peer's close and drop the connection.
        deadline: Instant,
    },
    /// The peer's close frame arrived and ours has been sent (before it or
    /// as the answer): the closing handshake is complete.
    Complete {
        /// The peer's close frame (code 1005 when it had no body).
        peer: CloseFrame,
    },
}

/// Where the opening handshake stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the application to accept or reject. A host close asked
    /// for meanwhile is kept and sent right after the accept.
    Handshake {
        /// The host's close, if it asked for one already.
        host_close: Option<CloseFrame>,
    },
    /// Accepted: frames flow.
    Open,
    /// Rejected (or never answered): only the HTTP response is written.
    Rejected,
}

/// What the reader should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// The handshake has not been answered: read nothing yet.
    AwaitAnswer,
    /// Read and feed [`Connection::receive_data`].
    Read,
    /// The application is behind: read nothing until it catches up.
    Paused,
    /// The connection failed: read and drop bytes (closing a socket with
    /// unread data sends a reset, which can destroy our close frame in
    /// flight) until the peer closes or the close timeout.
    Discard,
    /// Reading is over.
    Stop,
}

/// What the writer should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Write the batch just handed over.
    Write,
    /// Nothing to write yet.
    Idle,
    /// Nothing more will ever be written. `shutdown`: close our side of TCP
    /// now (after the closing handshake, a failure or a rejection, the
    /// server closes first, RFC 6455 §7.1.1); else the socket closes when
    /// reading ends.
    Finished {
        /// Shut down the write side now.
        shutdown: bool,
    },
    /// The TCP connection is unusable.
    Stop,
}

/// What a call to [`Connection::on_timeout`] did, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutAction {
    /// No deadline had passed.
    Nothing,
    /// The peer was silent for the ping interval: a ping was queued.
    Pinged,
    /// The peer was silent for the idle timeout: the host closed with 1001.
    IdleClose,
    /// The application did not receive the messages in front of a protocol
    /// error in time: the connection failed now.
    FailedLate,
    /// The peer did not answer our close in time: the connection is gone.
    CloseTimedOut,
}

/// Which side of the IO layer has something new to look at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wakes {
    /// The application (a message arrived, the writer drained, the
    /// connection ended).
    pub guest: bool,
    /// The writer (bytes queued, or the connection is ending).
    pub writer: bool,
    /// The reader (accepted, the inbound queue drained, a deadline changed).
    pub reader: bool,
}

impl Wakes {
    const ALL: Wakes = Wakes {
        guest: true,
        writer: true,
        reader: true,
    };

    fn add(&mut self, other: Wakes) {
        self.guest |= other.guest;
        self.writer |= other.writer;
        self.reader |= other.reader;
    }
}

/// Keep-alive as data: when the peer was last heard from and whether it has
/// been pinged since.
#[derive(Clone, Debug)]
struct Keepalive {
    last_heard: Instant,
    pinged: bool,
}

/// One connection's protocol state. See the module docs for how the IO layer
/// and the application drive it.
#[derive(Debug)]
pub struct Connection {
    config: std::sync::Arc<ConnectionConfig>,
    phase: Phase,
    closing: Closing,
    /// Set up at accept time.
    decoder: Option<Decoder>,
    encoder: Encoder,
    /// Encoded bytes waiting for the writer.
    out: Outbox,
    /// Messages from the peer, with their arrival number.
    inbound: VecDeque<(u64, Incoming)>,
    inbound_bytes: usize,
    /// Topic messages for the application, with their arrival number.
    topic_inbound: VecDeque<(u64, TopicMessage)>,
    topic_bytes: usize,
    /// Arrival numbers, so `next_event` keeps the order between the two
    /// queues.
    next_arrival: u64,
    /// Topic deliveries dropped for backpressure.
    dropped: u64,
    /// What permessage-deflate negotiated, if it did.
    negotiated: Option<Negotiated>,
    receive_pongs: bool,
    subprotocol: Option<String>,
    extensions: Option<String>,
    keepalive: Keepalive,
    /// The TCP connection is unusable (end of stream, an IO error, or the
    /// close timeout passed).
    gone: bool,
    /// `receive` has reported the close (the peer's or the host's).
    close_reported: bool,
    /// The application's part has ended.
    guest_done: bool,
    /// Counts of messages and bytes each way.
    stats: ConnectionStats,
    /// The counts when [`Connection::take_unreported_stats`] last ran.
    reported: ConnectionStats,
    /// Bytes of HTTP response at the front of `out` (not frame bytes).
    unsent_http: usize,
    /// The HTTP status the handshake was answered with.
    status: Option<u16>,
    /// The first close frame's code, and who sent it.
    first_close: Option<(CloseCode, ClosedBy)>,
    wakes: Wakes,
    /// The application waits for the write queue to drain.
    drain_waiter: bool,
}

impl Connection {
    /// A connection whose opening request has been read and validated,
    /// waiting for the application's answer.
    pub fn new(config: std::sync::Arc<ConnectionConfig>, now: Instant) -> Self {
        Self {
            config,
            phase: Phase::Handshake { host_close: None },
            closing: Closing::Open,
            decoder: None,
            encoder: Encoder::new(),
            out: Outbox::new(),
            inbound: VecDeque::new(),
            inbound_bytes: 0,
            topic_inbound: VecDeque::new(),
            topic_bytes: 0,
            next_arrival: 0,
            dropped: 0,
            negotiated: None,
            receive_pongs: false,
            subprotocol: None,
            extensions: None,
            keepalive: Keepalive {
                last_heard: now,
                pinged: false,
            },
            gone: false,
            close_reported: false,
            guest_done: false,
            stats: ConnectionStats::default(),
            reported: ConnectionStats::default(),
            unsent_http: 0,
            status: None,
            first_close: None,
            wakes: Wakes::default(),
            drain_waiter: false,
        }
    }

    /// Where the opening handshake stands.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Where the closing handshake stands.
    pub fn closing(&self) -> &Closing {
        &self.closing
    }

    /// Whether the TCP connection is unusable.
    pub fn is_gone(&self) -> bool {
        self.gone
    }

    /// The subprotocol agreed at accept time.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The `Sec-WebSocket-Extensions` value answered at accept time.
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// Messages and bytes each way so far.
    pub fn stats(&self) -> ConnectionStats {
        self.stats
    }

    /// What the counts gained since this was last called (for metrics that
    /// add connections' traffic in bulk).
    pub fn take_unreported_stats(&mut self) -> ConnectionStats {
        let new = self.stats.since(&self.reported);
        self.reported = self.stats;
        new
    }

    /// The HTTP status the opening handshake was answered with (101, the
    /// application's rejection, or 500 when it did not answer); `None`
    /// while unanswered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The code of the first close frame, sent or received, and who sent
    /// it; `None` when the connection ended without one.
    pub fn first_close(&self) -> Option<(CloseCode, ClosedBy)> {
        self.first_close
    }

    /// Queue an HTTP response (not counted as frame bytes).
    fn queue_http(&mut self, response: &[u8], status: u16) {
        self.out.inline_mut().extend_from_slice(response);
        self.unsent_http += response.len();
        self.status = Some(status);
    }

    /// Bytes queued for the writer.
    pub fn pending_write_bytes(&self) -> usize {
        self.out.len()
    }

    /// Which sides have something new since the last call; resets.
    pub fn take_wakes(&mut self) -> Wakes {
        std::mem::take(&mut self.wakes)
    }

    // -- the opening handshake ------------------------------------------

    /// Answer `request` with `101 Switching Protocols`: check the chosen
    /// subprotocol, negotiate permessage-deflate (if the client offered it,
    /// the server allows it and `params.compression` is set), queue the
    /// response, and start reading frames.
    pub fn accept(
        &mut self,
        request: &Request,
        params: AcceptParams,
        now: Instant,
    ) -> Result<(), AnswerError> {
        self.check_unanswered()?;
        if let Some(chosen) = &params.subprotocol
            && !request.subprotocols.iter().any(|offered| offered == chosen)
        {
            return Err(AnswerError::SubprotocolNotOffered(chosen.clone()));
        }
        let config = &self.config;
        let max_message_size = params
            .max_message_size
            .map_or(config.max_message_size, |limit| {
                limit.min(config.max_message_size)
            });
        let mut decoder = Decoder::new(DecoderConfig {
            max_frame_size: config.max_frame_size,
            max_message_size,
            ..DecoderConfig::default()
        });
        let negotiated = (params.compression && config.deflate.enabled)
            .then(|| deflate::negotiate(&config.deflate, &request.extension_header))
            .flatten();
        let extensions = negotiated
            .as_ref()
            .map(deflate::Negotiated::response_header);
        let response = handshake::build_accept_response(
            &request.accept,
            params.subprotocol.as_deref(),
            extensions.as_deref(),
            &params.headers,
        )?;
        // The codecs allocate their zlib state lazily, on first use.
        if let Some(negotiated) = &negotiated {
            decoder.set_inflater(Box::new(MessageInflater::new(negotiated)));
            let deflater = MessageDeflater::new(negotiated, &config.deflate);
            self.encoder
                .set_deflater(Box::new(deflater), config.deflate.min_size);
        }
        self.queue_http(&response, 101);
        let host_close = match std::mem::replace(&mut self.phase, Phase::Open) {
            Phase::Handshake { host_close } => host_close,
            Phase::Open | Phase::Rejected => None,
        };
        self.decoder = Some(decoder);
        self.negotiated = negotiated;
        self.receive_pongs = params.receive_pongs;
        self.subprotocol = params.subprotocol;
        self.extensions = extensions;
        self.keepalive = Keepalive {
            last_heard: now,
            pinged: false,
        };
        if let Some(frame) = host_close {
            self.send_close(Initiator::Host(frame.clone()), &frame, now);
        }
        self.wakes.add(Wakes {
            guest: false,
            writer: true,
            reader: true,
        });
        Ok(())
    }

    /// Answer the handshake with an HTTP error response.
    pub fn reject(&mut self, params: &RejectParams) -> Result<(), AnswerError> {
        self.check_unanswered()?;
        let response = handshake::build_reject_response(
            params.status,
            &params.reason,
            &params.headers,
            &params.body,
        )?;
        self.queue_http(&response, params.status);
        self.phase = Phase::Rejected;
        self.wakes.add(Wakes::ALL);
        Ok(())
    }

    fn check_unanswered(&self) -> Result<(), AnswerError> {
        if !matches!(self.phase, Phase::Handshake { .. }) {
            return Err(AnswerError::AlreadyAnswered);
        }
        if self.gone {
            return Err(AnswerError::ConnectionClosed);
        }
        Ok(())
    }

    // -- the application ----------------------------------------------------

    /// The next message for the application: `Ok(Some(..))`, `Ok(None)`
    /// when it must wait (wait for [`Wakes::guest`]), or why there will be
    /// none. A close is reported once as [`ConnectionError::CloseRequest`],
    /// after every message received before it; then
    /// [`ConnectionError::ConnectionClosed`].
    pub fn receive(&mut self, now: Instant) -> Result<Option<Incoming>, ConnectionError> {
        if self.phase != Phase::Open {
            return Err(ConnectionError::ConnectionClosed);
        }
        if let Some((_, incoming)) = self.inbound.pop_front() {
            let high_water = self.config.inbound_high_water;
            let was_above = self.inbound_bytes >= high_water;
            self.inbound_bytes -= incoming.len();
            if was_above && self.inbound_bytes < high_water {
                self.wakes.reader = true;
            }
            return Ok(Some(incoming));
        }
        if let Closing::FailurePending { frame, .. } = &self.closing {
            // The application has had every message in front of the error
            // (and its answers are queued): now fail the connection.
            let frame = frame.clone();
            self.send_close(Initiator::Failure, &frame, now);
            return Err(ConnectionError::ConnectionClosed);
        }
        if !self.close_reported {
            let reported = match &self.closing {
                Closing::Complete { peer } => Some(peer),
                Closing::CloseSent {
                    initiator: Initiator::Host(frame),
                    ..
                } => Some(frame),
                _ => None,
            };
            if let Some(frame) = reported {
                let error = ConnectionError::CloseRequest {
                    code: frame.code,
                    reason: frame.reason.clone(),
                };
                self.close_reported = true;
                return Err(error);
            }
        }
        let failed = matches!(
            self.closing,
            Closing::CloseSent {
                initiator: Initiator::Failure,
                ..
            }
        );
        if self.gone || failed || self.close_reported {
            return Err(ConnectionError::ConnectionClosed);
        }
        Ok(None)
    }

    /// Queue messages, in order, as one batch. Checks them all first: on an
    /// error nothing is queued. The application should then wait while
    /// [`Connection::pending_write_bytes`] is over its high-water mark.
    pub fn send<'m, M>(&mut self, messages: M) -> Result<(), ConnectionError>
    where
        M: AsRef<[Outgoing<'m>]> + IntoIterator<Item = Outgoing<'m>>,
    {
        self.check_sendable()?;
        let max = self.config.max_message_size;
        for message in messages.as_ref() {
            if let Outgoing::Pong(payload) = message
                && payload.len() > MAX_CONTROL_PAYLOAD
            {
                return Err(ConnectionError::InvalidArgument(format!(
                    "a pong payload is at most {MAX_CONTROL_PAYLOAD} bytes"
                )));
            }
            if message.len() as u64 > max {
                return Err(ConnectionError::InvalidArgument(format!(
                    "message of {} bytes is over the {max}-byte limit",
                    message.len()
                )));
            }
        }
        for message in messages {
            match message {
                Outgoing::Text(text) => {
                    self.stats.messages_sent += 1;
                    let payload = match text {
                        Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
                    };
                    self.queue_data(OpCode::Text, payload);
                }
                Outgoing::Binary(data) => {
                    self.stats.messages_sent += 1;
                    self.queue_data(OpCode::Binary, data);
                }
                Outgoing::Pong(data) => {
                    self.encoder
                        .encode_control(OpCode::Pong, &data, self.out.inline_mut());
                }
            }
        }
        self.wakes.writer = true;
        Ok(())
    }

    /// Encode one data message into the outbox: an owned payload is handed
    /// over, a borrowed one copied.
    fn queue_data(&mut self, opcode: OpCode, payload: Cow<'_, [u8]>) {
        match payload {
            Cow::Owned(payload) => {
                self.encoder
                    .encode_message(opcode, Bytes::from(payload), &mut self.out);
            }
            Cow::Borrowed(payload) => {
                self.encoder
                    .encode_message_from(opcode, payload, &mut self.out);
            }
        }
    }

    /// Queue a ping; its pong is not awaited.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ConnectionError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(ConnectionError::InvalidArgument(format!(
                "a ping payload is at most {MAX_CONTROL_PAYLOAD} bytes"
            )));
        }
        self.check_sendable()?;
        self.encoder
            .encode_control(OpCode::Ping, payload, self.out.inline_mut());
        self.wakes.writer = true;
        Ok(())
    }

    /// Start the closing handshake with `code` and `reason`. The application
    /// then keeps receiving until the peer's close arrives, as in the seed.
    pub fn close(&mut self, code: u16, reason: &str, now: Instant) -> Result<(), ConnectionError> {
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
        self.check_sendable()?;
        let frame = CloseFrame::new(code, reason);
        self.send_close(Initiator::Application, &frame, now);
        Ok(())
    }

    /// Close on the host's initiative (shutdown, idle, drain): the peer gets
    /// a close frame with `code`, the application a close request with the
    /// same code. Before the accept, the close is sent right after it.
    pub fn close_from_host(&mut self, code: CloseCode, reason: &str, now: Instant) {
        let frame = CloseFrame::new(code, reason);
        if let Phase::Handshake { host_close } = &mut self.phase {
            *host_close = Some(frame);
        } else if self.phase == Phase::Open {
            self.send_close(Initiator::Host(frame.clone()), &frame, now);
        }
    }

    /// The application's part ended: finish the opening handshake (500) or
    /// the closing handshake (1000 when it returned, 1011 when it failed)
    /// on its behalf.
    pub fn guest_finished(&mut self, end: GuestEnd, now: Instant) {
        self.guest_done = true;
        match self.phase {
            Phase::Handshake { .. } => {
                let body: &[u8] = match end {
                    GuestEnd::Returned => b"the application did not answer the handshake\n",
                    GuestEnd::Failed => b"the application failed\n",
                };
                if let Ok(response) = handshake::build_reject_response(500, "", &[], body) {
                    self.queue_http(&response, 500);
                }
                self.phase = Phase::Rejected;
            }
            Phase::Open => {
                let frame = match (&self.closing, end) {
                    // It returned in front of a protocol error: that error
                    // is what the peer must hear about.
                    (Closing::FailurePending { frame, .. }, _) => frame.clone(),
                    // A guest that returns without closing is done with the
                    // connection: close it normally.
                    (_, GuestEnd::Returned) => CloseFrame::new(CloseCode::NORMAL, ""),
                    (_, GuestEnd::Failed) => {
                        CloseFrame::new(CloseCode::INTERNAL_ERROR, "application error")
                    }
                };
                let initiator = match self.closing {
                    Closing::FailurePending { .. } => Initiator::Failure,
                    _ => Initiator::Application,
                };
                self.send_close(initiator, &frame, now);
            }
            Phase::Rejected => {}
        }
        self.wakes.add(Wakes::ALL);
    }

    fn close_not_sent(&self) -> bool {
        matches!(self.closing, Closing::Open | Closing::FailurePending { .. })
    }

    fn check_sendable(&self) -> Result<(), ConnectionError> {
        if self.phase != Phase::Open || !self.close_not_sent() || self.gone {
            return Err(ConnectionError::ConnectionClosed);
        }
        Ok(())
    }

    /// Queue our close frame (once) and wait for the peer's until the close
    /// timeout. A failure drops the messages the application has not had.
    fn send_close(&mut self, initiator: Initiator, frame: &CloseFrame, now: Instant) {
        if !self.close_not_sent() || self.gone {
            return;
        }
        self.encoder
            .encode_close(Some(frame.code), &frame.reason, self.out.inline_mut());
        self.first_close
            .get_or_insert((frame.code, ClosedBy::from(&initiator)));
        if initiator == Initiator::Failure {
            self.drop_inbound();
        }
        self.closing = Closing::CloseSent {
            initiator,
            deadline: now + self.config.close_timeout,
        };
        self.wakes.add(Wakes::ALL);
    }

    // -- topics and events --------------------------------------------------

    /// Whether topic messages may still be delivered: accepted, not
    /// closing from our side, not failed, not gone.
    fn takes_topic_messages(&self) -> bool {
        self.phase == Phase::Open && matches!(self.closing, Closing::Open) && !self.gone
    }

    /// Queue a published message for the peer, unless more than `limit`
    /// bytes would then wait to be written. The frame is the shared one
    /// where this connection's compression allows (none, a message too
    /// short to compress, or no server context takeover); with context
    /// takeover this connection's own compressor frames it.
    pub fn queue_published(&mut self, published: &mut Published, limit: usize) -> Delivery {
        if !self.takes_topic_messages() {
            return Delivery::Closed;
        }
        if self.out.len() + published.plain_len() > limit {
            self.dropped += 1;
            return Delivery::Dropped;
        }
        match &self.negotiated {
            Some(negotiated) if published.worth_compressing() => {
                if negotiated.server_no_context_takeover {
                    published
                        .queue_shared_compressed(negotiated.server_max_window_bits, &mut self.out);
                } else {
                    self.encoder.encode_message(
                        published.opcode(),
                        published.payload().clone(),
                        &mut self.out,
                    );
                }
            }
            _ => published.queue_plain(&mut self.out),
        }
        self.stats.messages_sent += 1;
        self.wakes.writer = true;
        Delivery::Queued
    }

    /// Queue a topic message for the application, unless more than `limit`
    /// bytes of them would then wait.
    pub fn deliver_to_guest(&mut self, message: TopicMessage, limit: usize) -> Delivery {
        if !self.takes_topic_messages() {
            return Delivery::Closed;
        }
        if self.topic_bytes + message.payload.len() > limit {
            self.dropped += 1;
            return Delivery::Dropped;
        }
        self.topic_bytes += message.payload.len();
        self.topic_inbound.push_back((self.next_arrival, message));
        self.next_arrival += 1;
        self.wakes.guest = true;
        Delivery::Queued
    }

    /// Topic deliveries dropped so far because this connection was over its
    /// backpressure limit.
    pub fn dropped_deliveries(&self) -> u64 {
        self.dropped
    }

    /// [`Connection::receive`], then also the messages queued behind the
    /// first, in order, while the batch stays within
    /// [`RECEIVE_ALL_MAX_MESSAGES`] and [`RECEIVE_ALL_MAX_BYTES`] (the first
    /// message alone may be larger). A close or error is reported as
    /// `receive` reports it, by the call after the messages in front of it.
    pub fn receive_all(&mut self, now: Instant) -> Result<Option<Vec<Incoming>>, ConnectionError> {
        let Some(first) = self.receive(now)? else {
            return Ok(None);
        };
        let mut bytes = first.len();
        // Sized for what is queued now (up to the bound), so the batch is
        // one allocation, not one per doubling.
        let queued = self.inbound.len().min(RECEIVE_ALL_MAX_MESSAGES - 1);
        let mut batch = Vec::with_capacity(1 + queued);
        batch.push(first);
        while batch.len() < RECEIVE_ALL_MAX_MESSAGES
            && let Some((_, next)) = self.inbound.front()
            && bytes.saturating_add(next.len()) <= RECEIVE_ALL_MAX_BYTES
            && let Ok(Some(next)) = self.receive(now)
        {
            bytes += next.len();
            batch.push(next);
        }
        Ok(Some(batch))
    }

    /// The next event for the application, without waiting: peer messages
    /// and topic messages in arrival order, then the close (as
    /// [`Connection::receive`] reports it). `None`: nothing yet.
    pub fn next_event(&mut self, now: Instant) -> Option<ConnEvent> {
        let topic_first = match (self.topic_inbound.front(), self.inbound.front()) {
            (Some((topic, _)), Some((peer, _))) => topic < peer,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if topic_first && let Some((_, message)) = self.topic_inbound.pop_front() {
            self.topic_bytes -= message.payload.len();
            return Some(ConnEvent::Topic(message));
        }
        match self.receive(now) {
            Ok(Some(incoming)) => Some(ConnEvent::Message(incoming)),
            Ok(None) => None,
            Err(error) => Some(ConnEvent::Closed(error)),
        }
    }

    /// Whether [`Connection::next_event`] would return something (what an
    /// application waiting for events waits for).
    pub fn event_ready(&self) -> bool {
        if !self.inbound.is_empty() || !self.topic_inbound.is_empty() {
            return true;
        }
        if self.phase != Phase::Open || self.gone || self.close_reported {
            return true;
        }
        match &self.closing {
            Closing::Open => false,
            Closing::FailurePending { .. } | Closing::Complete { .. } => true,
            Closing::CloseSent { initiator, .. } => *initiator != Initiator::Application,
        }
    }

    // -- bytes in -----------------------------------------------------------

    /// What the reader should do next.
    pub fn read_status(&self) -> ReadStatus {
        match (&self.phase, &self.closing) {
            (Phase::Rejected, _) => ReadStatus::Stop,
            (Phase::Handshake { .. }, _) if self.gone || self.guest_done => ReadStatus::Stop,
            (Phase::Handshake { .. }, _) => ReadStatus::AwaitAnswer,
            (Phase::Open, _) if self.gone => ReadStatus::Stop,
            (Phase::Open, Closing::Complete { .. }) => ReadStatus::Stop,
            (
                Phase::Open,
                Closing::FailurePending { .. }
                | Closing::CloseSent {
                    initiator: Initiator::Failure,
                    ..
                },
            ) => ReadStatus::Discard,
            (Phase::Open, _) if self.inbound_bytes >= self.config.inbound_high_water => {
                ReadStatus::Paused
            }
            (Phase::Open, _) => ReadStatus::Read,
        }
    }

    /// Note that bytes arrived from the peer (keep-alive counts from here).
    pub fn heard_from_peer(&mut self, now: Instant) {
        self.keepalive = Keepalive {
            last_heard: now,
            pinged: false,
        };
    }

    /// Consume every complete frame at the front of `buf` (what is left is
    /// an incomplete frame): queue messages for the application, answer
    /// pings and the peer's close, and fail the connection on a protocol
    /// error, which is returned for the log. Call it only while
    /// [`Connection::read_status`] is [`ReadStatus::Read`] or `Paused`.
    pub fn receive_data(&mut self, buf: &mut BytesMut, now: Instant) -> Option<ProtocolError> {
        let before = buf.len();
        let error = self.decode_frames(buf, now);
        self.stats.bytes_received += before.saturating_sub(buf.len()) as u64;
        error
    }

    /// Lend the message buffer for a large frame's payload to be read
    /// straight into it, when reading is on and `buffered` (bytes read but
    /// not yet passed to [`Connection::receive_data`]) is zero: see
    /// [`Decoder::lend_payload`]. Repay it with
    /// [`Connection::repay_payload`] after one read, whatever it gave.
    pub fn lend_payload(&mut self, buffered: usize) -> Option<PayloadLoan> {
        if self.read_status() != ReadStatus::Read {
            return None;
        }
        self.decoder.as_mut()?.lend_payload(buffered)
    }

    /// Take back a lent buffer with what was read into it, and act on the
    /// frame it may have completed, as [`Connection::receive_data`] does.
    pub fn repay_payload(&mut self, loan: PayloadLoan, now: Instant) -> Option<ProtocolError> {
        self.stats.bytes_received += loan.read() as u64;
        let decoded = self.decoder.as_mut()?.repay(loan);
        self.on_decoded(decoded, now).err()
    }

    fn decode_frames(&mut self, buf: &mut BytesMut, now: Instant) -> Option<ProtocolError> {
        while matches!(self.read_status(), ReadStatus::Read | ReadStatus::Paused) {
            let decoded = self.decoder.as_mut()?.decode(buf);
            match self.on_decoded(decoded, now) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => return Some(error),
            }
        }
        None
    }

    /// Act on what the decoder returned: an event is queued or answered
    /// (`Ok(true)`), an error fails the connection and is returned for the
    /// log; `Ok(false)`: the decoder needs more bytes.
    fn on_decoded(
        &mut self,
        decoded: Result<Option<Event>, ProtocolError>,
        now: Instant,
    ) -> Result<bool, ProtocolError> {
        match decoded {
            Ok(Some(event)) => {
                self.on_event(event);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(error) => {
                self.on_protocol_error(&error, now);
                Err(error)
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Message(message) => {
                self.stats.messages_received += 1;
                self.queue_inbound(Incoming::Message(message));
            }
            Event::Ping(payload) => {
                // "Upon receipt of a Ping frame, an endpoint MUST send a
                // Pong frame in response, unless it already received a
                // Close frame." (RFC 6455 §5.5.2) Nor after sending ours:
                // nothing may follow a close frame.
                if self.close_not_sent() {
                    self.encoder
                        .encode_control(OpCode::Pong, &payload, self.out.inline_mut());
                    self.wakes.writer = true;
                }
            }
            Event::Pong(payload) => {
                if self.receive_pongs {
                    self.queue_inbound(Incoming::Pong(payload));
                }
            }
            Event::Close(frame) => {
                let peer = frame.map_or_else(
                    || CloseFrame::new(CloseCode::NO_STATUS, ""),
                    |(code, reason)| CloseFrame { code, reason },
                );
                // "If an endpoint receives a Close frame and did not
                // previously send a Close frame, the endpoint MUST send a
                // Close frame in response." (§5.5.1) We echo the peer's
                // code, as is customary; none if it sent none.
                self.first_close.get_or_insert((peer.code, ClosedBy::Peer));
                if self.close_not_sent() && !self.gone {
                    let echo = (peer.code != CloseCode::NO_STATUS).then_some(peer.code);
                    self.encoder.encode_close(echo, "", self.out.inline_mut());
                }
                self.closing = Closing::Complete { peer };
                self.wakes.add(Wakes::ALL);
            }
        }
    }

    fn queue_inbound(&mut self, incoming: Incoming) {
        self.inbound_bytes += incoming.len();
        self.inbound.push_back((self.next_arrival, incoming));
        self.next_arrival += 1;
        self.wakes.guest = true;
    }

    /// A failed connection owes the application nothing more.
    fn drop_inbound(&mut self) {
        self.inbound.clear();
        self.inbound_bytes = 0;
        self.topic_inbound.clear();
        self.topic_bytes = 0;
    }

    fn on_protocol_error(&mut self, error: &ProtocolError, now: Instant) {
        let frame = CloseFrame {
            code: error.close_code(),
            reason: error.close_reason(),
        };
        if let Closing::CloseSent { initiator, .. } = &mut self.closing {
            // Our close is out already (its deadline stands): read no more.
            *initiator = Initiator::Failure;
            self.drop_inbound();
            self.wakes.add(Wakes::ALL);
        } else if self.inbound.is_empty() {
            self.send_close(Initiator::Failure, &frame, now);
        } else {
            // Messages that arrived before the bad frame are valid: the
            // application gets them (and its answers go out) before the
            // close. One that stops receiving gets the close timeout.
            self.closing = Closing::FailurePending {
                frame,
                deadline: now + self.config.close_timeout,
            };
            self.wakes.add(Wakes::ALL);
        }
    }

    /// The peer closed TCP, or reading or writing failed: the connection is
    /// gone.
    pub fn receive_eof(&mut self) {
        self.gone = true;
        self.wakes.add(Wakes::ALL);
    }

    // -- bytes out ----------------------------------------------------------

    /// Hand everything queued for writing to the writer (swapped into
    /// `batch`, which must be empty) and say what to do with it.
    pub fn poll_write(&mut self, batch: &mut Outbox) -> WriteStatus {
        if self.gone {
            return WriteStatus::Stop;
        }
        if !self.out.is_empty() {
            std::mem::swap(batch, &mut self.out);
            let http = self.unsent_http.min(batch.len());
            self.unsent_http -= http;
            self.stats.bytes_sent += (batch.len() - http) as u64;
            return WriteStatus::Write;
        }
        let failed = matches!(
            self.closing,
            Closing::CloseSent {
                initiator: Initiator::Failure,
                ..
            }
        );
        let handshake_over = matches!(self.closing, Closing::Complete { .. }) || failed;
        let finished = self.phase == Phase::Rejected
            || handshake_over
            || (self.guest_done && matches!(self.closing, Closing::CloseSent { .. }));
        if finished {
            WriteStatus::Finished {
                shutdown: handshake_over || self.phase == Phase::Rejected,
            }
        } else {
            WriteStatus::Idle
        }
    }

    /// The application waits for the write queue to drain (it is over the
    /// application's high-water mark): the next written batch wakes it.
    pub fn wait_for_drain(&mut self) {
        self.drain_waiter = true;
    }

    /// A batch was written: wake the application if it waits for the
    /// queue to drain (only then: resuming a guest that waits for a
    /// message, to find none, would cost a fiber switch per write).
    pub fn wrote(&mut self) {
        if std::mem::take(&mut self.drain_waiter) {
            self.wakes.guest = true;
        }
    }

    // -- time ---------------------------------------------------------------

    /// The next instant at which [`Connection::on_timeout`] has work, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase != Phase::Open || self.gone {
            return None;
        }
        match &self.closing {
            Closing::FailurePending { deadline, .. } | Closing::CloseSent { deadline, .. } => {
                Some(*deadline)
            }
            Closing::Complete { .. } => None,
            Closing::Open => self.keepalive_deadline().map(|(at, _)| at),
        }
    }

    /// The next keep-alive deadline: a ping once silent for the interval
    /// (once per silence), a close once silent for the idle timeout.
    fn keepalive_deadline(&self) -> Option<(Instant, TimeoutAction)> {
        let last = self.keepalive.last_heard;
        let ping = self
            .config
            .ping_interval
            .filter(|_| !self.keepalive.pinged)
            .map(|interval| (last + interval, TimeoutAction::Pinged));
        let idle = self
            .config
            .idle_timeout
            .map(|timeout| (last + timeout, TimeoutAction::IdleClose));
        match (ping, idle) {
            (Some(p), Some(i)) => Some(if p.0 < i.0 { p } else { i }),
            (p, i) => p.or(i),
        }
    }

    /// Act on every deadline that has passed by `now`.
    pub fn on_timeout(&mut self, now: Instant) -> TimeoutAction {
        if self.phase != Phase::Open || self.gone {
            return TimeoutAction::Nothing;
        }
        match &self.closing {
            Closing::FailurePending { frame, deadline } if *deadline <= now => {
                let frame = frame.clone();
                self.send_close(Initiator::Failure, &frame, now);
                TimeoutAction::FailedLate
            }
            Closing::CloseSent { deadline, .. } if *deadline <= now => {
                self.gone = true;
                self.wakes.add(Wakes::ALL);
                TimeoutAction::CloseTimedOut
            }
            Closing::Open => match self.keepalive_deadline() {
                Some((at, TimeoutAction::IdleClose)) if at <= now => {
                    self.close_from_host(CloseCode::GOING_AWAY, "idle timeout", now);
                    TimeoutAction::IdleClose
                }
                Some((at, TimeoutAction::Pinged)) if at <= now => {
                    self.encoder
                        .encode_control(OpCode::Ping, b"", self.out.inline_mut());
                    self.keepalive.pinged = true;
                    self.wakes.writer = true;
                    TimeoutAction::Pinged
                }
                _ => TimeoutAction::Nothing,
            },
            _ => TimeoutAction::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The connection's rules, driven with byte vectors and explicit time.

    use super::*;
    use crate::protocol::frame::{apply_mask, decode_header, encode_header};
    use crate::protocol::handshake::{HandshakeLimits, parse_request};
    use std::sync::Arc;

    const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
    const SECOND: Duration = Duration::from_secs(1);

    fn config() -> ConnectionConfig {
        ConnectionConfig {
            close_timeout: 5 * SECOND,
            ping_interval: Some(30 * SECOND),
            idle_timeout: Some(120 * SECOND),
            inbound_high_water: 1 << 10,
            ..ConnectionConfig::default()
        }
    }

    fn request(extra: &str) -> Request {
        let raw = format!(
            "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        parse_request(raw.as_bytes(), &HandshakeLimits::default())
            .unwrap()
            .unwrap()
            .0
    }

    /// A masked client frame.
    fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(&mut out, fin, false, opcode, payload.len(), Some(KEY));
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], KEY, 0);
        out
    }

    fn close_frame(code: u16, reason: &str) -> Vec<u8> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        client_frame(OpCode::Close, true, &payload)
    }

    /// The server frames written so far: (opcode, payload).
    fn written(conn: &mut Connection) -> Vec<(OpCode, Vec<u8>)> {
        let mut batch = Outbox::new();
        if conn.poll_write(&mut batch) != WriteStatus::Write {
            return Vec::new();
        }
        let mut frames = Vec::new();
        let bytes = batch.to_vec();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (header, len) = decode_header(rest).unwrap().unwrap();
            let end = len + header.payload_len as usize;
            let opcode = OpCode::from_u8(header.opcode).unwrap();
            frames.push((opcode, rest[len..end].to_vec()));
            rest = &rest[end..];
        }
        frames
    }

    /// A connection accepted at `t0`, its 101 already written.
    fn open(t0: Instant) -> Connection {
        open_with(config(), t0)
    }

    fn open_with(config: ConnectionConfig, t0: Instant) -> Connection {
        let mut conn = Connection::new(Arc::new(config), t0);
        conn.accept(&request(""), AcceptParams::default(), t0)
            .unwrap();
        let mut batch = Outbox::new();
        assert_eq!(conn.poll_write(&mut batch), WriteStatus::Write);
        assert!(batch.to_vec().starts_with(b"HTTP/1.1 101 "));
        conn.take_wakes();
        conn
    }

    fn feed(conn: &mut Connection, bytes: &[u8], now: Instant) -> Option<ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        conn.heard_from_peer(now);
        conn.receive_data(&mut buf, now)
    }

    fn close_payload(code: CloseCode) -> Vec<u8> {
        code.0.to_be_bytes().to_vec()
    }

    fn text(s: &str) -> Incoming {
        Incoming::Message(DataMessage::Text(s.to_owned()))
    }

    #[test]
    fn receive_all_takes_the_queue_in_order_then_reports_the_close() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        assert_eq!(conn.receive_all(t0), Ok(None));
        let mut bytes = client_frame(OpCode::Text, true, b"a");
        bytes.extend(client_frame(OpCode::Binary, true, b"b"));
        bytes.extend(client_frame(OpCode::Text, true, b"c"));
        bytes.extend(close_frame(1000, "bye"));
        assert_eq!(feed(&mut conn, &bytes, t0), None);
        let batch = conn.receive_all(t0).unwrap().unwrap();
        assert_eq!(
            batch,
            vec![
                text("a"),
                Incoming::Message(DataMessage::Binary(b"b".to_vec())),
                text("c")
            ]
        );
        // One allocation, sized for the queue: no room was grown for.
        assert_eq!(batch.capacity(), 3);
        assert_eq!(
            conn.receive_all(t0),
            Err(ConnectionError::CloseRequest {
                code: CloseCode(1000),
                reason: "bye".into()
            })
        );
        assert_eq!(conn.receive_all(t0), Err(ConnectionError::ConnectionClosed));
    }

    #[test]
    fn receive_all_stops_at_its_message_and_byte_bounds() {
        let t0 = Instant::now();
        let config = ConnectionConfig {
            inbound_high_water: 4 << 20,
            ..config()
        };
        let mut conn = open_with(config, t0);
        // More small messages than one batch takes.
        let small = RECEIVE_ALL_MAX_MESSAGES + 3;
        let bytes: Vec<u8> = (0..small)
            .flat_map(|i| client_frame(OpCode::Text, true, i.to_string().as_bytes()))
            .collect();
        assert_eq!(feed(&mut conn, &bytes, t0), None);
        let first = conn.receive_all(t0).unwrap().unwrap();
        assert_eq!(first.len(), RECEIVE_ALL_MAX_MESSAGES);
        assert_eq!(first[0], text("0"));
        let rest = conn.receive_all(t0).unwrap().unwrap();
        assert_eq!(rest.len(), 3);
        assert_eq!(rest[2], text(&(small - 1).to_string()));
        assert_eq!(conn.receive_all(t0), Ok(None));

        // A first message past the byte bound comes alone; then as many as fit.
        let big = vec![7u8; RECEIVE_ALL_MAX_BYTES + 1];
        let half = vec![8u8; RECEIVE_ALL_MAX_BYTES / 2];
        let mut bytes = client_frame(OpCode::Binary, true, &big);
        for _ in 0..3 {
            bytes.extend(client_frame(OpCode::Binary, true, &half));
        }
        assert_eq!(feed(&mut conn, &bytes, t0), None);
        let sizes = |batch: Vec<Incoming>| batch.iter().map(Incoming::len).collect::<Vec<_>>();
        assert_eq!(sizes(conn.receive_all(t0).unwrap().unwrap()), [big.len()]);
        assert_eq!(
            sizes(conn.receive_all(t0).unwrap().unwrap()),
            [half.len(), half.len()]
        );
        assert_eq!(sizes(conn.receive_all(t0).unwrap().unwrap()), [half.len()]);
    }

    #[test]
    fn receive_all_resumes_a_paused_reader() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        // Past the 1 KiB high-water mark: reading pauses.
        let bytes: Vec<u8> = (0..3)
            .flat_map(|_| client_frame(OpCode::Binary, true, &[1; 600]))
            .collect();
        assert_eq!(feed(&mut conn, &bytes, t0), None);
        assert_eq!(conn.read_status(), ReadStatus::Paused);
        conn.take_wakes();
        assert_eq!(conn.receive_all(t0).unwrap().unwrap().len(), 3);
        assert_eq!(conn.read_status(), ReadStatus::Read);
        assert!(conn.take_wakes().reader);
    }

    #[test]
    fn nothing_is_read_before_the_answer() {
        let t0 = Instant::now();
        let mut conn = Connection::new(Arc::new(config()), t0);
        assert_eq!(conn.read_status(), ReadStatus::AwaitAnswer);
        assert_eq!(conn.poll_timeout(), None);
        assert_eq!(
            conn.receive(t0),
            Err(ConnectionError::ConnectionClosed),
            "no messages before the accept"
        );
    }

    #[test]
    fn accept_checks_the_subprotocol_and_answers_once() {
        let t0 = Instant::now();
        let mut conn = Connection::new(Arc::new(config()), t0);
        let request = request("Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n");
        let wrong = AcceptParams {
            subprotocol: Some("chat.v3".into()),
            ..AcceptParams::default()
        };
        assert_eq!(
            conn.accept(&request, wrong, t0),
            Err(AnswerError::SubprotocolNotOffered("chat.v3".into()))
        );
        let right = AcceptParams {
            subprotocol: Some("chat.v2".into()),
            ..AcceptParams::default()
        };
        conn.accept(&request, right.clone(), t0).unwrap();
        assert_eq!(conn.subprotocol(), Some("chat.v2"));
        assert_eq!(
            conn.accept(&request, right, t0),
            Err(AnswerError::AlreadyAnswered)
        );
        let reject = RejectParams {
            status: 400,
            reason: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert_eq!(conn.reject(&reject), Err(AnswerError::AlreadyAnswered));
        assert!(
            conn.take_wakes().reader,
            "the reader starts after the accept"
        );
        assert_eq!(conn.read_status(), ReadStatus::Read);
    }

    #[test]
    fn compression_is_negotiated_only_when_allowed() {
        let t0 = Instant::now();
        let request = request("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        for (compression, expected) in [(true, Some("permessage-deflate")), (false, None)] {
            let mut conn = Connection::new(Arc::new(config()), t0);
            let params = AcceptParams {
                compression,
                ..AcceptParams::default()
            };
            conn.accept(&request, params, t0).unwrap();
            assert_eq!(conn.extensions(), expected);
        }
    }

    #[test]
    fn a_rejection_writes_the_response_and_ends_everything() {
        let t0 = Instant::now();
        let mut conn = Connection::new(Arc::new(config()), t0);
        let reject = RejectParams {
            status: 401,
            reason: String::new(),
            headers: vec![("WWW-Authenticate".into(), b"Bearer".to_vec())],
            body: b"no".to_vec(),
        };
        conn.reject(&reject).unwrap();
        let mut batch = Outbox::new();
        assert_eq!(conn.poll_write(&mut batch), WriteStatus::Write);
        assert!(batch.to_vec().starts_with(b"HTTP/1.1 401 Unauthorized\r\n"));
        batch.clear(0);
        assert_eq!(
            conn.poll_write(&mut batch),
            WriteStatus::Finished { shutdown: true }
        );
        assert_eq!(conn.read_status(), ReadStatus::Stop);
    }

    #[test]
    fn a_guest_that_never_answers_gets_500() {
        let t0 = Instant::now();
        let mut conn = Connection::new(Arc::new(config()), t0);
        conn.guest_finished(GuestEnd::Failed, t0);
        let mut batch = Outbox::new();
        assert_eq!(conn.poll_write(&mut batch), WriteStatus::Write);
        assert!(batch.to_vec().starts_with(b"HTTP/1.1 500 "));
        assert!(batch.to_vec().ends_with(b"the application failed\n"));
    }

    #[test]
    fn a_write_wakes_the_application_only_if_it_waits_for_the_drain() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        conn.send([Outgoing::Text("one".into())]).unwrap();
        let mut batch = Outbox::new();
        assert_eq!(conn.poll_write(&mut batch), WriteStatus::Write);
        conn.take_wakes();
        conn.wrote();
        assert!(!conn.take_wakes().guest, "nobody waits: no wake-up");
        conn.send([Outgoing::Text("two".into())]).unwrap();
        conn.wait_for_drain();
        batch.clear(0);
        assert_eq!(conn.poll_write(&mut batch), WriteStatus::Write);
        conn.wrote();
        assert!(conn.take_wakes().guest, "the waiting sender is woken");
        conn.wrote();
        assert!(!conn.take_wakes().guest, "once");
    }

    #[test]
    fn messages_are_queued_in_order_and_pings_answered() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let mut bytes = client_frame(OpCode::Text, true, b"one");
        bytes.extend(client_frame(OpCode::Ping, true, b"p"));
        bytes.extend(client_frame(OpCode::Binary, true, b"two"));
        assert_eq!(feed(&mut conn, &bytes, t0), None);
        let wakes = conn.take_wakes();
        assert!(wakes.guest && wakes.writer);
        // "A Pong frame sent in response to a Ping frame must have identical
        // Application data" (§5.5.3).
        assert_eq!(written(&mut conn), vec![(OpCode::Pong, b"p".to_vec())]);
        assert_eq!(conn.receive(t0), Ok(Some(text("one"))));
        assert_eq!(
            conn.receive(t0),
            Ok(Some(Incoming::Message(DataMessage::Binary(
                b"two".to_vec()
            ))))
        );
        assert_eq!(conn.receive(t0), Ok(None), "nothing more: wait");
    }

    #[test]
    fn pongs_reach_the_guest_only_when_asked_for() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        feed(&mut conn, &client_frame(OpCode::Pong, true, b"x"), t0);
        assert_eq!(conn.receive(t0), Ok(None));

        let mut conn = Connection::new(Arc::new(config()), t0);
        let params = AcceptParams {
            receive_pongs: true,
            ..AcceptParams::default()
        };
        conn.accept(&request(""), params, t0).unwrap();
        feed(&mut conn, &client_frame(OpCode::Pong, true, b"x"), t0);
        assert_eq!(conn.receive(t0), Ok(Some(Incoming::Pong(b"x".to_vec()))));
    }

    #[test]
    fn the_peer_close_is_echoed_and_reported_once() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let mut bytes = client_frame(OpCode::Text, true, b"last");
        bytes.extend(close_frame(4000, "bye"));
        bytes.extend(client_frame(OpCode::Text, true, b"after close"));
        feed(&mut conn, &bytes, t0);
        // "If an endpoint receives a Close frame and did not previously send
        // a Close frame, the endpoint MUST send a Close frame in response."
        assert_eq!(
            written(&mut conn),
            vec![(OpCode::Close, close_payload(CloseCode(4000)))]
        );
        assert_eq!(conn.read_status(), ReadStatus::Stop);
        assert_eq!(conn.receive(t0), Ok(Some(text("last"))));
        assert_eq!(
            conn.receive(t0),
            Err(ConnectionError::CloseRequest {
                code: CloseCode(4000),
                reason: "bye".into()
            })
        );
        assert_eq!(conn.receive(t0), Err(ConnectionError::ConnectionClosed));
        assert_eq!(
            conn.send([Outgoing::Text("late".into())]),
            Err(ConnectionError::ConnectionClosed)
        );
        // Both close frames crossed: the server closes TCP first (§7.1.1).
        let mut batch = Outbox::new();
        assert_eq!(
            conn.poll_write(&mut batch),
            WriteStatus::Finished { shutdown: true }
        );
    }

    #[test]
    fn a_close_without_code_is_answered_without_code() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        feed(&mut conn, &client_frame(OpCode::Close, true, b""), t0);
        assert_eq!(written(&mut conn), vec![(OpCode::Close, Vec::new())]);
        assert_eq!(
            conn.receive(t0),
            Err(ConnectionError::CloseRequest {
                code: CloseCode::NO_STATUS,
                reason: String::new()
            })
        );
    }

    #[test]
    fn a_guest_close_waits_for_the_peers_close() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        conn.close(4001, "done", t0).unwrap();
        let mut payload = close_payload(CloseCode(4001));
        payload.extend_from_slice(b"done");
        assert_eq!(written(&mut conn), vec![(OpCode::Close, payload)]);
        assert_eq!(
            conn.send([Outgoing::Text("x".into())]),
            Err(ConnectionError::ConnectionClosed),
            "nothing may follow a close frame"
        );
        assert_eq!(conn.poll_timeout(), Some(t0 + 5 * SECOND));
        // Messages the peer sent before its close still arrive, and a ping
        // is not answered after our close.
        let mut bytes = client_frame(OpCode::Text, true, b"in flight");
        bytes.extend(client_frame(OpCode::Ping, true, b""));
        bytes.extend(close_frame(1000, ""));
        feed(&mut conn, &bytes, t0 + SECOND);
        assert_eq!(written(&mut conn), Vec::new());
        assert_eq!(conn.receive(t0), Ok(Some(text("in flight"))));
        assert_eq!(
            conn.receive(t0),
            Err(ConnectionError::CloseRequest {
                code: CloseCode::NORMAL,
                reason: String::new()
            })
        );
        assert_eq!(conn.poll_timeout(), None);
    }

    #[test]
    fn a_peer_that_never_answers_our_close_is_dropped_at_the_timeout() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        conn.close(1000, "", t0).unwrap();
        written(&mut conn);
        assert_eq!(conn.on_timeout(t0 + 4 * SECOND), TimeoutAction::Nothing);
        assert!(!conn.is_gone());
        assert_eq!(
            conn.on_timeout(t0 + 5 * SECOND),
            TimeoutAction::CloseTimedOut
        );
        assert!(conn.is_gone());
        assert_eq!(conn.read_status(), ReadStatus::Stop);
        assert_eq!(conn.poll_write(&mut Outbox::new()), WriteStatus::Stop);
        assert_eq!(conn.receive(t0), Err(ConnectionError::ConnectionClosed));
    }

    #[test]
    fn close_arguments_are_checked() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        for code in [1005, 1006, 1015, 999, 5000] {
            assert!(
                matches!(
                    conn.close(code, "", t0),
                    Err(ConnectionError::InvalidArgument(_))
                ),
                "{code}"
            );
        }
        let long = "x".repeat(MAX_REASON_LEN + 1);
        assert!(matches!(
            conn.close(1000, &long, t0),
            Err(ConnectionError::InvalidArgument(_))
        ));
        assert!(matches!(
            conn.ping(&[0; 126]),
            Err(ConnectionError::InvalidArgument(_))
        ));
        assert!(matches!(
            conn.send([
                Outgoing::Text("fine".into()),
                Outgoing::Pong(vec![0; 126].into())
            ]),
            Err(ConnectionError::InvalidArgument(_))
        ));
        assert_eq!(
            written(&mut conn),
            Vec::new(),
            "nothing of a bad batch is sent"
        );
    }

    #[test]
    fn an_oversized_send_is_refused() {
        let t0 = Instant::now();
        let mut config = config();
        config.max_message_size = 4;
        let mut conn = open_with(config, t0);
        assert!(matches!(
            conn.send([Outgoing::Binary(b"12345".to_vec().into())]),
            Err(ConnectionError::InvalidArgument(_))
        ));
        conn.send([Outgoing::Binary(b"1234"[..].into())]).unwrap();
        assert_eq!(written(&mut conn), vec![(OpCode::Binary, b"1234".to_vec())]);
    }

    #[test]
    fn a_protocol_error_fails_the_connection_at_once_when_nothing_is_queued() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        // An unmasked frame: "The server MUST close the connection upon
        // receiving a frame that is not masked." (§5.1)
        let mut unmasked = Vec::new();
        encode_header(&mut unmasked, true, false, OpCode::Text, 2, None);
        unmasked.extend_from_slice(b"hi");
        assert_eq!(
            feed(&mut conn, &unmasked, t0),
            Some(ProtocolError::UnmaskedFrame)
        );
        let frames = written(&mut conn);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, OpCode::Close);
        assert_eq!(
            frames[0].1[..2],
            close_payload(CloseCode::PROTOCOL_ERROR)[..]
        );
        assert_eq!(conn.read_status(), ReadStatus::Discard);
        assert_eq!(conn.receive(t0), Err(ConnectionError::ConnectionClosed));
        assert_eq!(
            conn.poll_write(&mut Outbox::new()),
            WriteStatus::Finished { shutdown: true }
        );
    }

    #[test]
    fn a_protocol_error_waits_behind_messages_the_guest_has_not_had() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let mut bytes = client_frame(OpCode::Text, true, b"valid");
        bytes.extend(client_frame(OpCode::Text, true, &[0xff]));
        assert_eq!(
            feed(&mut conn, &bytes, t0),
            Some(ProtocolError::InvalidUtf8)
        );
        assert_eq!(written(&mut conn), Vec::new(), "no close yet");
        assert_eq!(conn.read_status(), ReadStatus::Discard);
        assert_eq!(conn.receive(t0), Ok(Some(text("valid"))));
        // The guest answers; the answer goes out before the close.
        conn.send([Outgoing::Text("valid".into())]).unwrap();
        assert_eq!(conn.receive(t0), Err(ConnectionError::ConnectionClosed));
        let frames = written(&mut conn);
        assert_eq!(frames[0], (OpCode::Text, b"valid".to_vec()));
        assert_eq!(frames[1].0, OpCode::Close);
        assert_eq!(
            frames[1].1[..2],
            close_payload(CloseCode::INVALID_PAYLOAD)[..]
        );
    }

    #[test]
    fn a_guest_that_stops_receiving_is_failed_at_the_close_timeout() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let mut bytes = client_frame(OpCode::Text, true, b"valid");
        bytes.extend(client_frame(OpCode::Continuation, true, b"x"));
        feed(&mut conn, &bytes, t0);
        assert_eq!(conn.poll_timeout(), Some(t0 + 5 * SECOND));
        assert_eq!(conn.on_timeout(t0 + 5 * SECOND), TimeoutAction::FailedLate);
        let frames = written(&mut conn);
        assert_eq!(frames[0].0, OpCode::Close);
        assert_eq!(
            frames[0].1[..2],
            close_payload(CloseCode::PROTOCOL_ERROR)[..]
        );
        // Then the peer gets the close timeout to answer.
        assert_eq!(conn.poll_timeout(), Some(t0 + 10 * SECOND));
        assert_eq!(conn.receive(t0), Err(ConnectionError::ConnectionClosed));
    }

    #[test]
    fn a_guest_returning_in_front_of_a_protocol_error_sends_that_error() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let mut bytes = client_frame(OpCode::Text, true, b"valid");
        bytes.extend(client_frame(OpCode::Text, true, &[0xc0]));
        feed(&mut conn, &bytes, t0);
        conn.guest_finished(GuestEnd::Returned, t0);
        let frames = written(&mut conn);
        assert_eq!(
            frames[0].1[..2],
            close_payload(CloseCode::INVALID_PAYLOAD)[..]
        );
    }

    #[test]
    fn messages_and_frame_bytes_are_counted_each_way() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        assert_eq!(conn.status(), Some(101));
        // The 101 response was written by `open`: not frame bytes.
        assert_eq!(conn.stats(), ConnectionStats::default());
        let mut bytes = client_frame(OpCode::Text, true, b"hello");
        bytes.extend(client_frame(OpCode::Ping, true, b"p"));
        let frames_len = bytes.len() as u64;
        // Half a frame more: not decoded, not counted.
        let partial = client_frame(OpCode::Binary, true, b"later");
        bytes.extend_from_slice(&partial[..3]);
        feed(&mut conn, &bytes, t0);
        conn.send([
            Outgoing::Text("hi".into()),
            Outgoing::Binary(b"abc"[..].into()),
            Outgoing::Pong(Vec::new().into()),
        ])
        .unwrap();
        let written_frames = written(&mut conn);
        // Pong to the ping, then the two messages and the unsolicited pong.
        assert_eq!(written_frames.len(), 4);
        let sent: u64 = written_frames.iter().map(|(_, p)| 2 + p.len() as u64).sum();
        let before = ConnectionStats::default();
        let stats = conn.stats();
        assert_eq!(
            stats.since(&before),
            ConnectionStats {
                messages_received: 1,
                bytes_received: frames_len,
                messages_sent: 2,
                bytes_sent: sent,
            }
        );
        assert_eq!(conn.first_close(), None);
    }

    #[test]
    fn the_first_close_and_who_sent_it_are_kept() {
        let t0 = Instant::now();
        // The peer first: its code, even after our answer.
        let mut conn = open(t0);
        feed(&mut conn, &close_frame(4001, "done"), t0);
        assert_eq!(conn.first_close(), Some((CloseCode(4001), ClosedBy::Peer)));
        // The guest first: the peer's answer does not change it.
        let mut conn = open(t0);
        conn.close(4000, "bye", t0).unwrap();
        feed(&mut conn, &close_frame(4000, ""), t0);
        assert!(matches!(conn.closing(), Closing::Complete { .. }));
        assert_eq!(
            conn.first_close(),
            Some((CloseCode(4000), ClosedBy::Application))
        );
        // The host, and a protocol error.
        let mut conn = open(t0);
        conn.close_from_host(CloseCode::GOING_AWAY, "bye", t0);
        assert_eq!(
            conn.first_close(),
            Some((CloseCode::GOING_AWAY, ClosedBy::Host))
        );
        let mut conn = open(t0);
        feed(
            &mut conn,
            &client_frame(OpCode::Continuation, true, b"x"),
            t0,
        );
        assert_eq!(
            conn.first_close().map(|(_, by)| by.as_str()),
            Some("protocol-error")
        );
        // A rejection is a status, not a close.
        let mut conn = Connection::new(Arc::new(config()), t0);
        conn.reject(&RejectParams {
            status: 401,
            reason: String::new(),
            headers: Vec::new(),
            body: b"no".to_vec(),
        })
        .unwrap();
        let mut batch = Outbox::new();
        assert_eq!(conn.poll_write(&mut batch), WriteStatus::Write);
        assert_eq!((conn.status(), conn.stats().bytes_sent), (Some(401), 0));
        assert_eq!(conn.first_close(), None);
    }

    #[test]
    fn a_guest_that_returns_closes_normally_and_one_that_fails_with_1011() {
        for (end, code) in [
            (GuestEnd::Returned, CloseCode::NORMAL),
            (GuestEnd::Failed, CloseCode::INTERNAL_ERROR),
        ] {
            let t0 = Instant::now();
            let mut conn = open(t0);
            conn.guest_finished(end, t0);
            let frames = written(&mut conn);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].1[..2], close_payload(code)[..]);
            // The guest is gone: the writer is done, the reader waits for
            // the peer's close (or the timeout).
            assert_eq!(
                conn.poll_write(&mut Outbox::new()),
                WriteStatus::Finished { shutdown: false }
            );
            assert_eq!(conn.read_status(), ReadStatus::Read);
        }
    }

    #[test]
    fn a_host_close_reaches_the_peer_and_the_guest() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        feed(&mut conn, &client_frame(OpCode::Text, true, b"queued"), t0);
        conn.close_from_host(CloseCode::GOING_AWAY, "server shutting down", t0);
        let frames = written(&mut conn);
        assert_eq!(frames[0].1[..2], close_payload(CloseCode::GOING_AWAY)[..]);
        assert_eq!(conn.receive(t0), Ok(Some(text("queued"))));
        assert_eq!(
            conn.receive(t0),
            Err(ConnectionError::CloseRequest {
                code: CloseCode::GOING_AWAY,
                reason: "server shutting down".into()
            })
        );
        // The peer's answer completes the handshake; reported only once.
        feed(&mut conn, &close_frame(1001, ""), t0);
        assert_eq!(conn.receive(t0), Err(ConnectionError::ConnectionClosed));
        assert_eq!(
            conn.poll_write(&mut Outbox::new()),
            WriteStatus::Finished { shutdown: true }
        );
    }

    #[test]
    fn a_host_close_before_the_accept_is_sent_right_after_it() {
        let t0 = Instant::now();
        let mut conn = Connection::new(Arc::new(config()), t0);
        conn.close_from_host(CloseCode::GOING_AWAY, "bye", t0);
        conn.accept(&request(""), AcceptParams::default(), t0)
            .unwrap();
        let mut batch = Outbox::new();
        assert_eq!(conn.poll_write(&mut batch), WriteStatus::Write);
        let batch = batch.to_vec();
        let head_end = batch.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (header, len) = decode_header(&batch[head_end..]).unwrap().unwrap();
        assert_eq!(header.opcode, OpCode::Close.as_u8());
        assert_eq!(
            batch[head_end + len..head_end + len + 2],
            close_payload(CloseCode::GOING_AWAY)[..]
        );
    }

    #[test]
    fn keepalive_pings_once_per_silence_then_closes_when_idle() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        assert_eq!(conn.poll_timeout(), Some(t0 + 30 * SECOND));
        assert_eq!(conn.on_timeout(t0 + 29 * SECOND), TimeoutAction::Nothing);
        assert_eq!(conn.on_timeout(t0 + 30 * SECOND), TimeoutAction::Pinged);
        assert_eq!(written(&mut conn), vec![(OpCode::Ping, Vec::new())]);
        // Pinged once: the next deadline is the idle timeout.
        assert_eq!(conn.poll_timeout(), Some(t0 + 120 * SECOND));
        // Anything from the peer resets both.
        conn.heard_from_peer(t0 + 60 * SECOND);
        assert_eq!(conn.poll_timeout(), Some(t0 + 90 * SECOND));
        conn.on_timeout(t0 + 90 * SECOND);
        written(&mut conn);
        assert_eq!(conn.on_timeout(t0 + 180 * SECOND), TimeoutAction::IdleClose);
        let frames = written(&mut conn);
        assert_eq!(frames[0].1[..2], close_payload(CloseCode::GOING_AWAY)[..]);
        assert_eq!(
            conn.receive(t0),
            Err(ConnectionError::CloseRequest {
                code: CloseCode::GOING_AWAY,
                reason: "idle timeout".into()
            })
        );
    }

    #[test]
    fn keepalive_can_be_off() {
        let t0 = Instant::now();
        let mut config = config();
        config.ping_interval = None;
        config.idle_timeout = None;
        let conn = open_with(config, t0);
        assert_eq!(conn.poll_timeout(), None);
    }

    #[test]
    fn reading_pauses_while_the_guest_is_behind() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let big = vec![b'a'; 600];
        let mut bytes = client_frame(OpCode::Binary, true, &big);
        bytes.extend(client_frame(OpCode::Binary, true, &big));
        feed(&mut conn, &bytes, t0);
        assert_eq!(conn.read_status(), ReadStatus::Paused);
        conn.take_wakes();
        conn.receive(t0).unwrap();
        assert!(conn.take_wakes().reader, "below the mark again: read on");
        assert_eq!(conn.read_status(), ReadStatus::Read);
    }

    #[test]
    fn a_partial_frame_stays_in_the_buffer() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        let frame = client_frame(OpCode::Text, true, b"split me");
        let mut buf = BytesMut::from(&frame[..5]);
        assert_eq!(conn.receive_data(&mut buf, t0), None);
        assert_eq!(conn.receive(t0), Ok(None));
        buf.extend_from_slice(&frame[5..]);
        conn.receive_data(&mut buf, t0);
        assert_eq!(conn.receive(t0), Ok(Some(text("split me"))));
    }

    #[test]
    fn end_of_stream_ends_everything() {
        let t0 = Instant::now();
        let mut conn = open(t0);
        conn.receive_eof();
        assert!(conn.take_wakes().guest);
        assert_eq!(conn.receive(t0), Err(ConnectionError::ConnectionClosed));
        assert_eq!(conn.read_status(), ReadStatus::Stop);
        assert_eq!(conn.poll_write(&mut Outbox::new()), WriteStatus::Stop);
        assert_eq!(
            conn.send([Outgoing::Text("x".into())]),
            Err(ConnectionError::ConnectionClosed)
        );
    }

    #[test]
    fn a_client_gone_before_the_answer_cannot_be_accepted() {
        let t0 = Instant::now();
        let mut conn = Connection::new(Arc::new(config()), t0);
        conn.receive_eof();
        assert_eq!(
            conn.accept(&request(""), AcceptParams::default(), t0),
            Err(AnswerError::ConnectionClosed)
        );
        assert_eq!(conn.read_status(), ReadStatus::Stop);
    }
}
