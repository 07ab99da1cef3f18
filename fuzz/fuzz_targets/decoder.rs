//! The receive state machine on an arbitrary byte stream.
//!
//! The first byte is a selector:
//! - bits 0-2: how the rest is cut into reads (one piece, byte by byte,
//!   fixed sizes, pseudo-random sizes);
//! - bit 3: permessage-deflate on (`set_inflater` with a `MessageInflater`);
//! - bit 4: `client_no_context_takeover` for that inflater;
//! - bit 5: tight limits (256-byte frames, 1 KiB messages) instead of 64 KiB;
//! - bits 6-7: seed for the pseudo-random sizes.
//!
//! Invariants:
//! - streaming: the events and the final error are the same whether the
//!   stream arrives in one piece or in the selected pieces;
//! - every `Ok(None)` leaves at most an incomplete frame header in the buffer
//!   (partial payloads are consumed), and nothing at all after a close;
//! - without deflate, the events and error equal those of an independent
//!   whole-buffer reference decoder written from RFC 6455 (below);
//! - events are well formed: text is UTF-8 (the decoder builds it with
//!   `from_utf8_unchecked`), messages within `max_message_size` (also after
//!   inflating, so bombs are caught), control payloads at most 125 bytes,
//!   close codes valid on the wire and reasons at most 123 bytes;
//! - errors map to a sendable close code and a reason of at most 123 bytes,
//!   and a failed decoder keeps returning the same error;
//! - after a close, further input is discarded.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsbox::protocol::deflate::{MessageInflater, Negotiated};
use wsbox::protocol::frame::{MAX_HEADER_LEN, decode_header};
use wsbox::protocol::{CloseCode, DataMessage, Decoder, DecoderConfig, Event, ProtocolError};

type Outcome = (Vec<Event>, Option<ProtocolError>);

#[derive(Clone, Copy)]
struct Setup {
    deflate: bool,
    no_context_takeover: bool,
    max_frame_size: u64,
    max_message_size: u64,
}

fn decoder(s: Setup) -> Decoder {
    let mut d = Decoder::new(DecoderConfig {
        max_frame_size: s.max_frame_size,
        max_message_size: s.max_message_size,
        rsv1_allowed: false,
    });
    if s.deflate {
        let negotiated = Negotiated {
            client_no_context_takeover: s.no_context_takeover,
            ..Negotiated::default()
        };
        d.set_inflater(Box::new(MessageInflater::new(&negotiated)));
    }
    d
}

/// The piece sizes for pattern `p`.
struct Pieces {
    pattern: u8,
    state: u32,
}

impl Pieces {
    fn next(&mut self) -> usize {
        // xorshift32
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        match self.pattern {
            0 => usize::MAX,
            1 => 1,
            2 => 2,
            3 => 3,
            4 => MAX_HEADER_LEN - 1,
            5 => 1 + (self.state % 8) as usize,
            6 => 1 + (self.state % 64) as usize,
            _ => 1 + (self.state % 1024) as usize,
        }
    }
}

fn run(s: Setup, data: &[u8], mut pieces: Pieces) -> Outcome {
    let mut d = decoder(s);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut rest = data;
    loop {
        let take = pieces.next().min(rest.len());
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            match d.decode(&mut buf) {
                Ok(Some(e)) => {
                    check_event(&e, s);
                    events.push(e);
                }
                Ok(None) => {
                    if d.is_closed() {
                        assert!(buf.is_empty(), "input kept after close");
                    } else {
                        assert!(buf.len() < MAX_HEADER_LEN, "{} bytes kept", buf.len());
                        assert_eq!(decode_header(&buf), Ok(None), "complete header kept");
                    }
                    break;
                }
                Err(e) => {
                    assert!(e.close_code().is_sendable(), "{e:?}");
                    assert!(e.close_reason().len() <= 123);
                    // Poisoned: the same error again, whatever comes next.
                    let mut more = BytesMut::from(&[0x82u8, 0x80, 1, 2, 3, 4][..]);
                    assert_eq!(d.decode(&mut more), Err(e.clone()));
                    assert_eq!(d.decode(&mut BytesMut::new()), Err(e.clone()));
                    return (events, Some(e));
                }
            }
        }
        if rest.is_empty() {
            break;
        }
    }
    if d.is_closed() {
        let mut more = BytesMut::from(&[0x81u8, 0x80, 1, 2, 3, 4][..]);
        assert_eq!(d.decode(&mut more), Ok(None));
        assert!(more.is_empty());
    }
    (events, None)
}

fn check_event(e: &Event, s: Setup) {
    match e {
        Event::Message(DataMessage::Text(t)) => {
            assert!(std::str::from_utf8(t.as_bytes()).is_ok(), "invalid UTF-8 in Text");
            assert!(t.len() as u64 <= s.max_message_size);
        }
        Event::Message(DataMessage::Binary(b)) => {
            assert!(b.len() as u64 <= s.max_message_size);
        }
        Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
        Event::Close(None) => {}
        Event::Close(Some((code, reason))) => {
            assert!(code.is_valid_on_wire(), "{code}");
            assert!(reason.len() <= 123);
        }
    }
}

// ---------------------------------------------------------------------------
// Reference decoder: the whole stream at once, straight from RFC 6455.
// ---------------------------------------------------------------------------

