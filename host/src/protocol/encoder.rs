//! Server-side frame encoding: "A server MUST NOT mask any frames that it
//! sends to the client" (RFC 6455 §5.1), so every frame here is unmasked.
//!
//! Each data message goes out as one frame. Compression (RFC 7692) plugs in
//! through [`Deflate`], symmetric to the decoder's
//! [`Inflate`](super::decoder::Inflate).

use super::close::{CloseCode, encode_close_payload, truncate_reason};
use super::error::ProtocolError;
use bytes::Bytes;

use super::frame::{OpCode, encode_header};
use super::outbox::{OUT_OF_LINE_MIN, Outbox};

/// The most a control frame's payload may hold (§5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The capacity the compression scratch buffer may keep between messages.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// Compresses whole messages (RFC 7692 permessage-deflate).
pub trait Deflate {
    /// Compresses one message's payload and appends the result to `out`, in
    /// the form that goes on the wire (for permessage-deflate: with the
    /// trailing 0x00 0x00 0xff 0xff removed, RFC 7692 §7.2.1).
    ///
    /// On `Err` the encoder sends the message uncompressed instead, so the
    /// implementation must then leave itself in a state whose later output
    /// does not refer back to this call's input (e.g. reset its compression
    /// context): the peer never sees those bytes.
    fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError>;
}

/// Encodes server frames. Stateless apart from the optional compressor.
#[derive(Default)]
pub struct Encoder {
    deflater: Option<(Box<dyn Deflate + Send>, usize)>,
    /// Reused output buffer for compression (its length decides the header).
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field(
                "deflate_min_size",
                &self.deflater.as_ref().map(|(_, min)| *min),
            )
            .finish()
    }
}

impl Encoder {
    /// An encoder without compression.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs the compressor negotiated in the handshake. Data messages of
    /// at least `min_size` bytes are compressed and sent with RSV1 set
    /// ("the Per-Message Compressed bit", RFC 7692 §6); smaller ones, where
    /// compression rarely pays, go out plain.
    pub fn set_deflater(&mut self, deflater: Box<dyn Deflate + Send>, min_size: usize) {
        self.deflater = Some((deflater, min_size));
    }

    /// Appends one data message as a single frame. `opcode` must be
    /// [`OpCode::Text`] or [`OpCode::Binary`]; for `Text`, `payload` must be
    /// UTF-8 (the caller's `&str`). A large payload is not copied: it goes
    /// out of line (see [`Outbox`]), and so does a large compressed one.
    pub fn encode_message(&mut self, opcode: OpCode, payload: Bytes, out: &mut Outbox) {
        if self.encode_compressed(opcode, &payload, out) {
            return;
        }
        encode_header(out.inline_mut(), true, false, opcode, payload.len(), None);
        out.push_payload(payload);
    }

    /// [`Self::encode_message`] for a payload the caller keeps (a guest's
    /// memory): copied once, into the outbox.
    pub fn encode_message_from(&mut self, opcode: OpCode, payload: &[u8], out: &mut Outbox) {
        if self.encode_compressed(opcode, payload, out) {
            return;
        }
        encode_header(out.inline_mut(), true, false, opcode, payload.len(), None);
        out.push_payload_from(payload);
    }

    /// Appends `payload` as one compressed frame if compression was
    /// negotiated, the payload is large enough and compressing it worked.
    fn encode_compressed(&mut self, opcode: OpCode, payload: &[u8], out: &mut Outbox) -> bool {
        debug_assert!(
            matches!(opcode, OpCode::Text | OpCode::Binary),
            "{opcode:?}"
        );
        let Some((deflater, min_size)) = &mut self.deflater else {
            return false;
        };
        if payload.len() < *min_size {
            return false;
        }
        self.scratch.clear();
        if deflater.deflate(payload, &mut self.scratch).is_err() {
            return false;
        }
        encode_header(
            out.inline_mut(),
            true,
            true,
            opcode,
            self.scratch.len(),
            None,
        );
        if self.scratch.len() >= OUT_OF_LINE_MIN {
            out.push_payload(Bytes::from(std::mem::take(&mut self.scratch)));
        } else {
            out.inline_mut().extend_from_slice(&self.scratch);
            if self.scratch.capacity() > RETAINED_CAPACITY {
                self.scratch = Vec::new();
            }
        }
        true
    }

