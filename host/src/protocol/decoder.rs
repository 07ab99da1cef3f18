//! The server-side receive state machine: frames in, messages and control
//! events out (RFC 6455 §5, §6.2).
//!
//! Bytes are consumed as they arrive, including partial frame payloads: each
//! piece is unmasked in place, appended to the message and (for uncompressed
//! text) UTF-8-validated at once, so a bad byte fails the connection before
//! the rest of its frame or message has arrived.
//!
//! Compression (RFC 7692) plugs in through [`Inflate`]: a message whose first
//! frame has RSV1 set is accumulated raw and inflated as a whole when its
//! final frame arrives.

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, BytesMut};

use super::close::{CloseCode, parse_close_payload};
use super::error::ProtocolError;
use super::frame::{FrameHeader, OpCode, apply_mask, decode_header};
use super::utf8::Utf8Validator;

/// How much of a declared payload length is reserved up front. The length is
/// peer-controlled, so a peer announcing a huge frame and then sending nothing
/// must not make us allocate it; past this, the buffer grows as data arrives.
const PREALLOC_LIMIT: u64 = 64 * 1024;

/// A data frame still owed at least this many payload bytes, with nothing
/// else buffered, may have them read straight into its message (see
/// [`Decoder::lend_payload`]); below it, reading through the connection's
/// buffer costs less than the extra read.
pub const DIRECT_READ_MIN: u64 = 16 * 1024;

/// How much room one direct read offers at most: the frame's declared
/// length is peer-controlled, so memory is reserved as data arrives.
const DIRECT_READ_CHUNK: usize = 256 * 1024;

/// The capacity a reused buffer (compressed-message accumulator) may keep
/// between messages, so one large message does not pin memory for the life
/// of an idle connection.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// Decompresses whole messages (RFC 7692 permessage-deflate, or any extension
/// that uses RSV1 the same way).
pub trait Inflate {
    /// Decompresses one message's payload (all its frames' payloads
    /// concatenated, as received) and appends the result to `out`.
    ///
    /// For permessage-deflate the implementation appends the 0x00 0x00 0xff
    /// 0xff tail itself (RFC 7692 §7.2.2). It must stop with
    /// [`ProtocolError::MessageTooLarge`] once the output would exceed `limit`
    /// bytes (the decoder checks again afterwards, but stopping early is what
    /// bounds memory against a decompression bomb), and report corrupt input
    /// as [`ProtocolError::Compression`].
    fn inflate(
        &mut self,
        compressed: &[u8],
        limit: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtocolError>;
}

/// Decoder limits and options.
#[derive(Clone, Debug)]
pub struct DecoderConfig {
    /// The largest frame payload accepted, in bytes (default 16 MiB). A larger
    /// declared length fails the connection with 1009 as soon as the header
    /// is read.
    pub max_frame_size: u64,
    /// The largest message accepted, in bytes (default 64 MiB); applies to the
    /// payload as received and, for compressed messages, after decompression
    /// too. Exceeding it fails the connection with 1009.
    pub max_message_size: u64,
    /// Whether RSV1 ("compressed") may be set on the first frame of a data
    /// message (default false). Takes effect only with an inflater installed;
    /// [`Decoder::set_inflater`] sets it.
    pub rsv1_allowed: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            rsv1_allowed: false,
        }
    }
}

/// A complete data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataMessage {
    /// A text message (validated UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// Something the peer sent, as far as the connection needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete (reassembled, decompressed) data message.
    Message(DataMessage),
    /// A ping; "an endpoint MUST send a Pong frame in response" with "the
    /// exact same Application data" (§5.5.2, §5.5.3).
    Ping(Vec<u8>),
    /// A pong (solicited or not).
    Pong(Vec<u8>),
    /// A close frame: its status code and reason, or `None` if it had no body.
    /// Everything received after it is discarded.
    Close(Option<(CloseCode, String)>),
}

/// A message buffer lent to the IO layer by [`Decoder::lend_payload`], to
/// read a data frame's payload into; give it back with [`Decoder::repay`].
#[derive(Debug)]
pub struct PayloadLoan {
    buf: Vec<u8>,
    /// The buffer's length when lent.
    start: usize,
    /// Bytes the frame still owed when lent.
    owed: usize,
}

impl PayloadLoan {
    /// Payload bytes read into the loan so far.
    pub fn read(&self) -> usize {
        self.buf.len() - self.start
    }
}

// SAFETY: the loan is the buffer's end, offered to a reader: every method
// delegates to `Vec<u8>`'s own `BufMut`, only shortening what it offers to
// what the frame still owes. `chunk_mut` reserves room first, so it is
// non-empty while `remaining_mut` is not; `advance_mut`'s contract (its
// caller initialised that many bytes of the last `chunk_mut`, which is
// within the vector's spare capacity) is passed on unchanged. Nothing
// here can change the bytes before `start`, which `Decoder::repay` relies
// on (they were checked when they arrived).
unsafe impl BufMut for PayloadLoan {
    fn remaining_mut(&self) -> usize {
        self.owed - self.read()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: our caller's promise, as above.
        unsafe { self.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        let owed = self.remaining_mut();
        if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(owed.min(DIRECT_READ_CHUNK));
        }
        let chunk = self.buf.chunk_mut();
        let len = chunk.len().min(owed);
        &mut chunk[..len]
    }
}

/// What the current frame's payload is for.
#[derive(Clone, Copy, Debug)]
enum FrameKind {
    /// Part of a data message.
    Data,
    /// A control frame (Close, Ping or Pong).
    Control(OpCode),
}