fn reference(s: Setup, data: &[u8]) -> Outcome {
    let mut events = Vec::new();
    // The open data message: text?, bytes so far, bytes known valid UTF-8.
    let mut msg: Option<(bool, Vec<u8>, usize)> = None;
    let mut pos = 0;
    macro_rules! fail {
        ($e:expr) => {
            return (events, Some($e))
        };
    }
    loop {
        let b = &data[pos..];
        if b.len() < 2 {
            return (events, None);
        }
        let fin = b[0] & 0x80 != 0;
        let rsv = b[0] & 0x70;
        let opcode = b[0] & 0x0F;
        let masked = b[1] & 0x80 != 0;
        let (len, ext) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 2),
            127 if b.len() >= 10 => {
                let len = u64::from_be_bytes(b[2..10].try_into().unwrap());
                if len >> 63 != 0 {
                    fail!(ProtocolError::InvalidLength);
                }
                (len, 8)
            }
            126 | 127 => return (events, None),
            n => (u64::from(n), 0),
        };
        let header = 2 + ext + if masked { 4 } else { 0 };
        if b.len() < header {
            return (events, None);
        }
        // Header rules, in the order the decoder checks them (several may be
        // broken at once; all are 1002 anyway). RSV1 is checked after the
        // opcode as whether it is allowed depends on the opcode.
        if rsv & 0x30 != 0 {
            fail!(ProtocolError::ReservedBitsSet);
        }
        if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
            fail!(ProtocolError::UnknownOpcode(opcode));
        }
        if rsv != 0 {
            // No extension here (the reference runs without deflate).
            fail!(ProtocolError::ReservedBitsSet);
        }
        if !masked {
            fail!(ProtocolError::UnmaskedFrame);
        }
        let control = opcode >= 0x8;
        if control {
            if !fin {
                fail!(ProtocolError::FragmentedControlFrame);
            }
            if len > 125 {
                fail!(ProtocolError::ControlFrameTooLong(len));
            }
        } else {
            match (opcode, &msg) {
                (0, None) => fail!(ProtocolError::UnexpectedContinuation),
                (1 | 2, Some(_)) => fail!(ProtocolError::ExpectedContinuation),
                _ => {}
            }
            if len > s.max_frame_size {
                fail!(ProtocolError::FrameTooLarge { size: len, limit: s.max_frame_size });
            }
            let so_far = msg.as_ref().map_or(0, |m| m.1.len() as u64);
            if so_far + len > s.max_message_size {
                fail!(ProtocolError::MessageTooLarge { limit: s.max_message_size });
            }
            if opcode != 0 {
                msg = Some((opcode == 1, Vec::new(), 0));
            }
        }
        let key = &b[2 + ext..header];
        let avail = (b.len() - header) as u64;
        let take = len.min(avail) as usize;
        let payload: Vec<u8> = b[header..header + take]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ key[i % 4])
            .collect();
        pos += header + take;
        if !control {
            let m = msg.as_mut().unwrap();
            m.1.extend_from_slice(&payload);
            if m.0 {
                // Fail at the first byte that cannot continue valid UTF-8.
                match std::str::from_utf8(&m.1[m.2..]) {
                    Ok(_) => m.2 = m.1.len(),
                    Err(e) if e.error_len().is_some() => fail!(ProtocolError::InvalidUtf8),
                    Err(e) => m.2 += e.valid_up_to(),
                }
            }
        }
        if (take as u64) < len {
            return (events, None);
        }
        match opcode {
            0x9 => events.push(Event::Ping(payload)),
            0xA => events.push(Event::Pong(payload)),
            0x8 => {
                let close = match payload.as_slice() {
                    [] => None,
                    [_] => fail!(ProtocolError::CloseFrameTooShort),
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                            fail!(ProtocolError::InvalidCloseCode(code));
                        }
                        match String::from_utf8(reason.to_vec()) {
                            Ok(r) => Some((CloseCode(code), r)),
                            Err(_) => fail!(ProtocolError::InvalidUtf8),
                        }
                    }
                };
                events.push(Event::Close(close));
                return (events, None);
            }
            _ if fin => {
                let (text, bytes, _) = msg.take().unwrap();
                let message = if text {
                    match String::from_utf8(bytes) {
                        Ok(t) => DataMessage::Text(t),
                        Err(_) => fail!(ProtocolError::InvalidUtf8),
                    }
                } else {
                    DataMessage::Binary(bytes)
                };
                events.push(Event::Message(message));
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let tight = sel & 0x20 != 0;
    let s = Setup {
        deflate: sel & 0x08 != 0,
        no_context_takeover: sel & 0x10 != 0,
        max_frame_size: if tight { 256 } else { 64 << 10 },
        max_message_size: if tight { 1024 } else { 64 << 10 },
    };
    let pattern = sel & 0x07;
    let seed = 0x9E37_79B9 ^ u32::from(sel >> 6) ^ (stream.len() as u32).rotate_left(8);

    let whole = run(s, stream, Pieces { pattern: 0, state: seed });
    if pattern != 0 {
        let split = run(s, stream, Pieces { pattern, state: seed });
        assert_eq!(whole, split, "pattern {pattern}: pieces differ from one read");
    }
    if !s.deflate {
        assert_eq!(whole, reference(s, stream), "decoder differs from the reference");
    }
});
