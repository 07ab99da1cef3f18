//! A client's side of permessage-deflate (RFC 7692) on flate2, and the
//! generator behind the compressible test messages; shared by
//! tests/deflate_interop.rs and host/benches/deflate_memory.rs, which include
//! this file with `#[path]`.

use flate2::{Compress, Decompress, DecompressError, FlushCompress, FlushDecompress};

/// What a sync flush ends with; stripped from every compressed message
/// (RFC 7692 §7.2.1) and appended again to inflate it (§7.2.2).
pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Compress `payload` as one permessage-deflate message: sync flush, trailer
/// stripped (RFC 7692 §7.2.1).
pub fn deflate_message(c: &mut Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1024);
    let mut pos = 0;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(1024));
        }
        let before = c.total_in();
        c.compress_vec(&payload[pos..], &mut out, FlushCompress::Sync)
            .expect("compressing");
        pos += (c.total_in() - before) as usize;
        if pos == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(
        out.ends_with(&TRAILER),
        "a sync flush ends with 00 00 ff ff"
    );
    out.truncate(out.len() - TRAILER.len());
    out
}

/// Inflate one permessage-deflate message (trailer appended, RFC 7692
/// §7.2.2); `expected_len` sizes the output buffer.
pub fn inflate_message(
    d: &mut Decompress,
    compressed: &[u8],
    expected_len: usize,
) -> Result<Vec<u8>, DecompressError> {
    let input = [compressed, &TRAILER[..]].concat();
    let mut out = Vec::with_capacity(expected_len + 1024);
    let mut pos = 0;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(1024));
        }
        let before = d.total_in();
        d.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)?;
        pos += (d.total_in() - before) as usize;
        if pos == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

/// A xorshift64 generator starting from `state` (which must not be 0).
pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