/// The frame whose payload is being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
    kind: FrameKind,
    fin: bool,
    mask: [u8; 4],
    remaining: u64,
    /// Payload position modulo 4, for unmasking in pieces.
    phase: usize,
}

/// The data message being assembled (its bytes are in `Decoder::payload`).
#[derive(Clone, Copy, Debug)]
struct Message {
    text: bool,
    compressed: bool,
}

#[derive(Debug)]
enum State {
    /// Waiting for a frame header.
    Header,
    /// Reading the payload of a frame.
    Payload(Frame),
    /// The message buffer is lent out for this frame's payload (see
    /// [`Decoder::lend_payload`]); input waits until it is repaid.
    Lent(Frame),
    /// A close frame was received; all further input is discarded.
    Closed,
    /// An error was returned; every later call returns it again.
    Failed(ProtocolError),
}

/// The server-side receive state machine. Feed it the bytes read from the
/// socket with [`Decoder::decode`].
pub struct Decoder {
    config: DecoderConfig,
    state: State,
    /// The data message being assembled, if one is open.
    message: Option<Message>,
    /// The open message's payload so far (compressed bytes if compressed).
    payload: Vec<u8>,
    /// The current control frame's payload.
    control: Vec<u8>,
    utf8: Utf8Validator,
    inflater: Option<Box<dyn Inflate + Send>>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("message", &self.message)
            .field("payload_len", &self.payload.len())
            .field("inflater", &self.inflater.is_some())
            .finish()
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DecoderConfig::default())
    }
}

impl Decoder {
    /// A decoder at the start of the WebSocket stream.
    pub fn new(config: DecoderConfig) -> Self {
        Decoder {
            config,
            state: State::Header,
            message: None,
            payload: Vec::new(),
            control: Vec::new(),
            utf8: Utf8Validator::new(),
            inflater: None,
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Changes the message size limit (e.g. a guest tightening it at accept
    /// time). Applies from the next frame header on.
    pub fn set_max_message_size(&mut self, limit: u64) {
        self.config.max_message_size = limit;
    }

    /// Changes the frame size limit. Applies from the next frame header on.
    pub fn set_max_frame_size(&mut self, limit: u64) {
        self.config.max_frame_size = limit;
    }

    /// Installs the decompressor negotiated in the handshake and allows RSV1
    /// on the first frame of data messages ("the Per-Message Compressed bit",
    /// RFC 7692 §6).
    pub fn set_inflater(&mut self, inflater: Box<dyn Inflate + Send>) {
        self.inflater = Some(inflater);
        self.config.rsv1_allowed = true;
    }

    /// Whether a close frame has been received.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Consumes bytes from the front of `buf` and returns the next event, or
    /// `Ok(None)` when more bytes are needed (everything in `buf` has then
    /// been consumed, partial payloads included). Call it again after an
    /// event: `buf` may hold more.
    ///
    /// An `Err` means the connection must be failed with
    /// [`ProtocolError::close_code`]; the decoder stays poisoned and returns
    /// the same error from then on. After [`Event::Close`], input is
    /// discarded and `Ok(None)` returned.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Closed => {
                // "After sending a Close frame, the endpoint MUST NOT send any
                // more data frames" — so anything after it is not ours to read.
                buf.clear();
                return Ok(None);
            }
            State::Lent(_) => return Ok(None),
            State::Header | State::Payload(_) => {}
        }
        self.decode_inner(buf).inspect_err(|e| self.poison(e))
    }

    /// After an error: drop what was being assembled and return `error`
    /// from every later call.
    fn poison(&mut self, error: &ProtocolError) {
        self.state = State::Failed(error.clone());
        self.message = None;
        self.payload = Vec::new();
        self.control = Vec::new();
    }

    /// Lend the open message's buffer, to read the current data frame's
    /// payload straight into it, when that frame still needs at least
    /// [`DIRECT_READ_MIN`] bytes and `buffered` (bytes read but not yet
    /// decoded) is zero: the socket's copy is then the only one. Until
    /// [`Decoder::repay`], [`Decoder::decode`] consumes nothing.
    pub fn lend_payload(&mut self, buffered: usize) -> Option<PayloadLoan> {
        let State::Payload(frame) = self.state else {
            return None;
        };
        if buffered > 0
            || !matches!(frame.kind, FrameKind::Data)
            || frame.remaining < DIRECT_READ_MIN
        {
            return None;
        }
        self.state = State::Lent(frame);
        let buf = std::mem::take(&mut self.payload);
        Some(PayloadLoan {
            start: buf.len(),
            // Lossless: the frame's payload was bounded by the message
            // limit, and memory holds what was reserved for it.
            owed: usize::try_from(frame.remaining).unwrap_or(usize::MAX),
            buf,
        })
    }

    /// Take back a lent buffer with the payload bytes read into it (still
    /// masked): they are unmasked and checked as if passed to
    /// [`Decoder::decode`]. Returns the event the frame completed, if any.
    pub fn repay(&mut self, loan: PayloadLoan) -> Result<Option<Event>, ProtocolError> {
        self.repay_inner(loan).inspect_err(|e| self.poison(e))
    }

