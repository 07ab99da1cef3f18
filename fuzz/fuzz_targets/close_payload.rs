//! `parse_close_payload` / `encode_close_payload` / `truncate_reason`.
//!
//! The input is a close frame payload; the decoder only ever passes at most
//! 125 bytes (the control frame limit), so the round-trip invariants apply
//! to the first 125 bytes and the truncation ones to the whole input.
//!
//! Invariants:
//! - empty → `Ok(None)`; one byte → `CloseFrameError::TooShort`;
//! - otherwise `Ok(Some((code, reason)))` exactly when the big-endian code
//!   is in 1000-1003, 1007-1014 or 3000-4999 and the rest is UTF-8; then
//!   `code.is_valid_on_wire()`, `reason.len() <= 123`, and
//!   `encode_close_payload(code, reason)` gives back the same bytes;
//!   an invalid code → `InvalidCode(code)`, else bad UTF-8 →
//!   `InvalidUtf8`; as a `ProtocolError` an invalid code or a short payload
//!   closes with 1002 and bad UTF-8 with 1007;
//! - `is_sendable` implies `is_valid_on_wire`;
//! - `truncate_reason` returns the longest char-boundary prefix of at most
//!   123 bytes, and `encode_close_payload` never writes more than 125 bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsbox::protocol::ProtocolError;
use wsbox::protocol::close::{
    CloseCode, CloseFrameError, MAX_REASON_LEN, encode_close_payload, parse_close_payload,
    truncate_reason,
};

fuzz_target!(|data: &[u8]| {
    let payload = &data[..data.len().min(125)];
    let result = parse_close_payload(payload);
    match payload {
        [] => assert_eq!(result, Ok(None)),
        [_] => assert_eq!(result, Err(CloseFrameError::TooShort)),
        [hi, lo, rest @ ..] => {
            let raw = u16::from_be_bytes([*hi, *lo]);
            let valid = matches!(raw, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(CloseCode(raw).is_valid_on_wire(), valid, "{raw}");
            assert!(!CloseCode(raw).is_sendable() || valid);
            let expected = if !valid {
                Err(CloseFrameError::InvalidCode(raw))
            } else {
                match std::str::from_utf8(rest) {
                    Ok(r) => Ok(Some((CloseCode(raw), r.to_owned()))),
                    Err(_) => Err(CloseFrameError::InvalidUtf8),
                }
            };
            assert_eq!(result, expected);
        }
    }
    if let Err(e) = result {
        let code = ProtocolError::from(e).close_code();
        let want = if e == CloseFrameError::InvalidUtf8 { 1007 } else { 1002 };
        assert_eq!(code, CloseCode(want), "{e:?}");
    }
    if let Ok(Some((code, reason))) = &result {
        assert!(code.is_valid_on_wire());
        assert!(reason.len() <= MAX_REASON_LEN);
        let mut out = Vec::new();
        encode_close_payload(*code, reason, &mut out);
        assert_eq!(out, payload);
    }

    // Truncation of arbitrary (longer) reasons.
    let text = String::from_utf8_lossy(data);
    let t = truncate_reason(&text);
    assert!(text.starts_with(t));
    assert!(t.len() <= MAX_REASON_LEN);
    if t.len() < text.len() {
        let next = text[t.len()..].chars().next().unwrap();
        assert!(t.len() + next.len_utf8() > MAX_REASON_LEN, "not the longest prefix");
    }
    let code = CloseCode(u16::from_le_bytes([data.first().copied().unwrap_or(0), 0x03]));
    let mut out = vec![0xAA];
    encode_close_payload(code, &text, &mut out);
    assert!(out.len() <= 1 + 125);
    assert_eq!(out[0], 0xAA);
    assert_eq!(&out[1..3], &code.0.to_be_bytes());
    assert_eq!(&out[3..], t.as_bytes());
});
