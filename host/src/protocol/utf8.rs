//! Incremental UTF-8 validation across frame and fragment boundaries.
//!
//! RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but
//! finds that the byte stream is not, in fact, a valid UTF-8 stream, that
//! endpoint MUST _Fail the WebSocket Connection_." Autobahn (6.4.x) expects
//! this to happen at the first byte that cannot continue a valid sequence,
//! even while the frame or message is still incomplete.

/// Invalid UTF-8 was found (or a message ended inside a sequence).
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("invalid UTF-8")]
pub struct Utf8Error;

/// Validates a UTF-8 byte stream fed in arbitrary pieces.
///
/// Invariant: the bytes fed since the last reset are the concatenation of
/// pieces that `std::str::from_utf8` accepted, followed by `tail`, an
/// incomplete (but so far valid) sequence of at most 3 bytes. So when
/// [`finish`](Utf8Validator::finish) succeeds, everything fed is valid UTF-8.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    tail: [u8; 4],
    tail_len: u8,
}

/// The length of the sequence a lead byte starts (0 for a byte that cannot
/// start one). Only called on the first byte of a tail that std reported as
/// an incomplete valid prefix, so only 2, 3 or 4 occur in practice.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece of the stream. Fails as soon as a byte cannot
    /// continue a valid sequence, including a sequence begun in an earlier
    /// piece. An incomplete sequence at the end of `bytes` is carried over.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.tail_len > 0 {
            // Complete the carried sequence with as many bytes as it needs.
            let have = usize::from(self.tail_len);
            let need = sequence_len(self.tail[0]).saturating_sub(have);
            let take = need.min(bytes.len());
            let mut seq = self.tail;
            seq[have..have + take].copy_from_slice(&bytes[..take]);
            match std::str::from_utf8(&seq[..have + take]) {
                Ok(_) => {
                    self.tail_len = 0;
                    bytes = &bytes[take..];
                }
                // Still a valid prefix: `bytes` ran out before the sequence did.
                Err(e) if e.error_len().is_none() => {
                    self.tail = seq;
                    // have + take <= 3 here, as a 4-byte prefix is complete or invalid.
                    self.tail_len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(Utf8Error),
                None => {
                    // "the end of the input was reached unexpectedly": keep the
                    // (at most 3-byte) incomplete sequence for the next piece.
                    let rest = &bytes[e.valid_up_to()..];
                    self.tail[..rest.len()].copy_from_slice(rest);
                    self.tail_len = rest.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Ends the stream: fails if it stopped inside a sequence. Resets the
    /// validator either way, ready for the next message.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let incomplete = self.tail_len != 0;
        self.reset();
        if incomplete { Err(Utf8Error) } else { Ok(()) }
    }

    /// Forgets any carried partial sequence.
    pub fn reset(&mut self) {
        self.tail_len = 0;
    }

    /// Whether a partial sequence is being carried.
    pub fn is_incomplete(&self) -> bool {
        self.tail_len != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_split(bytes: &[u8], splits: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &s in splits {
            v.feed(&bytes[start..s])?;
            start = s;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    const SAMPLES: &[&str] = &[
        "",
        "a",
        "é",
        "€",
        "𝄞",
        "κόσμε",
        "Hello-µ@ßöäüàá-UTF-8!!",
        "\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}",
    ];

    #[test]
    fn valid_at_every_single_and_double_split() {
        for s in SAMPLES {
            let b = s.as_bytes();
            for i in 0..=b.len() {
                assert_eq!(validate_split(b, &[i]), Ok(()), "{s:?} at {i}");
                for j in i..=b.len() {
                    assert_eq!(validate_split(b, &[i, j]), Ok(()), "{s:?} at {i},{j}");
                }
            }
            // One byte at a time.
            let all: Vec<usize> = (0..=b.len()).collect();
            assert_eq!(validate_split(b, &all), Ok(()));
        }
    }

    #[test]
    fn incomplete_at_end_fails_on_finish() {
        for s in ["é", "€", "𝄞"] {
            let b = s.as_bytes();
            for cut in 1..b.len() {
                let mut v = Utf8Validator::new();
                assert_eq!(v.feed(&b[..cut]), Ok(()));
                assert!(v.is_incomplete());
                assert_eq!(v.finish(), Err(Utf8Error));
                // finish resets
                assert_eq!(v.finish(), Ok(()));
            }
        }
    }

    #[test]
    fn fails_fast_on_first_bad_byte() {
        // F4 90 is already out of range (> U+10FFFF): fail with 2 bytes fed.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error));
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xCE, 0xBA, 0xF4, 0x90]), Err(Utf8Error));
        // ED A0 starts a surrogate.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xED]), Ok(()));
        assert_eq!(v.feed(&[0xA0, 0x80]), Err(Utf8Error));
        // E0 80 is overlong.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xE0]), Ok(()));
        assert_eq!(v.feed(&[0x80]), Err(Utf8Error));
        // A lead byte followed by ASCII inside the completion window.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xF0, 0x9D]), Ok(()));
        assert_eq!(v.feed(b"a"), Err(Utf8Error));
        // Bytes that can never appear.
        for b in [0xC0, 0xC1, 0xF5, 0xFF, 0x80] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(&[b]), Err(Utf8Error), "{b:#x}");
        }
    }

    #[test]
    fn completing_tail_then_more_data() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xF0, 0x9D]), Ok(()));
        assert_eq!(v.feed(&[0x84]), Ok(()));
        assert_eq!(v.feed(&[0x9E, b'x', 0xE2, 0x82]), Ok(()));
        assert_eq!(v.feed(&[0xAC, 0xFF]), Err(Utf8Error));
        v.reset();
        assert_eq!(v.feed(&[0xE2, 0x82]), Ok(()));
        assert_eq!(v.feed(&[]), Ok(()));
        assert_eq!(v.feed(&[0xAC]), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Mostly valid text with sprinkled arbitrary bytes, so both outcomes occur.
        prop_oneof![
            any::<String>().prop_map(String::into_bytes),
            (any::<String>(), any::<u8>(), any::<prop::sample::Index>()).prop_map(|(s, b, i)| {
                let mut v = s.into_bytes();
                let at = i.index(v.len() + 1);
                v.insert(at, b);
                v
            }),
            prop::collection::vec(
                prop::sample::select(vec![
                    0x00u8, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0,
                    0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
                ]),
                0..12
            ),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_std_on_every_split(bytes in arb_bytes()) {
            let expect = std::str::from_utf8(&bytes).is_ok();
            for i in 0..=bytes.len() {
                prop_assert_eq!(validate_split(&bytes, &[i]).is_ok(), expect);
            }
            let all: Vec<usize> = (0..=bytes.len()).collect();
            prop_assert_eq!(validate_split(&bytes, &all).is_ok(), expect);
        }

        #[test]
        fn fails_at_the_first_bad_prefix(bytes in arb_bytes()) {
            // Feeding byte by byte, feed must fail exactly at the first index
            // i where bytes[..=i] is neither valid nor a valid prefix.
            let mut v = Utf8Validator::new();
            let first_bad = (0..bytes.len()).find(|&i| {
                matches!(std::str::from_utf8(&bytes[..=i]), Err(e) if e.error_len().is_some())
            });
            for (i, b) in bytes.iter().enumerate() {
                let r = v.feed(std::slice::from_ref(b));
                if Some(i) == first_bad {
                    prop_assert!(r.is_err());
                    break;
                }
                prop_assert!(r.is_ok(), "failed early at {}", i);
            }
        }
    }
}
