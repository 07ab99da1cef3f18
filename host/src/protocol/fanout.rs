//! A message published to a topic, framed once for all its subscribers.
//!
//! uWebSockets' model: a publish is encoded once, and the same bytes are
//! queued on every subscriber's socket. Compression is shared where the
//! subscribers' permessage-deflate settings allow it: without server
//! context takeover (RFC 7692 §7.1.1.1) a message's compressed form depends
//! only on the window size and the level, so one compression per window
//! size serves every such subscriber. Subscribers with context takeover
//! compress with their own context (their encoder), as for their own sends.

use bytes::Bytes;

use super::deflate::{DeflateConfig, MessageDeflater, Negotiated};
use super::encoder::Deflate as _;
use super::frame::{OpCode, encode_header};
use super::outbox::Outbox;

/// Window sizes RFC 7692 allows, 8..=15; index by bits.
const WINDOW_SLOTS: usize = 16;

/// A published text or binary message and its frames.
#[derive(Debug)]
pub struct Published {
    opcode: OpCode,
    payload: Bytes,
    /// The uncompressed frame's header, built at once (every subscriber
    /// without compression, and small messages, use it, with `payload`).
    plain_header: Vec<u8>,
    /// Compressed frames without context takeover, per window bits, built
    /// on first need. `Some(None)`: compression failed; the plain frame is
    /// sent instead (always allowed: RSV1 clear means uncompressed).
    shared: [Option<Option<Bytes>>; WINDOW_SLOTS],
    deflate: DeflateConfig,
}

impl Published {
    /// Frame `payload` (text when `text`, else binary) for publishing with
    /// the server's deflate configuration (level, minimum size).
    pub fn new(text: bool, payload: Bytes, deflate: &DeflateConfig) -> Self {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let mut plain_header = Vec::with_capacity(10);
        encode_header(&mut plain_header, true, false, opcode, payload.len(), None);
        Self {
            opcode,
            payload,
            plain_header,
            shared: Default::default(),
            deflate: deflate.clone(),
        }
    }

    /// Whether it is a text message.
    pub fn is_text(&self) -> bool {
        self.opcode == OpCode::Text
    }

    /// The opcode (text or binary).
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The payload, shared.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The uncompressed frame's length.
    pub fn plain_len(&self) -> usize {
        self.plain_header.len() + self.payload.len()
    }

    /// Queue the uncompressed frame (a large payload is shared, not
    /// copied).
    pub fn queue_plain(&self, out: &mut Outbox) {
        out.inline_mut().extend_from_slice(&self.plain_header);
        out.push_payload(self.payload.clone());
    }

    /// Whether the message is long enough to be compressed at all.
    pub fn worth_compressing(&self) -> bool {
        self.payload.len() >= self.deflate.min_size
    }

    /// Queue the frame for a subscriber that negotiated permessage-deflate
    /// with `server_no_context_takeover` and a `window_bits` window:
    /// compressed once per window size, on first need, and shared.
    pub fn queue_shared_compressed(&mut self, window_bits: u8, out: &mut Outbox) {
        let slot = usize::from(window_bits).min(WINDOW_SLOTS - 1);
        if self.shared[slot].is_none() {
            let negotiated = Negotiated {
                server_no_context_takeover: true,
                server_max_window_bits: window_bits,
                ..Negotiated::default()
            };
            let mut deflater = MessageDeflater::new(&negotiated, &self.deflate);
            let mut compressed = Vec::new();
            let frame = deflater
                .deflate(&self.payload, &mut compressed)
                .ok()
                .map(|()| {
                    let mut frame = Vec::with_capacity(compressed.len() + 10);
                    encode_header(&mut frame, true, true, self.opcode, compressed.len(), None);
                    frame.extend_from_slice(&compressed);
                    Bytes::from(frame)
                });
            self.shared[slot] = Some(frame);
        }
        match &self.shared[slot] {
            Some(Some(frame)) => out.push_payload(frame.clone()),
            _ => self.queue_plain(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::decoder::Inflate as _;
    use crate::protocol::deflate::MessageInflater;
    use crate::protocol::frame::decode_header;

    fn config() -> DeflateConfig {
        DeflateConfig::default()
    }

    fn plain(published: &Published) -> Vec<u8> {
        let mut out = Outbox::new();
        published.queue_plain(&mut out);
        out.to_vec()
    }

    fn compressed(published: &mut Published, bits: u8) -> Vec<u8> {
        let mut out = Outbox::new();
        published.queue_shared_compressed(bits, &mut out);
        out.to_vec()
    }

    #[test]
    fn the_plain_frame_is_one_unmasked_final_frame() {
        let published = Published::new(true, Bytes::from_static(b"hello"), &config());
        let frame = plain(&published);
        assert_eq!(frame.len(), published.plain_len());
        let (header, len) = decode_header(&frame).unwrap().unwrap();
        assert!(header.fin && !header.rsv1 && header.mask.is_none());
        assert_eq!(header.opcode, OpCode::Text.as_u8());
        assert_eq!(&frame[len..], b"hello");
    }

    #[test]
    fn a_large_payload_is_shared_by_every_subscriber_not_copied() {
        let payload = Bytes::from(vec![1; 64 << 10]);
        let published = Published::new(false, payload.clone(), &config());
        for _ in 0..3 {
            let mut out = Outbox::new();
            published.queue_plain(&mut out);
            let mut slices = [std::io::IoSlice::new(&[]); 4];
            assert_eq!(out.io_slices(&mut slices), 2);
            assert_eq!(slices[1].as_ptr(), payload.as_ptr());
        }
    }

    #[test]
    fn the_shared_compressed_frame_inflates_without_any_history() {
        let payload = Bytes::from("a chat message, a chat message, a chat message".repeat(8));
        let mut published = Published::new(false, payload.clone(), &config());
        assert!(published.worth_compressing());
        for bits in [9, 12, 15] {
            let frame = compressed(&mut published, bits);
            let (header, len) = decode_header(&frame).unwrap().unwrap();
            assert!(header.rsv1, "compressed frames carry RSV1");
            assert!(frame.len() < published.plain_len());
            // A fresh inflater each time: no context is needed.
            let negotiated = Negotiated {
                client_no_context_takeover: true,
                ..Negotiated::default()
            };
            let mut inflater = MessageInflater::new(&negotiated);
            let mut out = Vec::new();
            inflater.inflate(&frame[len..], 1 << 20, &mut out).unwrap();
            assert_eq!(out, payload);
        }
    }

    #[test]
    fn the_same_window_is_compressed_once() {
        let payload = Bytes::from("x".repeat(500));
        let mut published = Published::new(true, payload, &config());
        let first = compressed(&mut published, 15);
        let Some(Some(frame)) = &published.shared[15] else {
            panic!("not kept");
        };
        let kept = frame.as_ptr();
        assert_eq!(compressed(&mut published, 15), first);
        let Some(Some(frame)) = &published.shared[15] else {
            panic!("not kept");
        };
        assert_eq!(frame.as_ptr(), kept);
    }

    #[test]
    fn short_messages_are_not_worth_compressing() {
        let published = Published::new(true, Bytes::from_static(b"hi"), &config());
        assert!(!published.worth_compressing());
    }
}
