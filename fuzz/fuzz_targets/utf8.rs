//! `Utf8Validator` fed in arbitrary pieces, against `std::str::from_utf8`.
//!
//! The first byte picks the piece sizes (bits 0-1: at most 1, 3, 7 or 64
//! bytes; the rest seeds the sizes); the remaining bytes are the stream.
//!
//! Invariants, with `k` the length of the shortest prefix of the stream that
//! cannot be extended to valid UTF-8 (std's `valid_up_to` + `error_len`, or
//! one more when the offending byte is the one after the invalid sequence):
//! - `feed` succeeds on every piece ending before `k` and fails exactly on
//!   the piece holding byte `k - 1`: never early, never late (RFC 6455 §8.1,
//!   Autobahn 6.4.x);
//! - after each successful piece, `is_incomplete` is whether the stream so
//!   far ends inside a sequence;
//! - with no invalid byte, `finish` succeeds exactly when the whole stream
//!   is valid (`from_utf8(..).is_ok()`);
//! - `reset` and `finish` leave the validator ready for a new message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbox::protocol::utf8::Utf8Validator;

/// The length of the shortest prefix that is not a prefix of valid UTF-8.
fn first_bad_end(text: &[u8]) -> Option<usize> {
    let e = std::str::from_utf8(text).err()?;
    e.error_len()?;
    let v = e.valid_up_to();
    let k = (v + 1..=text.len().min(v + 5))
        .find(|&k| matches!(std::str::from_utf8(&text[v..k]), Err(e) if e.error_len().is_some()))
        .expect("std reported an invalid sequence");
    Some(k)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, text)) = data.split_first() else {
        return;
    };
    let max_piece = [1usize, 3, 7, 64][usize::from(sel & 3)];
    let mut state = 0x2545_F491u32 ^ u32::from(sel);
    let bad = first_bad_end(text);

    let mut v = Utf8Validator::new();
    let mut pos = 0;
    let mut failed = false;
    while pos < text.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let end = text.len().min(pos + 1 + (state as usize) % max_piece);
        match v.feed(&text[pos..end]) {
            Ok(()) => {
                assert!(bad.is_none_or(|k| k > end), "missed invalid byte at {bad:?}");
                let incomplete = std::str::from_utf8(&text[..end]).is_err();
                assert_eq!(v.is_incomplete(), incomplete, "prefix of {end} bytes");
            }
            Err(_) => {
                let k = bad.expect("valid prefix rejected");
                assert!(pos < k && k <= end, "failed in {pos}..{end}, bad byte at {}", k - 1);
                failed = true;
                break;
            }
        }
        pos = end;
    }
    if failed {
        v.reset();
    } else {
        assert!(bad.is_none());
        assert_eq!(v.finish().is_ok(), std::str::from_utf8(text).is_ok());
    }
    assert!(!v.is_incomplete());

    // Reused for a second message, fed in one piece.
    match v.feed(text) {
        Ok(()) => {
            assert!(bad.is_none());
            assert_eq!(v.finish().is_ok(), std::str::from_utf8(text).is_ok());
        }
        Err(_) => {
            assert!(bad.is_some());
            v.reset();
        }
    }
    assert_eq!(v.feed(b"ok"), Ok(()));
    assert_eq!(v.finish(), Ok(()));
});
