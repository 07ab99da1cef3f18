//! The server's own reasons to refuse a valid opening handshake (policy, not
//! protocol), and the one place they map to HTTP responses.

use thiserror::Error;

use crate::protocol::handshake::{Request, build_reject_response};

/// Why the server refused a client whose handshake was valid.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `Origin` is not in the allow-list (RFC 6455 §4.2.2: "the server
    /// MAY ... reply with an appropriate HTTP error code (such as 403
    /// Forbidden)").
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// The server is at its connection limit or shutting down; the client
    /// may retry.
    #[error("server busy, retry later")]
    ServerBusy,
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Refusal::OriginNotAllowed => 403,
            Refusal::ServerBusy => 503,
        }
    }

    /// The complete HTTP/1.1 response, the reason as a plain-text body;
    /// `Retry-After: 1` for a busy server.
    pub fn response(self) -> Vec<u8> {
        let mut headers = vec![("Content-Type".to_owned(), b"text/plain".to_vec())];
        if self == Refusal::ServerBusy {
            headers.push(("Retry-After".to_owned(), b"1".to_vec()));
        }
        let body = format!("{self}\n");
        // Only fixed, valid parts: building cannot fail; an empty answer
        // (the client sees the connection close) is the fallback all the
        // same.
        build_reject_response(self.status(), "", &headers, body.as_bytes()).unwrap_or_default()
    }
}

/// Check the request's `Origin` against an allow-list; an empty list allows
/// every origin (and requests without one). Origins compare ASCII
/// case-insensitively, as RFC 6454 §6.2 serializes them in lower case.
pub fn check_origin(request: &Request, allowed: &[String]) -> Result<(), Refusal> {
    if allowed.is_empty() {
        return Ok(());
    }
    match &request.origin {
        Some(origin) if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) => Ok(()),
        _ => Err(Refusal::OriginNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::{HandshakeLimits, parse_request};

    #[test]
    fn origin_allow_list() {
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Origin: https://Good.example\r\n\r\n";
        let (request, _) = parse_request(raw, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert!(check_origin(&request, &[]).is_ok());
        assert!(check_origin(&request, &["https://good.example".to_owned()]).is_ok());
        let refused = check_origin(&request, &["https://other.example".to_owned()]).unwrap_err();
        assert_eq!(refused.status(), 403);
        let forbidden = String::from_utf8(refused.response()).unwrap();
        assert!(forbidden.starts_with("HTTP/1.1 403 "), "{forbidden}");
        assert!(
            forbidden.ends_with("\r\n\r\norigin not allowed\n"),
            "{forbidden}"
        );
    }

    #[test]
    fn busy_answer_says_when_to_retry() {
        let busy = String::from_utf8(Refusal::ServerBusy.response()).unwrap();
        assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
        assert!(busy.contains("Retry-After: 1\r\n"), "{busy}");
        assert!(busy.contains("Content-Type: text/plain\r\n"), "{busy}");
    }
}
