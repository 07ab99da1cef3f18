//! Frame header coding and payload masking (RFC 6455 §5.2, §5.3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! ```

use super::error::ProtocolError;

/// The largest header: 2 bytes + 8-byte extended length + 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame opcode that RFC 6455 defines (§5.2). Reserved opcodes have no
/// variant: [`OpCode::from_u8`] returns `None` for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented data message.
    Continuation,
    /// 0x1: text (UTF-8) data.
    Text,
    /// 0x2: binary data.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The opcode for a raw 4-bit value; `None` for the reserved values
    /// 0x3-0x7 and 0xB-0xF (and anything above 0xF).
    pub fn from_u8(raw: u8) -> Option<Self> {
        Some(match raw {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The raw 4-bit value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// "Control frames are identified by opcodes where the most significant
    /// bit of the opcode is 1." (§5.5)
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A decoded frame header, not yet validated against the protocol rules
/// (the [decoder](super::decoder) does that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// "Indicates that this is the final fragment in a message."
    pub fin: bool,
    /// RSV1 (the permessage-deflate "compressed" bit when negotiated).
    pub rsv1: bool,
    /// RSV2; no extension we support defines it.
    pub rsv2: bool,
    /// RSV3; no extension we support defines it.
    pub rsv3: bool,
    /// The raw 4-bit opcode (reserved values included).
    pub opcode: u8,
    /// The masking key, if the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// Decodes a frame header from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold the whole header, else the
/// header and its length in bytes. Non-minimal length encodings are accepted
/// (RFC 6455 says senders MUST use the minimal form, but rejecting it protects
/// nothing and common receivers accept it). A 64-bit length with its most
/// significant bit set is rejected: "the most significant bit MUST be 0".
pub fn decode_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    let (payload_len, ext_len) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(bytes) => {
                let len = u64::from_be_bytes(*bytes);
                if len & (1 << 63) != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    let mut header_len = 2 + ext_len;
    let mask = if masked {
        match rest[ext_len..].first_chunk::<4>() {
            Some(key) => {
                header_len += 4;
                Some(*key)
            }
            None => return Ok(None),
        }
    } else {
        None
    };
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
        header_len,
    )))
}