    /// Appends a Ping or Pong frame. "All control frames MUST have a payload
    /// length of 125 bytes or less", so a longer payload is truncated.
    pub fn encode_control(&mut self, opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        debug_assert!(matches!(opcode, OpCode::Ping | OpCode::Pong), "{opcode:?}");
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        encode_header(out, true, false, opcode, payload.len(), None);
        out.extend_from_slice(payload);
    }

    /// Appends a Close frame: empty for `None` (the reason is then ignored, as
    /// a reason needs a code before it), else the code and the reason
    /// truncated at a char boundary to fit the 125-byte limit.
    pub fn encode_close(&mut self, code: Option<CloseCode>, reason: &str, out: &mut Vec<u8>) {
        match code {
            None => encode_header(out, true, false, OpCode::Close, 0, None),
            Some(code) => {
                let len = 2 + truncate_reason(reason).len();
                encode_header(out, true, false, OpCode::Close, len, None);
                encode_close_payload(code, reason, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::close::parse_close_payload;
    use crate::protocol::frame::decode_header;

    /// Splits one unmasked frame into (fin, rsv1, opcode, payload).
    fn parse(buf: &[u8]) -> (bool, bool, u8, &[u8]) {
        let (h, n) = decode_header(buf).unwrap().unwrap();
        assert_eq!(h.mask, None, "server frames are unmasked");
        assert!(!h.rsv2 && !h.rsv3);
        assert_eq!(buf.len(), n + h.payload_len as usize, "exactly one frame");
        (h.fin, h.rsv1, h.opcode, &buf[n..])
    }

    /// One data message, encoded and made contiguous.
    fn message(e: &mut Encoder, opcode: OpCode, data: &[u8]) -> Vec<u8> {
        let mut out = Outbox::new();
        e.encode_message(opcode, Bytes::copy_from_slice(data), &mut out);
        out.to_vec()
    }

    /// How many pieces a vectored write of `out` takes.
    fn pieces(out: &Outbox) -> usize {
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        out.io_slices(&mut slices)
    }

    #[test]
    fn data_messages_all_lengths() {
        let mut e = Encoder::new();
        for len in [0, 125, 126, 65535, 65536] {
            let data = vec![b'x'; len];
            let out = message(&mut e, OpCode::Text, &data);
            assert_eq!(parse(&out), (true, false, 1, &data[..]));
            let out = message(&mut e, OpCode::Binary, &data);
            assert_eq!(parse(&out), (true, false, 2, &data[..]));
        }
    }

    #[test]
    fn a_borrowed_payload_encodes_as_an_owned_one() {
        struct Reverse;
        impl Deflate for Reverse {
            fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
                out.extend(payload.iter().rev());
                Ok(())
            }
        }
        for compress in [false, true] {
            let mut owned = Encoder::new();
            let mut borrowed = Encoder::new();
            if compress {
                owned.set_deflater(Box::new(Reverse), 10);
                borrowed.set_deflater(Box::new(Reverse), 10);
            }
            for len in [0, 9, 10, 125, OUT_OF_LINE_MIN - 1, OUT_OF_LINE_MIN, 70_000] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut from_owned = Outbox::new();
                owned.encode_message(OpCode::Binary, Bytes::from(data.clone()), &mut from_owned);
                let mut from_borrowed = Outbox::new();
                borrowed.encode_message_from(OpCode::Binary, &data, &mut from_borrowed);
                assert_eq!(
                    from_borrowed.to_vec(),
                    from_owned.to_vec(),
                    "{len} {compress}"
                );
                assert_eq!(pieces(&from_borrowed), pieces(&from_owned), "{len}");
                let (_, rsv1, _, _) = parse(&from_borrowed.to_vec());
                assert_eq!(rsv1, compress && len >= 10, "{len}");
            }
        }
    }

    #[test]
    fn large_payloads_plain_or_compressed_are_not_copied() {
        let mut e = Encoder::new();
        let data = Bytes::from(vec![7; OUT_OF_LINE_MIN]);
        let mut out = Outbox::new();
        e.encode_message(OpCode::Binary, data.clone(), &mut out);
        assert_eq!(pieces(&out), 2, "header, then the payload where it was");
        assert_eq!(parse(&out.to_vec()), (true, false, 2, &data[..]));
        let mut out = Outbox::new();
        e.encode_message(OpCode::Binary, data.slice(1..), &mut out);
        assert_eq!(pieces(&out), 1, "one byte short: copied");

        e.set_deflater(Box::new(Upper(false)), 0);
        let mut out = Outbox::new();
        e.encode_message(OpCode::Binary, data.clone(), &mut out);
        assert_eq!(pieces(&out), 2, "the compressed payload moved, not copied");
        assert_eq!(parse(&out.to_vec()), (true, true, 2, &data[..]));
    }

    #[test]
    fn control_frames() {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        e.encode_control(OpCode::Ping, b"hi", &mut out);
        assert_eq!(out, b"\x89\x02hi");
        let mut out = Vec::new();
        e.encode_control(OpCode::Pong, &[1; 200], &mut out);
        assert_eq!(parse(&out), (true, false, 0xA, &[1; 125][..]));
    }

    #[test]
    fn close_frames() {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        e.encode_close(None, "ignored", &mut out);
        assert_eq!(out, b"\x88\x00");
        let mut out = Vec::new();
        e.encode_close(Some(CloseCode::NORMAL), "bye", &mut out);
        assert_eq!(out, b"\x88\x05\x03\xe8bye");
        let mut out = Vec::new();
        e.encode_close(Some(CloseCode(4000)), &"€".repeat(100), &mut out);
        let (_, _, op, payload) = parse(&out);
        assert_eq!(op, 8);
        assert!(payload.len() <= 125);
        let (code, reason) = parse_close_payload(payload).unwrap().unwrap();
        assert_eq!(code, CloseCode(4000));
        assert_eq!(reason, "€".repeat(41));
    }

    struct Upper(bool);
    impl Deflate for Upper {
        fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
            if self.0 {
                return Err(ProtocolError::Compression("fail".into()));
            }
            out.extend(payload.iter().map(u8::to_ascii_uppercase));
            Ok(())
        }
    }

    #[test]
    fn compression_hook() {
        let mut e = Encoder::new();
        e.set_deflater(Box::new(Upper(false)), 4);
        let out = message(&mut e, OpCode::Text, b"abc");
        assert_eq!(
            parse(&out),
            (true, false, 1, &b"abc"[..]),
            "below min_size: plain"
        );
        let out = message(&mut e, OpCode::Binary, b"abcd");
        assert_eq!(
            parse(&out),
            (true, true, 2, &b"ABCD"[..]),
            "compressed: RSV1"
        );
        let mut out = Vec::new();
        e.encode_control(OpCode::Ping, b"abcdef", &mut out);
        assert_eq!(
            parse(&out),
            (true, false, 9, &b"abcdef"[..]),
            "control never compressed"
        );
        // A failing deflater falls back to plain.
        let mut e = Encoder::new();
        e.set_deflater(Box::new(Upper(true)), 0);
        let out = message(&mut e, OpCode::Text, b"abcd");
        assert_eq!(parse(&out), (true, false, 1, &b"abcd"[..]));
    }
}
