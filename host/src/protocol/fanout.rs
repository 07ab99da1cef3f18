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

/// Window sizes RFC 7692 allows, 8..=15; index by bits.
const WINDOW_SLOTS: usize = 16;

/// A published text or binary message and its frames.
#[derive(Debug)]
pub struct Published {
    opcode: OpCode,
    payload: Bytes,
    /// The uncompressed frame, built at once (every subscriber without
    /// compression, and small messages, use it).
    plain: Vec<u8>,
    /// Compressed frames without context takeover, per window bits, built
    /// on first need. `Some(None)`: compression failed; the plain frame is
    /// sent instead (always allowed: RSV1 clear means uncompressed).
    shared: [Option<Option<Vec<u8>>>; WINDOW_SLOTS],
    deflate: DeflateConfig,
}

impl Published {
    /// Frame `payload` (text when `text`, else binary) for publishing with
    /// the server's deflate configuration (level, minimum size).
    pub fn new(text: bool, payload: Bytes, deflate: &DeflateConfig) -> Self {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let mut plain = Vec::with_capacity(payload.len() + 10);
        encode_header(&mut plain, true, false, opcode, payload.len(), None);
        plain.extend_from_slice(&payload);
        Self {
            opcode,
            payload,
            plain,
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

    /// The uncompressed frame.
    pub fn plain_frame(&self) -> &[u8] {
        &self.plain
    }

    /// Whether the message is long enough to be compressed at all.
    pub fn worth_compressing(&self) -> bool {
        self.payload.len() >= self.deflate.min_size
    }

    /// The frame for a subscriber that negotiated permessage-deflate with
    /// `server_no_context_takeover` and a `window_bits` window: compressed
    /// once per window size, on first need.
    pub fn shared_compressed_frame(&mut self, window_bits: u8) -> &[u8] {
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
                    frame
                });
            self.shared[slot] = Some(frame);
        }
        match &self.shared[slot] {
            Some(Some(frame)) => frame,
            _ => &self.plain,
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

    #[test]
    fn the_plain_frame_is_one_unmasked_final_frame() {
        let published = Published::new(true, Bytes::from_static(b"hello"), &config());
        let (header, len) = decode_header(published.plain_frame()).unwrap().unwrap();
        assert!(header.fin && !header.rsv1 && header.mask.is_none());
        assert_eq!(header.opcode, OpCode::Text.as_u8());
        assert_eq!(&published.plain_frame()[len..], b"hello");
    }

    #[test]
    fn the_shared_compressed_frame_inflates_without_any_history() {
        let payload = Bytes::from("a chat message, a chat message, a chat message".repeat(8));
        let mut published = Published::new(false, payload.clone(), &config());
        assert!(published.worth_compressing());
        for bits in [9, 12, 15] {
            let frame = published.shared_compressed_frame(bits).to_vec();
            let (header, len) = decode_header(&frame).unwrap().unwrap();
            assert!(header.rsv1, "compressed frames carry RSV1");
            assert!(frame.len() < published.plain_frame().len());
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
        let first = published.shared_compressed_frame(15).as_ptr();
        let second = published.shared_compressed_frame(15).as_ptr();
        assert_eq!(first, second);
    }

    #[test]
    fn short_messages_are_not_worth_compressing() {
        let published = Published::new(true, Bytes::from_static(b"hi"), &config());
        assert!(!published.worth_compressing());
    }
}