    fn repay_inner(&mut self, loan: PayloadLoan) -> Result<Option<Event>, ProtocolError> {
        let State::Lent(mut frame) = self.state else {
            // Not lent by this decoder's current frame: nothing to take.
            return Ok(None);
        };
        let PayloadLoan { mut buf, start, .. } = loan;
        let read = buf.len() - start;
        apply_mask(&mut buf[start..], frame.mask, frame.phase);
        self.payload = buf;
        if self.message.is_some_and(|m| m.text && !m.compressed) {
            self.utf8.feed(&self.payload[start..])?;
        }
        if self.payload_read(&mut frame, read) {
            self.finish_frame(frame)
        } else {
            Ok(None)
        }
    }

    /// Count `read` more payload bytes of `frame`: whether its payload is
    /// complete (the next header is due) or still being read.
    fn payload_read(&mut self, frame: &mut Frame, read: usize) -> bool {
        frame.remaining -= read as u64;
        frame.phase = (frame.phase + read) % 4;
        self.state = if frame.remaining > 0 {
            State::Payload(*frame)
        } else {
            State::Header
        };
        frame.remaining == 0
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        loop {
            let mut frame = match self.state {
                State::Header => {
                    let Some((header, len)) = decode_header(buf)? else {
                        return Ok(None);
                    };
                    buf.advance(len);
                    let frame = self.start_frame(&header)?;
                    self.state = State::Payload(frame);
                    frame
                }
                State::Payload(frame) => frame,
                State::Lent(_) | State::Closed | State::Failed(_) => return Ok(None),
            };
            if frame.remaining > 0 {
                if buf.is_empty() {
                    return Ok(None);
                }
                // Lossless: the minimum is at most buf.len().
                let take = frame.remaining.min(buf.len() as u64) as usize;
                let chunk = &mut buf[..take];
                apply_mask(chunk, frame.mask, frame.phase);
                match frame.kind {
                    FrameKind::Data => {
                        if self.message.is_some_and(|m| m.text && !m.compressed) {
                            self.utf8.feed(chunk)?;
                        }
                        self.payload.extend_from_slice(chunk);
                    }
                    FrameKind::Control(_) => self.control.extend_from_slice(chunk),
                }
                buf.advance(take);
                if !self.payload_read(&mut frame, take) {
                    return Ok(None);
                }
            }
            self.state = State::Header;
            if let Some(event) = self.finish_frame(frame)? {
                return Ok(Some(event));
            }
        }
    }

