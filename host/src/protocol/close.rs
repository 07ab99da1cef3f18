//! Close status codes and close frame payloads (RFC 6455 §5.5.1, §7.4).
//!
//! Self-contained: a refused payload is a [`CloseFrameError`], which
//! [`ProtocolError`](super::error::ProtocolError) converts (the one place
//! errors become close codes), so this module imports nothing from the rest
//! of the protocol core.

/// The most bytes a close reason may take: a control frame payload is at
/// most 125 bytes and the status code takes 2 of them.
pub const MAX_REASON_LEN: usize = 123;

/// A close status code (RFC 6455 §7.4).
///
/// A newtype rather than an enum so that every code received or chosen by an
/// application stays representable; the named constants cover the codes of
/// RFC 6455 and the IANA "WebSocket Close Code Number Registry".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: "normal closure, meaning that the purpose for which the
    /// connection was established has been fulfilled."
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: "an endpoint is "going away", such as a server going down or a
    /// browser having navigated away from a page."
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: "an endpoint is terminating the connection due to a protocol
    /// error."
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: "it has received a type of data it cannot accept".
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: "a reserved value and MUST NOT be set as a status code in a
    /// Close control frame by an endpoint" — used locally to report that a
    /// close frame carried no status code.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reserved, "MUST NOT be set as a status code in a Close control
    /// frame" — used locally when the connection closed without a close frame.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: "received data within a message that was not consistent with the
    /// type of the message (e.g., non-UTF-8 [RFC3629] data within a text
    /// message)."
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: "received a message that violates its policy."
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: "received a message that is too big for it to process."
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: sent by a client whose required extension the server did not
    /// negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: "encountered an unexpected condition that prevented it from
    /// fulfilling the request."
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012 (IANA): the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013 (IANA): try again later (e.g. the server is overloaded).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014 (IANA): a gateway or proxy received an invalid upstream response.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reserved, TLS handshake failure; never sent on the wire.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a received close frame.
    ///
    /// Valid: the codes defined by RFC 6455 for use in frames (1000-1003,
    /// 1007-1011), the IANA-registered 1012-1014, and 3000-4999 (registered
    /// libraries/frameworks and private use). Invalid: 0-999 ("not used"),
    /// 1004/1005/1006/1015 (reserved, "MUST NOT be set as a status code in a
    /// Close control frame"), the rest of 1000-2999 ("reserved for definition
    /// by this protocol, its future revisions, and extensions") and ≥ 5000.
    /// This matches Autobahn 7.7.x (echoed) and 7.9.x (answered with 1002).
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether a server application may send this code.
    ///
    /// Every code valid on the wire except 1010, which RFC 6455 reserves for
    /// a *client* that "expected the server to negotiate one or more
    /// extension"; a server sending it would misstate the situation.
    pub fn is_sendable(self) -> bool {
        self.is_valid_on_wire() && self != CloseCode::MANDATORY_EXTENSION
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a received close frame payload was refused. Converts into the
/// [`ProtocolError`](super::error::ProtocolError) variant of the same name,
/// which decides the close code to answer with.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseFrameError {
    /// A one-byte payload: "If there is a body, the first two bytes of the
    /// body MUST be a 2-byte unsigned integer". (§5.5.1)
    #[error("close frame payload of 1 byte")]
    TooShort,
    /// A status code that may not appear on the wire (§7.4; see
    /// [`CloseCode::is_valid_on_wire`]).
    #[error("invalid close code {0}")]
    InvalidCode(u16),
    /// A reason that is not UTF-8 ("the body ... MUST be encoded in UTF-8").
    #[error("invalid UTF-8")]
    InvalidUtf8,
}

/// Parses a received close frame payload (RFC 6455 §5.5.1).
///
/// Empty → `Ok(None)` (no status code). Otherwise "the first two bytes of the
/// body MUST be a 2-byte unsigned integer (in network byte order)
/// representing a status code", so one byte is an error; the code must be
/// [valid on the wire](CloseCode::is_valid_on_wire); the rest is the reason,
/// which must be UTF-8 ("the body ... MUST be encoded in UTF-8", 1007).
/// An invalid code is reported before an invalid reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, String)>, CloseFrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(CloseFrameError::TooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(CloseFrameError::InvalidCode(code.0));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseFrameError::InvalidUtf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

/// The longest prefix of `reason` that fits in [`MAX_REASON_LEN`] bytes and
/// ends on a char boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Appends a close frame payload: the code in network byte order, then the
/// reason, truncated at a char boundary to [`MAX_REASON_LEN`] bytes so the
/// payload never exceeds the 125-byte control frame limit.
pub fn encode_close_payload(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(truncate_reason(reason).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autobahn_7_7_valid_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(c).is_valid_on_wire(), "{c}");
            let mut p = Vec::new();
            encode_close_payload(CloseCode(c), "", &mut p);
            assert_eq!(
                parse_close_payload(&p),
                Ok(Some((CloseCode(c), String::new())))
            );
        }
    }

    #[test]
    fn autobahn_7_9_invalid_codes() {
        for c in [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999] {
            assert!(!CloseCode(c).is_valid_on_wire(), "{c}");
            let p = c.to_be_bytes();
            assert_eq!(
                parse_close_payload(&p),
                Err(CloseFrameError::InvalidCode(c))
            );
        }
    }

    #[test]
    fn full_code_space() {
        for c in 0..=u16::MAX {
            let valid = CloseCode(c).is_valid_on_wire();
            let expect = matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999);
            assert_eq!(valid, expect, "{c}");
            if CloseCode(c).is_sendable() {
                assert!(valid && c != 1010);
            }
        }
        assert!(!CloseCode::TLS_HANDSHAKE.is_valid_on_wire());
        assert!(CloseCode::NORMAL.is_sendable());
        assert!(CloseCode::TRY_AGAIN_LATER.is_sendable());
        assert!(!CloseCode::MANDATORY_EXTENSION.is_sendable());
        assert!(!CloseCode::NO_STATUS.is_sendable());
        assert!(!CloseCode::ABNORMAL.is_sendable());
    }

    #[test]
    fn payload_rules() {
        assert_eq!(parse_close_payload(b""), Ok(None));
        assert_eq!(parse_close_payload(&[0x03]), Err(CloseFrameError::TooShort));
        assert_eq!(
            parse_close_payload(b"\x03\xe8bye"),
            Ok(Some((CloseCode::NORMAL, "bye".to_owned())))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xff"),
            Err(CloseFrameError::InvalidUtf8)
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xce\xba\xe1\xbd\xb9"),
            Ok(Some((CloseCode::NORMAL, "\u{3ba}\u{1f79}".to_owned())))
        );
        // Invalid code is reported before an invalid reason.
        assert_eq!(
            parse_close_payload(b"\x00\x00\xff"),
            Err(CloseFrameError::InvalidCode(0))
        );
    }

    #[test]
    fn encode_truncates_reason_at_char_boundary() {
        let mut p = Vec::new();
        let reason = "é".repeat(100); // 200 bytes
        encode_close_payload(CloseCode::GOING_AWAY, &reason, &mut p);
        assert_eq!(p.len(), 2 + 122);
        let (code, r) = parse_close_payload(&p).unwrap().unwrap();
        assert_eq!(code, CloseCode::GOING_AWAY);
        assert_eq!(r, "é".repeat(61));
        let mut p = Vec::new();
        encode_close_payload(CloseCode::NORMAL, &"a".repeat(200), &mut p);
        assert_eq!(p.len(), 125);
        assert_eq!(truncate_reason("short"), "short");
    }
}
