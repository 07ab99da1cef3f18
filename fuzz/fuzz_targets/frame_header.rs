//! `decode_header` on arbitrary bytes, checked against a straightforward
//! reading of RFC 6455 §5.2, plus `encode_header` round trips and
//! `apply_mask` in pieces.
//!
//! Invariants:
//! - the result (incomplete / header + length / `InvalidLength`) is what the
//!   RFC layout gives: 2 bytes, +2 or +8 length bytes, +4 mask bytes;
//! - `Some((h, n))`: `n <= 14`, `n <= len`; `buf[..n]` decodes the same and
//!   every shorter prefix is incomplete;
//! - re-encoding `h` with `encode_header` (reserved opcode and RSV2/RSV3 bits
//!   patched in, as `encode_header` only takes an `OpCode`) decodes to `h`
//!   again, in the minimal length form, so never longer than `n`;
//! - unmasking the bytes after the header in two pieces (with the payload
//!   offset) equals the byte-by-byte XOR of §5.3, and masking is an
//!   involution.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbox::protocol::ProtocolError;
use wsbox::protocol::frame::{FrameHeader, MAX_HEADER_LEN, apply_mask, decode_header, encode_header};
use wsbox::protocol::OpCode;

/// What §5.2 says the front of `buf` is.
fn reference(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    if buf.len() < 2 + ext {
        return Ok(None);
    }
    let payload_len = match ext {
        0 => u64::from(b1 & 0x7F),
        2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
        _ => {
            if buf[2] & 0x80 != 0 {
                return Err(ProtocolError::InvalidLength);
            }
            u64::from_be_bytes(buf[2..10].try_into().unwrap())
        }
    };
    let masked = b1 & 0x80 != 0;
    let len = 2 + ext + if masked { 4 } else { 0 };
    if buf.len() < len {
        return Ok(None);
    }
    let mask = masked.then(|| buf[2 + ext..len].try_into().unwrap());
    Ok(Some((
        FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: b0 & 0x0F,
            mask,
            payload_len,
        },
        len,
    )))
}

fn minimal_len(h: &FrameHeader) -> usize {
    let ext = match h.payload_len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + ext + if h.mask.is_some() { 4 } else { 0 }
}

fuzz_target!(|data: &[u8]| {
    let got = decode_header(data);
    assert_eq!(got, reference(data), "input {data:02x?}");
    let Ok(Some((h, n))) = got else {
        return;
    };
    assert!(n <= MAX_HEADER_LEN && n <= data.len());
    assert_eq!(decode_header(&data[..n]), Ok(Some((h, n))));
    for k in 0..n {
        assert_eq!(decode_header(&data[..k]), Ok(None), "prefix {k}/{n}");
    }

    // Opcode helpers agree with the raw value.
    if let Some(op) = OpCode::from_u8(h.opcode) {
        assert_eq!(op.as_u8(), h.opcode);
        assert_eq!(op.is_control(), h.opcode & 0x8 != 0);
    } else {
        assert!(matches!(h.opcode, 0x3..=0x7 | 0xB..=0xF));
    }

    // Round trip through encode_header.
    if let Ok(len) = usize::try_from(h.payload_len) {
        let mut out = Vec::new();
        encode_header(&mut out, h.fin, h.rsv1, OpCode::Continuation, len, h.mask);
        out[0] |= (u8::from(h.rsv2) << 5) | (u8::from(h.rsv3) << 4) | h.opcode;
        assert_eq!(out.len(), minimal_len(&h));
        assert!(out.len() <= n);
        assert_eq!(decode_header(&out), Ok(Some((h, out.len()))), "re-encoded {out:02x?}");
        if let Some(op) = OpCode::from_u8(h.opcode) {
            if !h.rsv2 && !h.rsv3 {
                let mut direct = Vec::new();
                encode_header(&mut direct, h.fin, h.rsv1, op, len, h.mask);
                assert_eq!(direct, out);
            }
        }
    }

    // Unmasking the rest in two pieces at an arbitrary split.
    let key = h.mask.unwrap_or([data[0], data[1], 0x5a, 0xa5]);
    let payload = &data[n..];
    let split = if payload.is_empty() {
        0
    } else {
        usize::from(data[0]) % (payload.len() + 1)
    };
    let mut pieces = payload.to_vec();
    let (a, b) = pieces.split_at_mut(split);
    apply_mask(a, key, 0);
    apply_mask(b, key, split);
    let naive: Vec<u8> = payload
        .iter()
        .enumerate()
        .map(|(i, &x)| x ^ key[i % 4])
        .collect();
    assert_eq!(pieces, naive);
    apply_mask(&mut pieces, key, 0);
    assert_eq!(pieces, payload);
});
