//! Remote protocol errors and the one place they map to close codes.
//!
//! Every variant is a rule the peer broke. Local misuse (an application asking
//! for something invalid) is a different error type where it exists
//! ([`crate::protocol::handshake::ResponseError`]), so a [`ProtocolError`]
//! always means "fail the WebSocket connection with [`ProtocolError::close_code`]".

use super::close::{CloseCode, CloseFrameError};

/// A rule of RFC 6455 (or RFC 7692) the peer broke; the connection must be
/// failed with [`ProtocolError::close_code`].
///
/// The `Display` text is short (at most 123 bytes, see
/// [`ProtocolError::close_reason`]) so it can be sent as the close reason.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// "The server MUST close the connection upon receiving a frame that is
    /// not masked." (RFC 6455 §5.1)
    #[error("unmasked client frame")]
    UnmaskedFrame,
    /// "If a nonzero value is received and none of the negotiated extensions
    /// defines the meaning of such a nonzero value, the receiving endpoint
    /// MUST _Fail the WebSocket Connection_." (§5.2)
    #[error("reserved bits set")]
    ReservedBitsSet,
    /// "If an unknown opcode is received, the receiving endpoint MUST _Fail
    /// the WebSocket Connection_." (§5.2)
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    /// "Control frames themselves MUST NOT be fragmented." (§5.4)
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// "All control frames MUST have a payload length of 125 bytes or less."
    /// (§5.5)
    #[error("control frame too long ({0} > 125)")]
    ControlFrameTooLong(u64),
    /// A continuation frame arrived while no fragmented message was open.
    #[error("continuation without a started message")]
    UnexpectedContinuation,
    /// A new Text/Binary frame arrived while a fragmented message was open:
    /// "fragments of one message MUST NOT be interleaved between the
    /// fragments of another message". (§5.4)
    #[error("expected a continuation frame")]
    ExpectedContinuation,
    /// "When an endpoint is to interpret a byte stream as UTF-8 but finds
    /// that the byte stream is not, in fact, a valid UTF-8 stream, that
    /// endpoint MUST _Fail the WebSocket Connection_." (§8.1)
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A close frame carried a status code that may not appear on the wire
    /// (§7.4; see [`CloseCode::is_valid_on_wire`]).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close frame had a one-byte payload: "If there is a body, the first
    /// two bytes of the body MUST be a 2-byte unsigned integer". (§5.5.1)
    #[error("close frame payload of 1 byte")]
    CloseFrameTooShort,
    /// A 64-bit payload length with its most significant bit set: "the most
    /// significant bit MUST be 0". (§5.2)
    #[error("invalid payload length")]
    InvalidLength,
    /// A frame's declared payload length exceeds the configured limit.
    #[error("frame too large ({size} > {limit})")]
    FrameTooLarge {
        /// The declared payload length.
        size: u64,
        /// The configured maximum frame payload size.
        limit: u64,
    },
    /// A message (after decompression, if any) exceeds the configured limit.
    #[error("message too large (> {limit})")]
    MessageTooLarge {
        /// The configured maximum message size.
        limit: u64,
    },
    /// A compressed message could not be decompressed (RFC 7692 §8.2.1:
    /// corrupted data MUST fail the connection).
    ///
    /// Closed with 1007: RFC 7692 names no code, and 1007 ("data within a
    /// message that was not consistent with the type of the message") is the
    /// closest fit for a corrupt payload; 1002 is kept for framing errors.
    #[error("compression error: {0}")]
    Compression(String),
}

impl ProtocolError {
    /// The close code to fail the connection with. This is the ONE place
    /// protocol errors map to close codes.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::UnmaskedFrame
            | ProtocolError::ReservedBitsSet
            | ProtocolError::UnknownOpcode(_)
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooLong(_)
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::InvalidCloseCode(_)
            | ProtocolError::CloseFrameTooShort
            | ProtocolError::InvalidLength => CloseCode::PROTOCOL_ERROR,
            ProtocolError::InvalidUtf8 | ProtocolError::Compression(_) => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
        }
    }

    /// The `Display` text truncated (at a char boundary) to the 123 bytes a
    /// close frame's reason may hold.
    pub fn close_reason(&self) -> String {
        let mut s = self.to_string();
        let keep = super::close::truncate_reason(&s).len();
        s.truncate(keep);
        s
    }
}

impl From<CloseFrameError> for ProtocolError {
    fn from(e: CloseFrameError) -> Self {
        match e {
            CloseFrameError::TooShort => ProtocolError::CloseFrameTooShort,
            CloseFrameError::InvalidCode(code) => ProtocolError::InvalidCloseCode(code),
            CloseFrameError::InvalidUtf8 => ProtocolError::InvalidUtf8,
        }
    }
}

impl From<super::utf8::Utf8Error> for ProtocolError {
    fn from(_: super::utf8::Utf8Error) -> Self {
        ProtocolError::InvalidUtf8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert_eq!(ProtocolError::UnmaskedFrame.close_code(), CloseCode(1002));
        assert_eq!(ProtocolError::InvalidLength.close_code(), CloseCode(1002));
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode(1007));
        assert_eq!(
            ProtocolError::Compression("x".into()).close_code(),
            CloseCode(1007)
        );
        assert_eq!(
            ProtocolError::FrameTooLarge { size: 2, limit: 1 }.close_code(),
            CloseCode(1009)
        );
        assert_eq!(
            ProtocolError::MessageTooLarge { limit: 1 }.close_code(),
            CloseCode(1009)
        );
    }

    #[test]
    fn close_frame_errors_keep_their_meaning() {
        // Autobahn 7.9.x: an invalid code is answered with 1002; a reason
        // that is not UTF-8 with 1007, like any other text (§8.1).
        for (e, want, code) in [
            (
                CloseFrameError::TooShort,
                ProtocolError::CloseFrameTooShort,
                1002,
            ),
            (
                CloseFrameError::InvalidCode(1005),
                ProtocolError::InvalidCloseCode(1005),
                1002,
            ),
            (
                CloseFrameError::InvalidUtf8,
                ProtocolError::InvalidUtf8,
                1007,
            ),
        ] {
            let got = ProtocolError::from(e);
            assert_eq!(got, want);
            assert_eq!(got.close_code(), CloseCode(code));
            assert_eq!(got.to_string(), e.to_string());
        }
    }

    #[test]
    fn reasons_fit_in_a_close_frame() {
        let errs = [
            ProtocolError::UnmaskedFrame,
            ProtocolError::ReservedBitsSet,
            ProtocolError::UnknownOpcode(0xF),
            ProtocolError::FragmentedControlFrame,
            ProtocolError::ControlFrameTooLong(u64::MAX),
            ProtocolError::UnexpectedContinuation,
            ProtocolError::ExpectedContinuation,
            ProtocolError::InvalidUtf8,
            ProtocolError::InvalidCloseCode(u16::MAX),
            ProtocolError::CloseFrameTooShort,
            ProtocolError::InvalidLength,
            ProtocolError::FrameTooLarge {
                size: u64::MAX,
                limit: u64::MAX,
            },
            ProtocolError::MessageTooLarge { limit: u64::MAX },
        ];
        for e in errs {
            assert!(e.to_string().len() <= 123, "{e}");
        }
        let long = ProtocolError::Compression("é".repeat(200));
        let r = long.close_reason();
        assert!(r.len() <= 123 && r.starts_with("compression error: "));
    }
}