/// Appends a frame header using the minimal length form ("the minimal number
/// of bytes MUST be used to encode the length", §5.2): 7-bit up to 125, 16-bit
/// up to 65535, else 64-bit.
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) {
    let b0 = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if payload_len <= 125 {
        // Lossless: payload_len <= 125.
        out.extend_from_slice(&[b0, mask_bit | payload_len as u8]);
    } else if let Ok(len16) = u16::try_from(payload_len) {
        out.extend_from_slice(&[b0, mask_bit | 126]);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.extend_from_slice(&[b0, mask_bit | 127]);
        out.extend_from_slice(&(payload_len as u64).to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// XORs `buf` with the masking key (§5.3: "octet i of the transformed data is
/// the XOR of octet i of the original data with octet at index i modulo 4 of
/// the masking key"). `offset` is the payload position of `buf[0]`, so a
/// payload may be unmasked in pieces as it arrives. Masking is an involution:
/// applying it twice restores the data.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that k[0] applies to buf[0].
    let r = offset % 4;
    let k = [key[r], key[(r + 1) % 4], key[(r + 2) % 4], key[(r + 3) % 4]];
    // 8 is a multiple of 4, so every 8-byte chunk starts at key phase 0.
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let (chunks, tail) = buf.as_chunks_mut::<8>();
    for chunk in chunks {
        *chunk = (u64::from_ne_bytes(*chunk) ^ word).to_ne_bytes();
    }
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn opcodes() {
        for raw in 0..=255u8 {
            match OpCode::from_u8(raw) {
                Some(op) => {
                    assert_eq!(op.as_u8(), raw);
                    assert_eq!(op.is_control(), raw >= 8);
                }
                None => assert!(matches!(raw, 3..=7 | 0xB..)),
            }
        }
    }

    #[test]
    fn length_forms_are_minimal() {
        for (len, header_len) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
        ] {
            let mut out = Vec::new();
            encode_header(&mut out, true, false, OpCode::Binary, len, None);
            assert_eq!(out.len(), header_len, "{len}");
            let mut masked = Vec::new();
            encode_header(
                &mut masked,
                true,
                false,
                OpCode::Binary,
                len,
                Some([1, 2, 3, 4]),
            );
            assert_eq!(masked.len(), header_len + 4);
            let (h, n) = decode_header(&masked).unwrap().unwrap();
            assert_eq!(n, header_len + 4);
            assert_eq!(h.payload_len, len as u64);
            assert_eq!(h.mask, Some([1, 2, 3, 4]));
        }
    }

    #[test]
    fn header_bits() {
        let (h, n) = decode_header(&[0b1111_1010, 0x05]).unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(h.fin && h.rsv1 && h.rsv2 && h.rsv3);
        assert_eq!(h.opcode, 0xA);
        assert_eq!(h.mask, None);
        assert_eq!(h.payload_len, 5);
        let (h, _) = decode_header(&[0x01, 0x00]).unwrap().unwrap();
        assert!(!h.fin && !h.rsv1 && !h.rsv2 && !h.rsv3);
        let mut out = Vec::new();
        encode_header(&mut out, false, true, OpCode::Text, 3, None);
        assert_eq!(out, [0x41, 0x03]);
    }

    #[test]
    fn incomplete_headers_need_more() {
        let mut full = Vec::new();
        encode_header(
            &mut full,
            true,
            false,
            OpCode::Text,
            70000,
            Some([9, 8, 7, 6]),
        );
        for cut in 0..full.len() {
            assert_eq!(decode_header(&full[..cut]), Ok(None), "cut {cut}");
        }
        let mut full = Vec::new();
        encode_header(
            &mut full,
            true,
            false,
            OpCode::Text,
            300,
            Some([9, 8, 7, 6]),
        );
        for cut in 0..full.len() {
            assert_eq!(decode_header(&full[..cut]), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn non_minimal_lengths_accepted() {
        let (h, n) = decode_header(&[0x82, 126, 0, 5]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (5, 4));
        let (h, n) = decode_header(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (5, 10));
    }

    #[test]
    fn msb_of_64_bit_length_rejected() {
        let buf = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_header(&buf), Err(ProtocolError::InvalidLength));
        let buf = [0x82, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(
            decode_header(&buf).unwrap().unwrap().0.payload_len,
            i64::MAX as u64
        );
    }

    #[test]
    fn mask_matches_naive_at_all_offsets_and_lengths() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..67u8).map(|i| i.wrapping_mul(31)).collect();
        for offset in 0..9 {
            for start in 0..8 {
                for end in start..data.len() {
                    let mut a = data[start..end].to_vec();
                    let mut b = a.clone();
                    apply_mask(&mut a, key, offset);
                    naive_mask(&mut b, key, offset);
                    assert_eq!(a, b, "offset {offset} start {start} end {end}");
                    apply_mask(&mut a, key, offset);
                    assert_eq!(a, &data[start..end]);
                }
            }
        }
    }

    #[test]
    fn mask_in_pieces_equals_mask_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole);
        }
    }

    proptest! {
        #[test]
        fn header_round_trip(
            fin: bool,
            rsv1: bool,
            op in prop::sample::select(vec![
                OpCode::Continuation, OpCode::Text, OpCode::Binary,
                OpCode::Close, OpCode::Ping, OpCode::Pong,
            ]),
            len in prop_oneof![0usize..=125, 126usize..=65535, 65536usize..=(1 << 48)],
            mask: Option<[u8; 4]>,
        ) {
            let mut out = Vec::new();
            encode_header(&mut out, fin, rsv1, op, len, mask);
            out.extend_from_slice(b"trailing");
            let (h, n) = decode_header(&out).unwrap().unwrap();
            prop_assert_eq!(n, out.len() - 8);
            prop_assert_eq!(h, FrameHeader {
                fin, rsv1, rsv2: false, rsv3: false, opcode: op.as_u8(), mask,
                payload_len: len as u64,
            });
        }

        #[test]
        fn mask_agrees_with_naive(data: Vec<u8>, key: [u8; 4], offset in 0usize..64) {
            let mut a = data.clone();
            let mut b = data;
            apply_mask(&mut a, key, offset);
            naive_mask(&mut b, key, offset);
            prop_assert_eq!(a, b);
        }
    }
}
