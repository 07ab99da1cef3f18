//! One connection's rules (`protocol::connection::Connection`) driven by a
//! script: the input is read as a sequence of operations (peer bytes, valid
//! peer frames, guest calls, host closes, topic deliveries, time passing,
//! the writer draining, in pieces as a socket may take them, end of
//! stream).
//!
//! Invariants:
//! - nothing panics, whatever the order of operations;
//! - what the server writes, after the 101 response head, is a sequence of
//!   well-formed server frames: unmasked, final, RSV bits only with
//!   compression, control payloads at most 125 bytes;
//! - at most one close frame is ever written, and nothing after it; its
//!   code (if any) is one that may be sent;
//! - once the connection is gone, nothing more is written and sends report
//!   the connection closed.

#![no_main]

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use wsbox::protocol::connection::{
    AcceptParams, Connection, ConnectionConfig, ConnectionError, GuestEnd, Outgoing, TopicMessage,
    WriteStatus,
};
use wsbox::protocol::fanout::Published;
use wsbox::protocol::outbox::Outbox;
use wsbox::protocol::frame::{OpCode, apply_mask, decode_header, encode_header};
use wsbox::protocol::handshake::{HandshakeLimits, parse_request};
use wsbox::protocol::{CloseCode, deflate::DeflateConfig};

const OPCODES: [u8; 7] = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3];
const CLOSE_CODES: [u16; 6] = [1000, 1001, 1011, 3000, 4999, 1005];

/// Checks the server's output stream as it is written.
#[derive(Default)]
struct Written {
    bytes: Vec<u8>,
    head_done: bool,
    closed: bool,
}

impl Written {
    fn push(&mut self, batch: &[u8], compression: bool) {
        self.bytes.extend_from_slice(batch);
        if !self.head_done {
            let Some(end) = self.bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = &self.bytes[..end];
            assert!(head.starts_with(b"HTTP/1.1 101 ") || head.starts_with(b"HTTP/1.1 5"));
            self.bytes.drain(..end + 4);
            self.head_done = true;
        }
        while let Some((header, len)) = decode_header(&self.bytes).expect("server frames decode") {
            let total = len + usize::try_from(header.payload_len).expect("sane length");
            if self.bytes.len() < total {
                break;
            }
            assert!(!self.closed, "a frame after the close frame");
            assert!(header.fin && header.mask.is_none() && !header.rsv2 && !header.rsv3);
            assert!(!header.rsv1 || compression, "RSV1 without compression");
            let opcode = OpCode::from_u8(header.opcode).expect("a known opcode");
            if opcode.is_control() {
                assert!(header.payload_len <= 125);
            }
            if opcode == OpCode::Close {
                self.closed = true;
                let payload = &self.bytes[len..total];
                assert!(payload.len() != 1);
                if payload.len() >= 2 {
                    let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                    assert!(code.is_sendable(), "sent close code {}", code.0);
                }
            }
            self.bytes.drain(..total);
        }
    }
}

fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let opcode = OpCode::from_u8(opcode).unwrap_or(OpCode::Text);
    encode_header(&mut out, fin, false, opcode, payload.len(), Some([1, 2, 3, 4]));
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], [1, 2, 3, 4], 0);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut script)) = data.split_first() else {
        return;
    };
    let compression = setup & 1 != 0;
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
        match setup >> 1 & 3 {
            0 => "",
            1 => "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            2 => "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
            _ => "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
        }
    );
    let (request, _) = parse_request(raw.as_bytes(), &HandshakeLimits::default())
        .expect("a valid request")
        .expect("a complete request");
    let mut config = ConnectionConfig::default();
    config.inbound_high_water = 4096;
    config.max_message_size = 1 << 16;
    let config = Arc::new(config);
    let mut now = Instant::now();
    let mut conn = Connection::new(config, now);
    let mut buf = BytesMut::new();
    let mut written = Written::default();
    let mut batch = Outbox::new();
    let deflate = DeflateConfig::default();
    let mut accepted = false;

    while let Some((&op, rest)) = script.split_first() {
        script = rest;
        let arg = script.first().copied().unwrap_or(0);
        match op % 14 {
            0 => {
                let n = usize::from(arg).min(script.len());
                buf.extend_from_slice(&script[..n]);
                script = &script[n..];
                conn.heard_from_peer(now);
                let _ = conn.receive_data(&mut buf, now);
            }
            1 => {
                let opcode = OPCODES[usize::from(arg) % OPCODES.len()];
                let len = usize::from(arg >> 3);
                let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                buf.extend_from_slice(&client_frame(opcode, arg & 4 == 0, &payload));
                let _ = conn.receive_data(&mut buf, now);
            }
            2 if arg & 1 == 0 => {
                let _ = conn.receive(now);
            }
            2 => {
                let _ = conn.receive_all(now);
            }
            3 => {
                // Up to 8 KiB: past the outbox's out-of-line threshold.
                let text = "x".repeat(usize::from(arg) * 32);
                // Owned and borrowed payloads take different paths into the outbox.
                let _ = if arg & 1 == 0 {
                    conn.send([Outgoing::Text(text.into()), Outgoing::Binary(b"b".to_vec().into())])
                } else {
                    conn.send([Outgoing::Text(text.as_str().into()), Outgoing::Binary(b"b"[..].into())])
                };
            }
            4 => {
                let code = CLOSE_CODES[usize::from(arg) % CLOSE_CODES.len()];
                let _ = conn.close(code, "bye", now);
            }
            5 => conn.close_from_host(CloseCode::GOING_AWAY, "host", now),
            6 => {
                now += Duration::from_millis(u64::from(arg) * 500);
                let _ = conn.on_timeout(now);
            }
            7 => {
                // A write of at most `arg` * 64 + 1 bytes, as a socket may
                // take part of what it is offered.
                if batch.is_empty() && conn.poll_write(&mut batch) != WriteStatus::Write {
                    batch.clear(0);
                }
                let mut slices = [IoSlice::new(&[]); 4];
                let filled = batch.io_slices(&mut slices);
                let mut budget = usize::from(arg) * 64 + 1;
                let mut taken = 0;
                for slice in &slices[..filled] {
                    let take = budget.min(slice.len());
                    written.push(&slice[..take], compression);
                    budget -= take;
                    taken += take;
                }
                batch.advance(taken);
                if taken > 0 && batch.is_empty() {
                    batch.clear(1 << 16);
                    conn.wrote();
                }
            }
            8 => conn.receive_eof(),
            9 => conn.guest_finished(
                if arg & 1 == 0 { GuestEnd::Returned } else { GuestEnd::Failed },
                now,
            ),
            10 => {
                // Up to 7 KiB: shared out of line past 4 KiB.
                let payload = Bytes::from("topic message ".repeat(usize::from(arg) * 2));
                let mut published = Published::new(arg & 1 == 0, payload, &deflate);
                let _ = conn.queue_published(&mut published, 16384);
            }
            11 => {
                let message = TopicMessage {
                    topic: Arc::from("t"),
                    text: true,
                    payload: Bytes::from_static(b"delivered"),
                    publisher: 7,
                };
                let _ = conn.deliver_to_guest(message, 64);
            }
            12 => {
                let _ = conn.next_event(now);
            }
            _ => {
                if !accepted {
                    accepted = true;
                    let params = AcceptParams {
                        compression,
                        ..AcceptParams::default()
                    };
                    let _ = conn.accept(&request, params, now);
                }
            }
        }
        if conn.is_gone() {
            batch.clear(0);
            assert_eq!(conn.poll_write(&mut batch), WriteStatus::Stop);
            assert_eq!(
                conn.send([Outgoing::Text("late".into())]),
                Err(ConnectionError::ConnectionClosed)
            );
        }
        let _ = conn.take_wakes();
    }
});
