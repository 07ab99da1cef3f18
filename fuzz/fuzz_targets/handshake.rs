//! `parse_request` on arbitrary bytes, with small limits picked by the first
//! byte.
//!
//! Invariants:
//! - `Ok(None)` only while the buffer is below `max_header_bytes`;
//! - `Ok(Some((req, n)))`: `n <= len` and `n <= max_header_bytes`; parsing
//!   `buf[..n]` gives the same request and `n`; every shorter prefix probed
//!   is `Ok(None)` (a server reading the request in pieces never rejects a
//!   request it would accept whole); the request is well formed (origin-form
//!   target, 16-byte key, token subprotocols and extension names, at most
//!   `max_headers` headers) and the 101 response can be built from it;
//! - `Err(e)`: `e.response()` is a complete `HTTP/1.1 4xx` response whose
//!   status is `e.status()` and whose `Content-Length` matches its body.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use wsbox::protocol::deflate::{DeflateConfig, negotiate};
use wsbox::protocol::handshake::{
    HandshakeLimits, Request, accept_key, build_accept_response, parse_request,
};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, buf)) = data.split_first() else {
        return;
    };
    let limits = HandshakeLimits {
        max_header_bytes: 128 << ((sel >> 4) & 3), // 128, 256, 512, 1024
        max_headers: 1 + usize::from(sel & 0x0F),  // 1..=16
    };
    match parse_request(buf, &limits) {
        Ok(None) => assert!(buf.len() < limits.max_header_bytes),
        Ok(Some((req, n))) => {
            assert!(n <= buf.len() && n <= limits.max_header_bytes);
            check_request(&req, &limits);

            // The request alone parses the same.
            let (again, n2) = parse_request(&buf[..n], &limits)
                .expect("request prefix is an error")
                .expect("request prefix is incomplete");
            assert_eq!(n2, n);
            assert_eq!(format!("{again:?}"), format!("{req:?}"));

            // Shorter prefixes are incomplete, not errors.
            for k in [0, n / 2, n - 1, usize::from(sel) % n] {
                match parse_request(&buf[..k], &limits) {
                    Ok(None) => {}
                    other => panic!("prefix of {k}/{n} bytes: {other:?}"),
                }
            }
        }
        Err(e) => {
            let status = e.status();
            assert!((400..500).contains(&status), "{e:?} -> {status}");
            check_error_response(&e.response(), status);
        }
    }
});

fn check_request(req: &Request, limits: &HandshakeLimits) {
    assert!(req.target.starts_with('/'), "target {:?}", req.target);
    assert!(req.path().starts_with('/'));
    assert!(req.headers.len() <= limits.max_headers);
    assert!(req.host.is_some());
    // The key the request carried (its only `Sec-WebSocket-Key`) is the
    // one the answer was computed from.
    let sent = req
        .header("sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .expect("key header");
    let key = base64::engine::general_purpose::STANDARD
        .decode(sent)
        .expect("key is base64");
    assert_eq!(key.len(), 16);
    let sent = std::str::from_utf8(sent).expect("key is ASCII");
    assert_eq!(req.accept, accept_key(sent));
    assert_eq!(req.accept.len(), 28);
    for p in &req.subprotocols {
        assert!(is_token(p.as_bytes()), "subprotocol {p:?}");
    }
    for e in &req.extensions {
        assert!(is_token(e.as_bytes()), "extension {e:?}");
    }
    // The server answers with the first offered subprotocol if the app picks
    // it: that must always render.
    let response = build_accept_response(
        &req.accept,
        req.subprotocols.first().map(String::as_str),
        None,
        &[],
    )
    .expect("accept response");
    assert!(response.starts_with(b"HTTP/1.1 101 "));
    assert!(response.ends_with(b"\r\n\r\n"));
    assert_eq!(count(&response, b"\r\n\r\n"), 1);
    // Extension negotiation runs on whatever the request carried.
    if let Some(n) = negotiate(&DeflateConfig::default(), &req.extension_header) {
        let h = n.response_header();
        let response = build_accept_response(&req.accept, None, Some(&h), &[]).expect("accept");
        assert_eq!(count(&response, b"\r\n\r\n"), 1);
    }
}

fn check_error_response(resp: &[u8], status: u16) {
    let prefix = format!("HTTP/1.1 {status} ");
    assert!(resp.starts_with(prefix.as_bytes()));
    assert!(resp.starts_with(b"HTTP/1.1 4"));
    let split = find(resp, b"\r\n\r\n").expect("end of header section");
    let (head, body) = (&resp[..split], &resp[split + 4..]);
    let head = std::str::from_utf8(head).expect("UTF-8 head");
    let mut length = None;
    for line in head.split("\r\n").skip(1) {
        let (name, value) = line.split_once(": ").expect("header line");
        assert!(is_token(name.as_bytes()), "header name {name:?}");
        assert!(!value.contains(['\r', '\n']));
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().expect("numeric length"));
        }
    }
    assert_eq!(length, Some(body.len()));
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}
