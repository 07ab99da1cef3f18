//! The envelope a host wraps each published message in on the broker, so
//! that other hosts know who sent it and what it is.
//!
//! Layout (integers big-endian):
//!
//! | bytes  | field |
//! | ------ | ----- |
//! | 0..4   | magic `WSBX` |
//! | 4      | version, [`VERSION`] |
//! | 5      | flags: bit 0 set for a text message; the other bits are 0 |
//! | 6..14  | the sending host's id (random per run) |
//! | 14..22 | the publishing connection's id (`connection.id`) |
//! | 22..   | the message payload |
//!
//! The topic is not in the envelope: it is the channel's name. Anything
//! else found on a wsbox channel (another program's message, a future
//! version, a text message that is not UTF-8, a payload over the size limit)
//! is refused by [`decode`] and never reaches a client.

use bytes::Bytes;
use thiserror::Error;

/// The first four bytes of every envelope.
pub const MAGIC: [u8; 4] = *b"WSBX";
/// The envelope version this host writes and reads.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 22;
/// Flag bit: the payload is a text message.
const FLAG_TEXT: u8 = 0b1;

/// A message from another host, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sending host's id.
    pub host: u64,
    /// The publishing connection's id.
    pub publisher: u64,
    /// Text (valid UTF-8) or binary.
    pub text: bool,
    /// The message.
    pub payload: Bytes,
}

/// Why bytes from the broker are not a message this host delivers.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Shorter than the header.
    #[error("{0} bytes, shorter than a wsbox envelope header ({HEADER_LEN})")]
    TooShort(usize),
    /// Does not start with the magic: not made by a wsbox host.
    #[error("not a wsbox envelope (no WSBX magic)")]
    NotWsbox,
    /// A version this host does not read.
    #[error("envelope version {0}, this host reads {VERSION}")]
    UnknownVersion(u8),
    /// Flag bits this version does not define.
    #[error("unknown envelope flags {0:#04x}")]
    UnknownFlags(u8),
    /// The payload is larger than the host's `--max-message-size`.
    #[error("payload of {len} bytes, over the {limit}-byte message size limit")]
    TooLarge {
        /// The payload's size.
        len: usize,
        /// The limit.
        limit: u64,
    },
    /// A text message whose payload is not UTF-8.
    #[error("text message that is not valid UTF-8")]
    InvalidUtf8,
}

/// The header of an envelope from host `host` for a message of connection
/// `publisher`; the payload follows it.
pub fn header(host: u64, publisher: u64, text: bool) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4] = VERSION;
    header[5] = if text { FLAG_TEXT } else { 0 };
    header[6..14].copy_from_slice(&host.to_be_bytes());
    header[14..22].copy_from_slice(&publisher.to_be_bytes());
    header
}

/// A whole envelope: [`header`] then `payload`.
pub fn encode(host: u64, publisher: u64, text: bool, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&header(host, publisher, text));
    bytes.extend_from_slice(payload);
    bytes
}

/// Read an envelope whose payload may be at most `max_payload` bytes. The
/// payload shares `bytes`' buffer.
pub fn decode(bytes: Bytes, max_payload: u64) -> Result<Envelope, EnvelopeError> {
    if bytes.len() >= 4 && bytes[..4] != MAGIC {
        return Err(EnvelopeError::NotWsbox);
    }
    let Some(head) = bytes.get(..HEADER_LEN) else {
        return Err(EnvelopeError::TooShort(bytes.len()));
    };
    if head[4] != VERSION {
        return Err(EnvelopeError::UnknownVersion(head[4]));
    }
    let flags = head[5];
    if flags & !FLAG_TEXT != 0 {
        return Err(EnvelopeError::UnknownFlags(flags));
    }
    let word = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&head[at..at + 8]);
        u64::from_be_bytes(word)
    };
    let (host, publisher) = (word(6), word(14));
    let len = bytes.len() - HEADER_LEN;
    if u64::try_from(len).unwrap_or(u64::MAX) > max_payload {
        return Err(EnvelopeError::TooLarge {
            len,
            limit: max_payload,
        });
    }
    let text = flags & FLAG_TEXT != 0;
    let payload = bytes.slice(HEADER_LEN..);
    if text && std::str::from_utf8(&payload).is_err() {
        return Err(EnvelopeError::InvalidUtf8);
    }
    Ok(Envelope {
        host,
        publisher,
        text,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips() {
        for (text, payload) in [
            (true, &b"hello"[..]),
            (false, &[0u8, 255, 7][..]),
            (true, b""),
        ] {
            let bytes = encode(0xdead_beef_0000_0001, 42, text, payload);
            assert_eq!(bytes.len(), HEADER_LEN + payload.len());
            let envelope = decode(Bytes::from(bytes), 1 << 20).unwrap();
            assert_eq!(
                envelope,
                Envelope {
                    host: 0xdead_beef_0000_0001,
                    publisher: 42,
                    text,
                    payload: Bytes::copy_from_slice(payload),
                }
            );
        }
    }

    #[test]
    fn foreign_bytes_are_refused() {
        let decode = |bytes: &[u8]| decode(Bytes::copy_from_slice(bytes), 1 << 20);
        assert_eq!(decode(b"hello world"), Err(EnvelopeError::NotWsbox));
        assert_eq!(decode(b"WSB"), Err(EnvelopeError::TooShort(3)));
        assert_eq!(decode(b"WSBX\x01\x00"), Err(EnvelopeError::TooShort(6)));
        let mut future = encode(1, 2, false, b"x");
        future[4] = 2;
        assert_eq!(decode(&future), Err(EnvelopeError::UnknownVersion(2)));
        let mut flagged = encode(1, 2, false, b"x");
        flagged[5] = 0b10;
        assert_eq!(decode(&flagged), Err(EnvelopeError::UnknownFlags(2)));
        let bad_text = encode(1, 2, true, &[0xff, 0xfe]);
        assert_eq!(decode(&bad_text), Err(EnvelopeError::InvalidUtf8));
        // The same bytes as binary are fine.
        assert!(decode(&encode(1, 2, false, &[0xff, 0xfe])).is_ok());
    }

    #[test]
    fn payloads_over_the_limit_are_refused() {
        let bytes = Bytes::from(encode(1, 2, false, &[0u8; 100]));
        assert!(decode(bytes.clone(), 100).is_ok());
        assert_eq!(
            decode(bytes, 99),
            Err(EnvelopeError::TooLarge {
                len: 100,
                limit: 99
            })
        );
    }
}