    /// Validates a frame header against the framing rules and prepares to
    /// read its payload.
    fn start_frame(&mut self, h: &FrameHeader) -> Result<Frame, ProtocolError> {
        // "RSV1, RSV2, RSV3: MUST be 0 unless an extension is negotiated that
        // defines meanings for non-zero values." No extension we support
        // defines RSV2 or RSV3.
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        // "If an unknown opcode is received, the receiving endpoint MUST _Fail
        // the WebSocket Connection_."
        let opcode = OpCode::from_u8(h.opcode).ok_or(ProtocolError::UnknownOpcode(h.opcode))?;
        // RFC 7692 §6: "An endpoint MUST NOT set the "Per-Message Compressed"
        // bit of control frames and non-first fragments of a data message."
        if h.rsv1
            && !(self.compression_enabled() && matches!(opcode, OpCode::Text | OpCode::Binary))
        {
            return Err(ProtocolError::ReservedBitsSet);
        }
        // "The server MUST close the connection upon receiving a frame that is
        // not masked."
        let Some(mask) = h.mask else {
            return Err(ProtocolError::UnmaskedFrame);
        };
        if opcode.is_control() {
            // "All control frames MUST have a payload length of 125 bytes or
            // less and MUST NOT be fragmented."
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(h.payload_len));
            }
            self.control.clear();
            return Ok(Frame {
                kind: FrameKind::Control(opcode),
                fin: true,
                mask,
                remaining: h.payload_len,
                phase: 0,
            });
        }
        match (opcode, self.message) {
            // A continuation needs a message to continue.
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            // "The fragments of one message MUST NOT be interleaved between the
            // fragments of another message unless an extension has been
            // negotiated that can interpret the interleaving."
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        if h.payload_len > self.config.max_frame_size {
            return Err(ProtocolError::FrameTooLarge {
                size: h.payload_len,
                limit: self.config.max_frame_size,
            });
        }
        let limit = self.config.max_message_size;
        if (self.payload.len() as u64).saturating_add(h.payload_len) > limit {
            return Err(ProtocolError::MessageTooLarge { limit });
        }
        if opcode != OpCode::Continuation {
            self.message = Some(Message {
                text: opcode == OpCode::Text,
                compressed: h.rsv1,
            });
            // Already empty between messages; cleared here so the SAFETY
            // argument in finish_message needs no invariant from elsewhere.
            self.payload.clear();
            self.utf8.reset();
            // Lossless: at most PREALLOC_LIMIT.
            self.payload
                .reserve(h.payload_len.min(PREALLOC_LIMIT) as usize);
        }
        Ok(Frame {
            kind: FrameKind::Data,
            fin: h.fin,
            mask,
            remaining: h.payload_len,
            phase: 0,
        })
    }

    fn compression_enabled(&self) -> bool {
        self.config.rsv1_allowed && self.inflater.is_some()
    }

    /// Acts on a frame whose payload has been read completely.
    fn finish_frame(&mut self, frame: Frame) -> Result<Option<Event>, ProtocolError> {
        match frame.kind {
            FrameKind::Data if frame.fin => self.finish_message().map(Some),
            FrameKind::Data => Ok(None),
            FrameKind::Control(OpCode::Ping) => {
                Ok(Some(Event::Ping(std::mem::take(&mut self.control))))
            }
            FrameKind::Control(OpCode::Pong) => {
                Ok(Some(Event::Pong(std::mem::take(&mut self.control))))
            }
            FrameKind::Control(_) => {
                let close = parse_close_payload(&self.control)?;
                self.state = State::Closed;
                // A message left open by the close is abandoned.
                self.message = None;
                self.payload = Vec::new();
                self.control = Vec::new();
                Ok(Some(Event::Close(close)))
            }
        }
    }

    /// Completes the open data message: decompression (if RSV1 was set on its
    /// first frame) and the final UTF-8 check for text.
    fn finish_message(&mut self) -> Result<Event, ProtocolError> {
        let Some(message) = self.message.take() else {
            // start_frame opens a message for every data frame it accepts.
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let limit = self.config.max_message_size;
        let data = if message.compressed {
            let inflater = self
                .inflater
                .as_mut()
                .ok_or_else(|| ProtocolError::Compression("no inflater".into()))?;
            let mut out = Vec::new();
            inflater.inflate(&self.payload, limit, &mut out)?;
            // Keep the accumulator for the next compressed message, within reason.
            self.payload.clear();
            if self.payload.capacity() > RETAINED_CAPACITY {
                self.payload = Vec::new();
            }
            if out.len() as u64 > limit {
                return Err(ProtocolError::MessageTooLarge { limit });
            }
            if message.text {
                DataMessage::Text(String::from_utf8(out).map_err(|_| ProtocolError::InvalidUtf8)?)
            } else {
                DataMessage::Binary(out)
            }
        } else {
            let payload = std::mem::take(&mut self.payload);
            if message.text {
                // "MUST _Fail the WebSocket Connection_" if the message ends
                // inside a UTF-8 sequence.
                self.utf8.finish()?;
                // SAFETY: every byte of `payload` was passed, in order, to
                // `self.utf8.feed`: start_frame cleared the payload and reset
                // the validator when this text message began, and decode_inner
                // feeds each unmasked chunk of an uncompressed text message
                // right before appending it, and `repay` feeds each chunk
                // read into a lent buffer (a `PayloadLoan` only appends)
                // right after unmasking it; nothing else appends while the
                // message is open. Every feed
                // returned Ok and `finish` returned Ok, and by the validator's
                // invariant (see `Utf8Validator`) that means the concatenation
                // is a sequence of pieces accepted by `std::str::from_utf8`
                // with no incomplete tail, i.e. valid UTF-8.
                DataMessage::Text(unsafe { String::from_utf8_unchecked(payload) })
            } else {
                DataMessage::Binary(payload)
            }
        };
        Ok(Event::Message(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::encode_header;
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame with a raw opcode and all three RSV bits.
    fn raw_frame(
        fin: bool,
        rsv: [bool; 3],
        opcode: u8,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        encode_header(
            &mut out,
            fin,
            rsv[0],
            OpCode::Continuation,
            payload.len(),
            mask,
        );
        out[0] |= (u8::from(rsv[1]) << 5) | (u8::from(rsv[2]) << 4) | opcode;
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }

    fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        raw_frame(fin, [false; 3], op.as_u8(), payload, Some(KEY))
    }

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Event>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        let mut events = Vec::new();
        while let Some(e) = d.decode(&mut buf)? {
            events.push(e);
        }
        assert!(buf.is_empty());
        Ok(events)
    }

    /// Decode `wire` as the IO layer does: reads of at most `step` bytes,
    /// into the buffer or, when the decoder lends it, straight into the
    /// message. Also returns how many reads went into a loan.
    fn decode_with_loans(
        d: &mut Decoder,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<Event>, usize), ProtocolError> {
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        let mut pos = 0;
        let mut loans = 0;
        loop {
            while let Some(e) = d.decode(&mut buf)? {
                events.push(e);
            }
            if let Some(mut loan) = d.lend_payload(buf.len()) {
                // Input waits while the buffer is out.
                let mut more = BytesMut::from(&b"\x81"[..]);
                assert_eq!(d.decode(&mut more), Ok(None));
                assert_eq!(more.len(), 1);
                let n = step.min(loan.remaining_mut()).min(wire.len() - pos);
                loan.put_slice(&wire[pos..pos + n]);
                pos += n;
                loans += 1;
                events.extend(d.repay(loan)?);
            } else if pos < wire.len() {
                let n = step.min(wire.len() - pos);
                buf.extend_from_slice(&wire[pos..pos + n]);
                pos += n;
            } else {
                return Ok((events, loans));
            }
        }
    }

    fn decode_one(bytes: &[u8]) -> Result<Vec<Event>, ProtocolError> {
        decode_all(&mut Decoder::default(), bytes)
    }

    fn text(s: &str) -> Event {
        Event::Message(DataMessage::Text(s.into()))
    }

    fn binary(b: &[u8]) -> Event {
        Event::Message(DataMessage::Binary(b.into()))
    }

    #[test]
    fn single_frame_messages() {
        assert_eq!(
            decode_one(&frame(true, OpCode::Text, b"hello")),
            Ok(vec![text("hello")])
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Text, b"")),
            Ok(vec![text("")])
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Binary, b"\0\xff")),
            Ok(vec![binary(b"\0\xff")])
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Binary, b"")),
            Ok(vec![binary(b"")])
        );
    }

    #[test]
    fn all_length_forms() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(
                decode_one(&frame(true, OpCode::Binary, &payload)),
                Ok(vec![binary(&payload)])
            );
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut stream = frame(false, OpCode::Text, "κό".as_bytes());
        stream.extend(frame(true, OpCode::Ping, b"p"));
        stream.extend(frame(true, OpCode::Continuation, "σμε".as_bytes()));
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for b in stream {
            buf.extend_from_slice(&[b]);
            while let Some(e) = d.decode(&mut buf).unwrap() {
                events.push(e);
            }
            // Partial payloads are consumed; only an incomplete header waits.
            assert!(buf.len() < 6, "{}", buf.len());
        }
        assert_eq!(events, vec![Event::Ping(b"p".to_vec()), text("κόσμε")]);
    }

    #[test]
    fn unmasked_frame_rejected() {
        let f = raw_frame(true, [false; 3], 1, b"hi", None);
        assert_eq!(decode_one(&f), Err(ProtocolError::UnmaskedFrame));
        assert_eq!(
            ProtocolError::UnmaskedFrame.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
    }

    #[test]
    fn reserved_bits_rejected() {
        for rsv in [
            [true, false, false],
            [false, true, false],
            [false, false, true],
        ] {
            let f = raw_frame(true, rsv, 1, b"hi", Some(KEY));
            assert_eq!(
                decode_one(&f),
                Err(ProtocolError::ReservedBitsSet),
                "{rsv:?}"
            );
        }
        // rsv1_allowed alone (no inflater) does not allow it.
        let mut d = Decoder::new(DecoderConfig {
            rsv1_allowed: true,
            ..Default::default()
        });
        let f = raw_frame(true, [true, false, false], 1, b"hi", Some(KEY));
        assert_eq!(decode_all(&mut d, &f), Err(ProtocolError::ReservedBitsSet));
    }

    #[test]
    fn unknown_opcodes_rejected() {
        for op in (3..=7).chain(0xB..=0xF) {
            let f = raw_frame(true, [false; 3], op, b"", Some(KEY));
            assert_eq!(decode_one(&f), Err(ProtocolError::UnknownOpcode(op)));
        }
    }

    #[test]
    fn fragmented_control_rejected() {
        for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
            assert_eq!(
                decode_one(&frame(false, op, b"")),
                Err(ProtocolError::FragmentedControlFrame)
            );
        }
    }

    #[test]
    fn long_control_rejected_from_header() {
        let mut max = b"\x03\xe8".to_vec();
        max.extend([b'a'; 123]);
        for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
            assert_eq!(decode_one(&frame(true, op, &max)).map(|v| v.len()), Ok(1));
            let f = frame(true, op, &[0; 126]);
            // The header alone is enough.
            assert_eq!(
                decode_one(&f[..8]),
                Err(ProtocolError::ControlFrameTooLong(126))
            );
        }
    }

    #[test]
    fn continuation_without_start_rejected() {
        assert_eq!(
            decode_one(&frame(true, OpCode::Continuation, b"x")),
            Err(ProtocolError::UnexpectedContinuation)
        );
        // Also after a completed message.
        let mut s = frame(true, OpCode::Text, b"a");
        s.extend(frame(true, OpCode::Continuation, b"b"));
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&s[..]);
        assert_eq!(d.decode(&mut buf), Ok(Some(text("a"))));
        assert_eq!(
            d.decode(&mut buf),
            Err(ProtocolError::UnexpectedContinuation)
        );
    }

    #[test]
    fn new_message_inside_fragmented_rejected() {
        for op in [OpCode::Text, OpCode::Binary] {
            let mut s = frame(false, OpCode::Binary, b"a");
            s.extend(frame(true, op, b"b"));
            assert_eq!(decode_one(&s), Err(ProtocolError::ExpectedContinuation));
        }
    }

    #[test]
    fn fragmented_messages_with_interleaved_control() {
        let mut s = frame(false, OpCode::Text, b"fra");
        s.extend(frame(true, OpCode::Ping, b"1"));
        s.extend(frame(false, OpCode::Continuation, b"gme"));
        s.extend(frame(true, OpCode::Pong, b"2"));
        s.extend(frame(false, OpCode::Continuation, b""));
        s.extend(frame(true, OpCode::Continuation, b"nted"));
        s.extend(frame(false, OpCode::Binary, b"\x01"));
        s.extend(frame(true, OpCode::Continuation, b"\x02"));
        assert_eq!(
            decode_one(&s),
            Ok(vec![
                Event::Ping(b"1".to_vec()),
                Event::Pong(b"2".to_vec()),
                text("fragmented"),
                binary(b"\x01\x02"),
            ])
        );
    }

    #[test]
    fn frame_too_large_from_header() {
        let mut d = Decoder::new(DecoderConfig {
            max_frame_size: 10,
            ..Default::default()
        });
        let f = frame(true, OpCode::Binary, &[0; 10]);
        assert_eq!(decode_all(&mut d, &f), Ok(vec![binary(&[0; 10])]));
        let f = frame(true, OpCode::Binary, &[0; 11]);
        let err = decode_all(&mut d, &f[..6]).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::FrameTooLarge {
                size: 11,
                limit: 10
            }
        );
        assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
        // A huge declared 64-bit length is refused without allocating it.
        let mut h = Vec::new();
        encode_header(&mut h, true, false, OpCode::Binary, 1 << 40, Some(KEY));
        assert_eq!(
            decode_one(&h),
            Err(ProtocolError::FrameTooLarge {
                size: 1 << 40,
                limit: 16 << 20
            })
        );
    }

    #[test]
    fn message_too_large_at_header_time() {
        let mut d = Decoder::new(DecoderConfig {
            max_message_size: 10,
            ..Default::default()
        });
        let mut s = frame(false, OpCode::Text, b"12345");
        s.extend(frame(false, OpCode::Continuation, b"12345"));
        s.extend(frame(true, OpCode::Continuation, b""));
        assert_eq!(decode_all(&mut d, &s), Ok(vec![text("1234512345")]));
        let mut s = frame(false, OpCode::Text, b"12345");
        let second = frame(true, OpCode::Continuation, b"123456");
        s.extend_from_slice(&second[..6]); // header only
        let err = decode_all(&mut d, &s).unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooLarge { limit: 10 });
        assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
        // A single frame over the message limit.
        let mut d = Decoder::new(DecoderConfig {
            max_message_size: 3,
            ..Default::default()
        });
        assert_eq!(
            decode_all(&mut d, &frame(true, OpCode::Binary, b"1234")[..6]),
            Err(ProtocolError::MessageTooLarge { limit: 3 })
        );
    }

    #[test]
    fn set_max_message_size_tightens() {
        let mut d = Decoder::default();
        d.set_max_message_size(2);
        assert_eq!(d.config().max_message_size, 2);
        assert_eq!(
            decode_all(&mut d, &frame(true, OpCode::Binary, b"abc")),
            Err(ProtocolError::MessageTooLarge { limit: 2 })
        );
        let mut d = Decoder::default();
        d.set_max_frame_size(2);
        assert_eq!(
            decode_all(&mut d, &frame(true, OpCode::Binary, b"abc")),
            Err(ProtocolError::FrameTooLarge { size: 3, limit: 2 })
        );
    }

    #[test]
    fn invalid_utf8_fails_fast_mid_frame() {
        // "κόσμε" then an invalid byte, in a frame whose rest never arrives.
        let mut payload = "κόσμε".as_bytes().to_vec();
        payload.extend_from_slice(&[0xF4, 0x90, 0x80, 0x80]);
        payload.extend_from_slice(b"edited");
        let f = frame(true, OpCode::Text, &payload);
        let header_len = 2 + 4;
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&f[..header_len + 11]); // up to F4
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&f[header_len + 11..header_len + 12]); // 0x90
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
        assert_eq!(
            ProtocolError::InvalidUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
    }

    #[test]
    fn invalid_utf8_fails_fast_mid_fragmented_message() {
        // Sequence split across fragments is fine...
        let euro = "€".as_bytes();
        let mut s = frame(false, OpCode::Text, &euro[..1]);
        s.extend(frame(false, OpCode::Continuation, &euro[1..2]));
        s.extend(frame(true, OpCode::Continuation, &euro[2..]));
        assert_eq!(decode_one(&s), Ok(vec![text("€")]));
        // ...but a bad continuation in the second fragment fails before the
        // message ends.
        let mut s = frame(false, OpCode::Text, &euro[..1]);
        s.extend(frame(false, OpCode::Continuation, b"a"));
        assert_eq!(decode_one(&s), Err(ProtocolError::InvalidUtf8));
        // And an invalid first fragment fails without FIN.
        assert_eq!(
            decode_one(&frame(false, OpCode::Text, b"\xff")),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn incomplete_utf8_at_message_end_rejected() {
        let euro = "€".as_bytes();
        let mut s = frame(false, OpCode::Text, &euro[..1]);
        s.extend(frame(true, OpCode::Continuation, &euro[1..2]));
        assert_eq!(decode_one(&s), Err(ProtocolError::InvalidUtf8));
        // Binary messages are not validated.
        assert_eq!(
            decode_one(&frame(true, OpCode::Binary, b"\xff")),
            Ok(vec![binary(b"\xff")])
        );
    }

    #[test]
    fn close_frames() {
        assert_eq!(
            decode_one(&frame(true, OpCode::Close, b"")),
            Ok(vec![Event::Close(None)])
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Close, b"\x03\xe8bye")),
            Ok(vec![Event::Close(Some((CloseCode::NORMAL, "bye".into())))])
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Close, b"\x0f\xa0")),
            Ok(vec![Event::Close(Some((CloseCode(4000), String::new())))])
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Close, b"\x03")),
            Err(ProtocolError::CloseFrameTooShort)
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Close, b"\x03\xed")),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            decode_one(&frame(true, OpCode::Close, b"\x03\xe8\xce\xba\xe1\xbd")),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn data_after_close_is_ignored() {
        let mut s = frame(false, OpCode::Text, b"open");
        s.extend(frame(true, OpCode::Close, b"\x03\xe9"));
        s.extend(frame(true, OpCode::Text, b"after"));
        s.extend(raw_frame(true, [false; 3], 1, b"unmasked garbage", None));
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&s[..]);
        assert_eq!(
            d.decode(&mut buf),
            Ok(Some(Event::Close(Some((
                CloseCode::GOING_AWAY,
                String::new()
            )))))
        );
        assert!(d.is_closed());
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
        buf.extend_from_slice(b"\xff\xff\xff");
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn poisoned_after_error() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&raw_frame(true, [false; 3], 3, b"", Some(KEY))[..]);
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::UnknownOpcode(3)));
        let mut good = BytesMut::from(&frame(true, OpCode::Text, b"ok")[..]);
        assert_eq!(d.decode(&mut good), Err(ProtocolError::UnknownOpcode(3)));
        assert_eq!(
            d.decode(&mut BytesMut::new()),
            Err(ProtocolError::UnknownOpcode(3))
        );
    }

    #[test]
    fn invalid_64_bit_length_rejected() {
        let mut f = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(&KEY);
        assert_eq!(decode_one(&f), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn needs_more_returns_none_and_keeps_state() {
        let f = frame(true, OpCode::Binary, &[7; 300]);
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&f[..3]); // incomplete header stays in buf
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 3);
        buf.extend_from_slice(&f[3..]);
        assert_eq!(d.decode(&mut buf), Ok(Some(binary(&[7; 300]))));
        assert_eq!(d.decode(&mut buf), Ok(None));
    }

    /// A toy "compression": the compressed form is the payload reversed with
    /// a 0xAA marker byte; anything else is corrupt.
    struct Reverse;
    impl Inflate for Reverse {
        fn inflate(
            &mut self,
            compressed: &[u8],
            limit: u64,
            out: &mut Vec<u8>,
        ) -> Result<(), ProtocolError> {
            let Some((&0xAA, rest)) = compressed.split_first() else {
                return Err(ProtocolError::Compression("bad marker".into()));
            };
            if rest.len() as u64 > limit {
                return Err(ProtocolError::MessageTooLarge { limit });
            }
            out.extend(rest.iter().rev());
            Ok(())
        }
    }

    fn compressed(data: &[u8]) -> Vec<u8> {
        let mut c = vec![0xAA];
        c.extend(data.iter().rev());
        c
    }

    fn inflating() -> Decoder {
        let mut d = Decoder::default();
        d.set_inflater(Box::new(Reverse));
        d
    }

    #[test]
    fn compressed_messages() {
        let c = compressed("κόσμε".as_bytes());
        // Single frame, RSV1 on the first (only) frame.
        let f = raw_frame(true, [true, false, false], 1, &c, Some(KEY));
        assert_eq!(decode_all(&mut inflating(), &f), Ok(vec![text("κόσμε")]));
        // Fragmented: RSV1 only on the first; the split lands mid-sequence,
        // which is fine because validation happens after inflation.
        let mut s = raw_frame(false, [true, false, false], 2, &c[..3], Some(KEY));
        s.extend(frame(true, OpCode::Ping, b"x"));
        s.extend(frame(true, OpCode::Continuation, &c[3..]));
        s.extend(frame(true, OpCode::Text, b"plain"));
        assert_eq!(
            decode_all(&mut inflating(), &s),
            Ok(vec![
                Event::Ping(b"x".to_vec()),
                binary("κόσμε".as_bytes()),
                text("plain")
            ])
        );
    }

    #[test]
    fn compressed_rsv1_rules() {
        // RSV1 on a continuation frame.
        let mut s = raw_frame(
            false,
            [true, false, false],
            1,
            &compressed(b"ab")[..1],
            Some(KEY),
        );
        s.extend(raw_frame(
            true,
            [true, false, false],
            0,
            &compressed(b"ab")[1..],
            Some(KEY),
        ));
        assert_eq!(
            decode_all(&mut inflating(), &s),
            Err(ProtocolError::ReservedBitsSet)
        );
        // RSV1 on control frames.
        for op in [8, 9, 0xA] {
            let f = raw_frame(true, [true, false, false], op, b"", Some(KEY));
            assert_eq!(
                decode_all(&mut inflating(), &f),
                Err(ProtocolError::ReservedBitsSet)
            );
        }
        // RSV2/RSV3 still forbidden.
        let f = raw_frame(true, [false, true, false], 1, b"", Some(KEY));
        assert_eq!(
            decode_all(&mut inflating(), &f),
            Err(ProtocolError::ReservedBitsSet)
        );
    }

    #[test]
    fn compressed_errors() {
        // Corrupt data → 1007.
        let f = raw_frame(true, [true, false, false], 2, b"\x00zz", Some(KEY));
        let err = decode_all(&mut inflating(), &f).unwrap_err();
        assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
        // Inflates to invalid UTF-8 → 1007.
        let f = raw_frame(
            true,
            [true, false, false],
            1,
            &compressed(b"\xc3"),
            Some(KEY),
        );
        assert_eq!(
            decode_all(&mut inflating(), &f),
            Err(ProtocolError::InvalidUtf8)
        );
        // Over the limit after inflation → 1009.
        let mut d = inflating();
        d.set_max_message_size(4);
        let f = raw_frame(
            true,
            [true, false, false],
            2,
            &compressed(b"1234"),
            Some(KEY),
        );
        assert_eq!(
            decode_all(&mut d, &f),
            Err(ProtocolError::MessageTooLarge { limit: 4 })
        );
        // Compressed accumulation is limited too (before inflation).
        let mut d = inflating();
        d.set_max_message_size(3);
        let f = raw_frame(
            true,
            [true, false, false],
            2,
            &compressed(b"123"),
            Some(KEY),
        );
        assert_eq!(
            decode_all(&mut d, &f),
            Err(ProtocolError::MessageTooLarge { limit: 3 })
        );
    }

    #[test]
    fn lax_inflater_output_still_limited() {
        struct Bomb;
        impl Inflate for Bomb {
            fn inflate(
                &mut self,
                _: &[u8],
                _: u64,
                out: &mut Vec<u8>,
            ) -> Result<(), ProtocolError> {
                out.resize(100, 0);
                Ok(())
            }
        }
        let mut d = Decoder::new(DecoderConfig {
            max_message_size: 10,
            ..Default::default()
        });
        d.set_inflater(Box::new(Bomb));
        let f = raw_frame(true, [true, false, false], 2, b"x", Some(KEY));
        assert_eq!(
            decode_all(&mut d, &f),
            Err(ProtocolError::MessageTooLarge { limit: 10 })
        );
    }

    /// A message and how it is cut into frames on the wire.
    #[derive(Clone, Debug)]
    struct Msg {
        text: bool,
        data: Vec<u8>,
        /// Fragment boundaries (sorted positions inside data).
        cuts: Vec<usize>,
        /// Ping payload inserted after the first fragment, if any.
        ping: Option<Vec<u8>>,
    }

    fn arb_msg() -> impl Strategy<Value = Msg> {
        (
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<String>(),
            prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..10)),
        )
            .prop_map(|(text, bin, s, idx, ping)| {
                let data = if text { s.repeat(4).into_bytes() } else { bin };
                let mut cuts: Vec<usize> = idx.iter().map(|i| i.index(data.len() + 1)).collect();
                cuts.sort_unstable();
                Msg {
                    text,
                    data,
                    cuts,
                    ping,
                }
            })
    }

    fn encode_msg(m: &Msg, key: [u8; 4], out: &mut Vec<u8>) {
        let mut bounds = vec![0];
        bounds.extend(&m.cuts);
        bounds.push(m.data.len());
        let n = bounds.len() - 1;
        for i in 0..n {
            let op = match (i, m.text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            out.extend(raw_frame(
                i == n - 1,
                [false; 3],
                op.as_u8(),
                &m.data[bounds[i]..bounds[i + 1]],
                Some(key),
            ));
            if i == 0
                && let Some(p) = &m.ping
            {
                out.extend(raw_frame(true, [false; 3], 9, p, Some(key)));
            }
        }
    }

    fn expected(m: &Msg) -> Vec<Event> {
        let message = if m.text {
            text(std::str::from_utf8(&m.data).unwrap())
        } else {
            binary(&m.data)
        };
        match &m.ping {
            // The ping follows the first frame, which ends the message if unfragmented.
            Some(p) if m.cuts.is_empty() => vec![message, Event::Ping(p.clone())],
            Some(p) => vec![Event::Ping(p.clone()), message],
            None => vec![message],
        }
    }

    #[test]
    fn large_payloads_read_straight_into_the_message_decode_the_same() {
        let text = "κόσμε, ".repeat(5000); // 45,000 bytes, multi-byte
        let binary: Vec<u8> = (0..60_000u32).map(|i| (i * 7) as u8).collect();
        let mut wire = frame(true, OpCode::Text, text.as_bytes());
        wire.extend(frame(false, OpCode::Binary, &binary[..20_000]));
        wire.extend(frame(true, OpCode::Ping, b"in between"));
        wire.extend(frame(false, OpCode::Continuation, &binary[20_000..20_001]));
        wire.extend(frame(true, OpCode::Continuation, &binary[20_001..]));
        wire.extend(frame(true, OpCode::Text, b"small"));
        wire.extend(frame(true, OpCode::Close, b"\x03\xe8"));
        let want = decode_one(&wire).unwrap();
        assert_eq!(want.len(), 5);
        for step in [1, 3, 4096, 16_385, 65_536, 1 << 20] {
            let (got, loans) = decode_with_loans(&mut Decoder::default(), &wire, step).unwrap();
            assert_eq!(got, want, "reads of {step}");
            // Larger reads bring whole frames, which need no loan.
            assert!(
                step > 16_385 || loans > 0,
                "reads of {step} never went straight in"
            );
        }
    }

    #[test]
    fn invalid_utf8_read_straight_into_a_text_message_fails_it() {
        let mut payload = "a".repeat(30_000).into_bytes();
        payload[20_000] = 0xff;
        let wire = frame(true, OpCode::Text, &payload);
        let mut d = Decoder::default();
        let result = decode_with_loans(&mut d, &wire, 8192);
        assert_eq!(result, Err(ProtocolError::InvalidUtf8));
        let mut buf = BytesMut::new();
        assert_eq!(d.decode(&mut buf), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn only_large_data_payloads_with_nothing_buffered_are_lent() {
        let mut d = Decoder::default();
        let wire = frame(true, OpCode::Binary, &[0; DIRECT_READ_MIN as usize + 12]);
        let mut buf = BytesMut::from(&wire[..20]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(d.lend_payload(1).is_none(), "bytes are buffered");
        let loan = d.lend_payload(0).expect("owed 16 KiB");
        assert!(d.lend_payload(0).is_none(), "already lent");
        assert_eq!(d.repay(loan), Ok(None));
        // One byte short of the threshold: read through the buffer.
        let mut d = Decoder::default();
        let wire = frame(true, OpCode::Binary, &[0; DIRECT_READ_MIN as usize - 1]);
        let mut buf = BytesMut::from(&wire[..8]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(d.lend_payload(0).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn any_split_and_fragmentation_decodes_the_same(
            msgs in prop::collection::vec(arb_msg(), 1..5),
            key: [u8; 4],
            splits in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for m in &msgs {
                encode_msg(m, key, &mut wire);
                want.extend(expected(m));
            }
            wire.extend(raw_frame(true, [false; 3], 8, b"\x03\xe8", Some(key)));
            want.push(Event::Close(Some((CloseCode::NORMAL, String::new()))));
            let mut points: Vec<usize> = splits.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.push(wire.len());
            points.sort_unstable();
            let mut d = Decoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut start = 0;
            for p in points {
                buf.extend_from_slice(&wire[start..p]);
                start = p;
                while let Some(e) = d.decode(&mut buf).unwrap() {
                    got.push(e);
                }
                prop_assert!(buf.is_empty() || buf.len() < 14, "only a partial header may remain");
            }
            prop_assert_eq!(got, want);
        }
    }
}
