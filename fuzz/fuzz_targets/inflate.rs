//! `MessageInflater` on arbitrary (mostly corrupt) compressed messages, and
//! `MessageDeflater` → `MessageInflater` round trips.
//!
//! The first byte is a selector: bits 0-2 pick the size limit (0 B to
//! 1 MiB), bit 3 `no_context_takeover`, bit 4 the mode (arbitrary
//! compressed bytes, or plaintext to round-trip), bits 5-7 the compression
//! level. The rest is cut at each `"MSG!"` into the messages of one
//! connection, fed to one inflater in order.
//!
//! Invariants (arbitrary mode):
//! - never panics; on `Ok` the output grows by at most `limit` bytes; on
//!   `Err` it is `MessageTooLarge { limit }` or `Compression`, and the
//!   output is truncated back to what it held before;
//! - the first message, inflated by fresh inflaters with `limit` and with a
//!   much larger limit, agrees: same output if it fits, never a result of
//!   at most `limit` bytes after `MessageTooLarge`, the same error kind
//!   after `Compression`.
//!
//! Invariants (round-trip mode): every message inflates back to itself with
//! `limit` = its exact length (context carried over unless
//! `no_context_takeover`), and with `limit` = length - 1 a fresh inflater
//! reports `MessageTooLarge` (first message, or every message without
//! context takeover).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbox::protocol::deflate::{DeflateConfig, MessageDeflater, MessageInflater, Negotiated};
use wsbox::protocol::{Deflate as _, Inflate as _, ProtocolError};

const LIMITS: [u64; 8] = [0, 1, 64, 255, 1024, 4096, 64 << 10, 1 << 20];
const BIG: u64 = 4 << 20;
const PREFIX: &[u8] = b"kept";

fn split_messages(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Some(i) = rest.windows(4).position(|w| w == b"MSG!") {
        out.push(&rest[..i]);
        rest = &rest[i + 4..];
    }
    out.push(rest);
    out
}

fn inflate(inflater: &mut MessageInflater, msg: &[u8], limit: u64) -> Result<Vec<u8>, ProtocolError> {
    let mut out = PREFIX.to_vec();
    let result = inflater.inflate(msg, limit, &mut out);
    assert!(out.starts_with(PREFIX), "existing output clobbered");
    match &result {
        Ok(()) => assert!((out.len() - PREFIX.len()) as u64 <= limit, "{} > {limit}", out.len() - PREFIX.len()),
        Err(ProtocolError::MessageTooLarge { limit: l }) => {
            assert_eq!(*l, limit);
            assert_eq!(out, PREFIX, "not truncated after error");
        }
        Err(ProtocolError::Compression(_)) => assert_eq!(out, PREFIX, "not truncated after error"),
        Err(e) => panic!("unexpected error {e:?}"),
    }
    result.map(|()| out.split_off(PREFIX.len()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let limit = LIMITS[usize::from(sel & 7)];
    let no_context_takeover = sel & 8 != 0;
    let roundtrip = sel & 16 != 0;
    let negotiated = Negotiated {
        server_no_context_takeover: no_context_takeover,
        client_no_context_takeover: no_context_takeover,
        ..Negotiated::default()
    };
    let messages = split_messages(rest);

    if !roundtrip {
        let mut inflater = MessageInflater::new(&negotiated);
        for msg in &messages {
            let _ = inflate(&mut inflater, msg, limit);
            if no_context_takeover {
                assert!(inflater.release());
                assert!(!inflater.is_allocated());
            }
        }
        let first = messages[0];
        let small = inflate(&mut MessageInflater::new(&negotiated), first, limit);
        let large = inflate(&mut MessageInflater::new(&negotiated), first, BIG);
        match (&small, &large) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Ok(_), Err(e)) => panic!("fits in {limit} but fails with {BIG}: {e:?}"),
            (Err(ProtocolError::MessageTooLarge { .. }), Ok(b)) => assert!(b.len() as u64 > limit),
            (Err(ProtocolError::MessageTooLarge { .. }), Err(_)) => {}
            (Err(ProtocolError::Compression(_)), Err(ProtocolError::Compression(_))) => {}
            (Err(a), b) => panic!("limit {limit}: {a:?}, limit {BIG}: {b:?}"),
        }
        return;
    }

    let mut config = DeflateConfig::default();
    config.level = u32::from(sel >> 5);
    config.min_size = 0;
    let mut deflater = MessageDeflater::new(&negotiated, &config);
    let mut inflater = MessageInflater::new(&negotiated);
    for (i, msg) in messages.iter().enumerate() {
        let mut wire = Vec::new();
        deflater.deflate(msg, &mut wire).expect("deflate");
        let len = msg.len() as u64;
        if len > 0 && (i == 0 || no_context_takeover) {
            let short = inflate(&mut MessageInflater::new(&negotiated), &wire, len - 1);
            assert_eq!(short, Err(ProtocolError::MessageTooLarge { limit: len - 1 }));
        }
        let back = inflate(&mut inflater, &wire, len).expect("round trip");
        assert_eq!(back, *msg);
        if no_context_takeover {
            assert!(deflater.release());
            assert!(inflater.release());
        }
    }
});
