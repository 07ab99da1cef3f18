//! The server side of the opening handshake (RFC 6455 §4.2, over RFC 7230).
//!
//! [`parse_request`] reads and validates the client's request;
//! [`HandshakeError::response`] is the one place a failed handshake maps to
//! an HTTP status; [`build_accept_response`] and [`build_reject_response`]
//! render what the application decided, refusing header injection.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use super::header::{self, is_token, list_contains};

/// The GUID a server appends to the client's key (§1.3).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Limits on the request's header section.
#[derive(Clone, Debug)]
pub struct HandshakeLimits {
    /// The largest header section (request line through the empty line), in
    /// bytes (default 8192). Larger → 431.
    pub max_header_bytes: usize,
    /// The most header fields (default 64). More → 431.
    pub max_headers: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            max_header_bytes: 8192,
            max_headers: 64,
        }
    }
}

/// A validated WebSocket opening handshake request.
#[derive(Clone, Debug)]
pub struct Request {
    /// The request target in origin-form (path and query). An absolute-form
    /// target (`GET http://h/p?q HTTP/1.1`) is converted to `/p?q` (RFC 7230
    /// §5.3.2: "A server MUST accept the absolute-form in requests").
    pub target: String,
    /// Every header field in order, names as received, values as bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The `Sec-WebSocket-Accept` value answering the client's
    /// `Sec-WebSocket-Key` ([`accept_key`]). Computed while parsing, on the
    /// connection task's stack: the guest answers from its fiber stack,
    /// where SHA-1 and base64 were the deepest 0.8 KB of the stack every
    /// connection keeps (host/benches/README.md, "eleventh pass").
    pub accept: String,
    /// The subprotocols offered in all `Sec-WebSocket-Protocol` headers, in
    /// order ("the client's preference").
    pub subprotocols: Vec<String>,
    /// The extension names offered across all `Sec-WebSocket-Extensions`
    /// headers, in order (parameters stripped).
    pub extensions: Vec<String>,
    /// The raw `Sec-WebSocket-Extensions` values, for extension negotiation.
    pub extension_header: Vec<String>,
    /// The `Origin` header, if sent (browsers always send it).
    pub origin: Option<String>,
    /// The `Host` header.
    pub host: Option<String>,
}

impl Request {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The path part of [`Request::target`] (before any `?`).
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query part of [`Request::target`] (after the first `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

/// Why a handshake request was refused. [`HandshakeError::status`] and
/// [`HandshakeError::response`] are the one place these map to HTTP.
#[derive(thiserror::Error, Debug)]
pub enum HandshakeError {
    /// "The method of the request MUST be GET" (§4.1) → 405 with `Allow: GET`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// "the HTTP version MUST be at least 1.1" (§4.1) → 400.
    #[error("HTTP/1.1 required")]
    UnsupportedHttpVersion,
    /// The request could not be parsed as HTTP/1.1 → 400.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The request target is neither origin-form nor absolute-form → 400.
    #[error("invalid request target")]
    InvalidTarget,
    /// "A server MUST respond with a 400 (Bad Request) status code to any
    /// HTTP/1.1 request message that lacks a Host header field" (RFC 7230 §5.4).
    #[error("missing Host header")]
    MissingHost,
    /// A header that must appear at most once appeared more often → 400
    /// (Host: RFC 7230 §5.4; Sec-WebSocket-Key/Version: RFC 6455 §11.3).
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// A header's value is not of its required form → 400.
    #[error("invalid {0} header")]
    InvalidHeader(&'static str),
    /// No `Upgrade` header containing `websocket` → 400.
    #[error("missing Upgrade: websocket")]
    MissingUpgrade,
    /// No `Connection` header containing `upgrade` → 400.
    #[error("missing Connection: upgrade")]
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` → 400.
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
    /// The key does not decode to 16 bytes ("a base64-encoded value that,
    /// when decoded, is 16 bytes in length", §4.1) → 400.
    #[error("invalid Sec-WebSocket-Key")]
    InvalidKey,
    /// `Sec-WebSocket-Version` missing or not 13 → 426 with
    /// `Sec-WebSocket-Version: 13` (§4.2.2).
    #[error("unsupported Sec-WebSocket-Version (13 required)")]
    UnsupportedVersion,
    /// The request announced a body (`Content-Length` other than 0 or any
    /// `Transfer-Encoding`): the bytes after the header section belong to the
    /// WebSocket stream, so a body would be misread as frames → 400.
    #[error("request body not allowed")]
    UnexpectedBody,
    /// The header section exceeds `max_header_bytes` → 431.
    #[error("request header section too large")]
    HeadersTooLarge,
    /// More than `max_headers` header fields → 431.
    #[error("too many request headers")]
    TooManyHeaders,
}

impl HandshakeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::HeadersTooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::UnsupportedHttpVersion
            | HandshakeError::Malformed(_)
            | HandshakeError::InvalidTarget
            | HandshakeError::MissingHost
            | HandshakeError::DuplicateHeader(_)
            | HandshakeError::InvalidHeader(_)
            | HandshakeError::MissingUpgrade
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::MissingKey
            | HandshakeError::InvalidKey
            | HandshakeError::UnexpectedBody => 400,
        }
    }

    /// The complete HTTP/1.1 response: status line, `Connection: close`,
    /// `Content-Type: text/plain`, `Content-Length`, `Allow: GET` (405) or
    /// `Sec-WebSocket-Version: 13` (426) where required, and the reason as
    /// the body.
    pub fn response(&self) -> Vec<u8> {
        let status = self.status();
        let body = format!("{self}\n");
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n",
            standard_reason(status),
            body.len()
        );
        match self {
            // "The origin server MUST generate an Allow header field in a 405
            // (Method Not Allowed) response" (RFC 7231 §6.5.5).
            HandshakeError::MethodNotAllowed => out.push_str("Allow: GET\r\n"),
            // "send an appropriate HTTP error code (such as 426 Upgrade
            // Required) and a |Sec-WebSocket-Version| header field indicating
            // the version(s) the server is capable of understanding" (§4.4).
            HandshakeError::UnsupportedVersion => out.push_str("Sec-WebSocket-Version: 13\r\n"),
            _ => {}
        }
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    }
}

/// Why an application-built response was refused (local misuse, never the
/// peer's fault).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// A header name is not an RFC 7230 token.
    #[error("invalid header name {0:?}")]
    InvalidHeaderName(String),
    /// A header value (named by the field) contains CR, LF or NUL.
    #[error("invalid value for header {0:?}")]
    InvalidHeaderValue(String),
    /// The header is managed by the server: `Upgrade`, `Connection`,
    /// `Sec-WebSocket-*`, `Content-Length`, `Transfer-Encoding`.
    #[error("header {0:?} is set by the server")]
    ReservedHeader(String),
    /// A reject status outside 400..=599.
    #[error("invalid status {0} (400-599 required)")]
    InvalidStatus(u16),
    /// A reason phrase with control characters.
    #[error("invalid reason phrase")]
    InvalidReason,
}

/// Parses and validates an opening handshake request from the front of `buf`.
///
/// `Ok(None)`: the header section is incomplete (and still within the
/// limit); read more and call again with all bytes so far. `Ok(Some((req,
/// n)))`: the request took `n` bytes; anything after belongs to the
/// WebSocket stream. Only the first `max_header_bytes` of `buf` are examined.
pub fn parse_request(
    buf: &[u8],
    limits: &HandshakeLimits,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if window.len() >= limits.max_header_bytes => {
            return Err(HandshakeError::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
    };

    // "The method of the request MUST be GET" (§4.1).
    if req.method != Some("GET") {
        return Err(HandshakeError::MethodNotAllowed);
    }
    // "the HTTP version MUST be at least 1.1"; httparse only knows 1.0/1.1.
    if req.version != Some(1) {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let target = req
        .path
        .and_then(origin_form)
        .ok_or(HandshakeError::InvalidTarget)?;

    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.trim_ascii().to_vec()))
        .collect();
    let all = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };
    let at_most_once = |name: &'static str| -> Result<Option<&[u8]>, HandshakeError> {
        let mut values = all(name);
        let first = values.next();
        match values.next() {
            Some(_) => Err(HandshakeError::DuplicateHeader(name)),
            None => Ok(first),
        }
    };
    let utf8 = |name: &'static str, v: &[u8]| {
        std::str::from_utf8(v)
            .map(str::to_owned)
            .map_err(|_| HandshakeError::InvalidHeader(name))
    };

    // RFC 7230 §5.4: 400 for a missing Host or more than one.
    let host = match at_most_once("Host")? {
        Some(v) => utf8("Host", v)?,
        None => return Err(HandshakeError::MissingHost),
    };

    // A body would be read as WebSocket frames; refuse requests that announce one.
    if all("Transfer-Encoding").next().is_some() {
        return Err(HandshakeError::UnexpectedBody);
    }
    for v in all("Content-Length") {
        if v != b"0" {
            return Err(HandshakeError::UnexpectedBody);
        }
    }

    // "An |Upgrade| header field containing the value "websocket", treated
    // as an ASCII case-insensitive value."
    if !all("Upgrade").any(|v| list_contains(v, "websocket")) {
        return Err(HandshakeError::MissingUpgrade);
    }
    // "A |Connection| header field that includes the token "Upgrade", treated
    // as an ASCII case-insensitive value."
    if !all("Connection").any(|v| list_contains(v, "upgrade")) {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // "If this version does not match a version understood by the server, the
    // server MUST abort the WebSocket handshake" with 426 (§4.2.2). Checked
    // before the key so old-draft clients (no key) learn what to speak.
    if at_most_once("Sec-WebSocket-Version")? != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    // "A |Sec-WebSocket-Key| header field with a base64-encoded value that,
    // when decoded, is 16 bytes in length." It MUST NOT appear more than once.
    let key = at_most_once("Sec-WebSocket-Key")?.ok_or(HandshakeError::MissingKey)?;
    match BASE64.decode(key) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    // Base64 decoded, so the key is ASCII.
    let accept = accept_key(&utf8("Sec-WebSocket-Key", key)?);

    let origin = at_most_once("Origin")?
        .map(|v| utf8("Origin", v))
        .transpose()?;

    // Subprotocols: "a comma-separated list of ... values" whose elements
    // "MUST be non-empty strings with characters in the range U+0021 to
    // U+007E not including separator characters" (tokens).
    let mut subprotocols = Vec::new();
    for v in all("Sec-WebSocket-Protocol") {
        for (_, item) in header::list_bytes(v) {
            if !is_token(item) {
                return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"));
            }
            subprotocols.push(utf8("Sec-WebSocket-Protocol", item)?);
        }
    }

    // Extensions: a list of `name *( ";" param )` elements (§9.1). Only the
    // names are checked here (a name that is not a token is a 400); the
    // parameters belong to the extension's negotiation, which declines what
    // it cannot read (for permessage-deflate: no compression, not an error).
    let mut extensions = Vec::new();
    let mut extension_header = Vec::new();
    for v in all("Sec-WebSocket-Extensions") {
        let raw = utf8("Sec-WebSocket-Extensions", v)?;
        for (_, item) in header::list(&raw) {
            match header::element(item) {
                Ok(element) => extensions.push(element.name.to_owned()),
                // Parameters without a name before them name no extension.
                Err(_) if item.starts_with(';') => {}
                Err(_) => return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Extensions")),
            }
        }
        extension_header.push(raw);
    }

    let request = Request {
        target,
        headers,
        accept,
        subprotocols,
        extensions,
        extension_header,
        origin,
        host: Some(host),
    };
    Ok(Some((request, consumed)))
}

/// The request target in origin-form: origin-form as is; absolute-form
/// (`scheme://authority[/path][?query]`) reduced to path and query, with an
/// empty path becoming `/`. Asterisk- and authority-form are refused.
pub fn origin_form(target: &str) -> Option<String> {
    if target.starts_with('/') {
        return Some(target.to_owned());
    }
    let (scheme, rest) = target.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let path_start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if !scheme_ok || path_start == 0 {
        return None;
    }
    let tail = &rest[path_start..];
    // A fragment is never part of a request target.
    let tail = tail.split_once('#').map_or(tail, |(t, _)| t);
    if tail.starts_with('/') {
        Some(tail.to_owned())
    } else {
        Some(format!("/{tail}"))
    }
}

/// The `Sec-WebSocket-Accept` value for a client key: "the base64-encoded
/// SHA-1 of the concatenation of the |Sec-WebSocket-Key| (as a string, not
/// base64-decoded) with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"".
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// Checks an application-supplied header and appends it as `name: value`.
fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), ResponseError> {
    if !is_token(name.as_bytes()) {
        return Err(ResponseError::InvalidHeaderName(name.to_owned()));
    }
    let lower = name.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "upgrade" | "connection" | "content-length" | "transfer-encoding"
    ) || lower.starts_with("sec-websocket-")
    {
        return Err(ResponseError::ReservedHeader(name.to_owned()));
    }
    push_checked(out, name, value)
}

/// Appends `name: value` after checking the value cannot break the framing
/// of the response (no CR, LF or NUL).
fn push_checked(out: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), ResponseError> {
    if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(ResponseError::InvalidHeaderValue(name.to_owned()));
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The 101 response accepting the handshake (§4.2.2): `accept` is the
/// request's [`Request::accept`]; with the chosen subprotocol (must be a
/// token; the caller checks the client offered it), the negotiated
/// extensions value and extra application headers.
pub fn build_accept_response(
    accept: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    extra_headers: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, ResponseError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    push_checked(&mut out, "Sec-WebSocket-Accept", accept.as_bytes())?;
    if let Some(p) = subprotocol {
        if !is_token(p.as_bytes()) {
            return Err(ResponseError::InvalidHeaderValue(
                "Sec-WebSocket-Protocol".into(),
            ));
        }
        push_checked(&mut out, "Sec-WebSocket-Protocol", p.as_bytes())?;
    }
    if let Some(e) = extensions {
        push_checked(&mut out, "Sec-WebSocket-Extensions", e.as_bytes())?;
    }
    for (name, value) in extra_headers {
        push_header(&mut out, name, value)?;
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// A response refusing the handshake on the application's behalf: `status`
/// in 400..=599, `reason` (empty → [`standard_reason`]), extra headers, the
/// body, plus `Content-Length` and `Connection: close`.
pub fn build_reject_response(
    status: u16,
    reason: &str,
    extra_headers: &[(String, Vec<u8>)],
    body: &[u8],
) -> Result<Vec<u8>, ResponseError> {
    if !(400..=599).contains(&status) {
        return Err(ResponseError::InvalidStatus(status));
    }
    let reason = if reason.is_empty() {
        standard_reason(status)
    } else {
        reason
    };
    // reason-phrase = *( HTAB / SP / VCHAR / obs-text ) (RFC 7230 §3.1.2).
    if reason.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(ResponseError::InvalidReason);
    }
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        )
        .as_bytes(),
    );
    for (name, value) in extra_headers {
        push_header(&mut out, name, value)?;
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// The standard reason phrase for a status code (RFC 9110 and RFC 6585),
/// or a generic one for unregistered codes.
pub fn standard_reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Unknown",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    /// RFC 6455 §1.3's answer to [`KEY`].
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn request_with(lines: &[&str]) -> Vec<u8> {
        let mut s = String::from("GET /chat?room=1 HTTP/1.1\r\n");
        for l in lines {
            s.push_str(l);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    fn base() -> Vec<&'static str> {
        vec![
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    }

    fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, HandshakeError> {
        parse_request(buf, &HandshakeLimits::default())
    }

    fn parse_err(lines: &[&str]) -> HandshakeError {
        parse(&request_with(lines)).unwrap_err()
    }

    /// The base request with the header starting with `prefix` removed or
    /// replaced.
    fn without(prefix: &str, replacement: Option<&'static str>) -> Vec<&'static str> {
        let mut v: Vec<&str> = base()
            .into_iter()
            .filter(|l| !l.starts_with(prefix))
            .collect();
        v.extend(replacement);
        v
    }

    #[test]
    fn rfc_accept_key() {
        assert_eq!(accept_key(KEY), ACCEPT);
    }

    #[test]
    fn valid_request() {
        let mut lines = base();
        lines.extend([
            "Origin: http://example.com",
            "Sec-WebSocket-Protocol: chat, superchat",
            "sec-websocket-protocol: v2.json",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; a=\"1,2\"",
            "Sec-WebSocket-Extensions: x-bar",
            "X-Bin: \u{e9}",
        ]);
        let mut buf = request_with(&lines);
        let len = buf.len();
        buf.extend_from_slice(b"\x81\x80frame bytes");
        let (req, n) = parse(&buf).unwrap().unwrap();
        assert_eq!(n, len);
        assert_eq!(req.target, "/chat?room=1");
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=1"));
        assert_eq!(req.accept, ACCEPT);
        assert_eq!(req.host.as_deref(), Some("server.example.com"));
        assert_eq!(req.origin.as_deref(), Some("http://example.com"));
        assert_eq!(req.subprotocols, ["chat", "superchat", "v2.json"]);
        assert_eq!(req.extensions, ["permessage-deflate", "x-foo", "x-bar"]);
        assert_eq!(
            req.extension_header,
            [
                "permessage-deflate; client_max_window_bits, x-foo; a=\"1,2\"",
                "x-bar"
            ]
        );
        assert_eq!(req.header("UPGRADE"), Some(&b"websocket"[..]));
        assert_eq!(req.header("x-bin"), Some("\u{e9}".as_bytes()));
        assert_eq!(req.header("missing"), None);
        assert_eq!(req.headers.len(), lines.len());
    }

    #[test]
    fn token_lists_and_case() {
        let lines = [
            "host: h",
            "upgrade: h2c, WebSocket",
            "connection: keep-alive, UPGRADE",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version: 13",
        ];
        assert!(parse(&request_with(&lines)).unwrap().is_some());
    }

    #[test]
    fn incomplete_request_needs_more() {
        let buf = request_with(&base());
        for cut in 0..buf.len() {
            assert!(matches!(parse(&buf[..cut]), Ok(None)), "cut {cut}");
        }
    }

    #[test]
    fn only_get() {
        let mut buf = request_with(&base());
        buf.splice(0..3, b"POST".iter().copied());
        let e = parse(&buf).unwrap_err();
        assert!(matches!(e, HandshakeError::MethodNotAllowed));
        assert_eq!(e.status(), 405);
        let r = String::from_utf8(e.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(r.contains("\r\nAllow: GET\r\n"));
    }

    #[test]
    fn only_http_1_1() {
        let buf = String::from_utf8(request_with(&base()))
            .unwrap()
            .replace("HTTP/1.1", "HTTP/1.0");
        let e = parse(buf.as_bytes()).unwrap_err();
        assert!(matches!(e, HandshakeError::UnsupportedHttpVersion));
        assert_eq!(e.status(), 400);
        let buf = String::from_utf8(request_with(&base()))
            .unwrap()
            .replace("HTTP/1.1", "HTTP/2.0");
        assert_eq!(parse(buf.as_bytes()).unwrap_err().status(), 400);
    }

    #[test]
    fn host_required_once() {
        assert!(matches!(
            parse_err(&without("Host", None)),
            HandshakeError::MissingHost
        ));
        let mut lines = base();
        lines.push("Host: other");
        assert!(matches!(
            parse_err(&lines),
            HandshakeError::DuplicateHeader("Host")
        ));
        assert_eq!(parse_err(&lines).status(), 400);
    }

    #[test]
    fn upgrade_required() {
        let e = parse_err(&without("Upgrade", None));
        assert!(matches!(e, HandshakeError::MissingUpgrade));
        assert_eq!(e.status(), 400);
        let e = parse_err(&without("Upgrade", Some("Upgrade: h2c")));
        assert!(matches!(e, HandshakeError::MissingUpgrade));
        let e = parse_err(&without("Upgrade", Some("Upgrade: websockets")));
        assert!(matches!(e, HandshakeError::MissingUpgrade));
    }

    #[test]
    fn connection_upgrade_required() {
        let e = parse_err(&without("Connection", None));
        assert!(matches!(e, HandshakeError::MissingConnectionUpgrade));
        let e = parse_err(&without("Connection", Some("Connection: keep-alive")));
        assert!(matches!(e, HandshakeError::MissingConnectionUpgrade));
        assert_eq!(e.status(), 400);
        assert!(
            parse(&request_with(&without(
                "Connection",
                Some("Connection: keep-alive, Upgrade")
            )))
            .is_ok()
        );
    }

    #[test]
    fn key_rules() {
        assert!(matches!(
            parse_err(&without("Sec-WebSocket-Key", None)),
            HandshakeError::MissingKey
        ));
        let mut lines = base();
        lines.push("Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==");
        assert!(matches!(
            parse_err(&lines),
            HandshakeError::DuplicateHeader("Sec-WebSocket-Key")
        ));
        for bad in [
            "Sec-WebSocket-Key: not base64!",
            "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P", // 15 bytes
            "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=", // 17 bytes
            "Sec-WebSocket-Key: ",
        ] {
            let e = parse_err(&without("Sec-WebSocket-Key", Some(bad)));
            assert!(matches!(e, HandshakeError::InvalidKey), "{bad}: {e:?}");
            assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn version_13_required() {
        for lines in [
            without("Sec-WebSocket-Version", None),
            without("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
            without(
                "Sec-WebSocket-Version",
                Some("Sec-WebSocket-Version: 13, 8"),
            ),
        ] {
            let e = parse_err(&lines);
            assert!(matches!(e, HandshakeError::UnsupportedVersion), "{e:?}");
            assert_eq!(e.status(), 426);
            let r = String::from_utf8(e.response()).unwrap();
            assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
            assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        }
    }

    #[test]
    fn header_limits() {
        let limits = HandshakeLimits {
            max_header_bytes: 200,
            max_headers: 8,
        };
        let buf = request_with(&base());
        assert!(buf.len() < 200);
        assert!(parse_request(&buf, &limits).unwrap().is_some());
        // Exactly at the limit is fine.
        let limits_exact = HandshakeLimits {
            max_header_bytes: buf.len(),
            max_headers: 8,
        };
        assert!(parse_request(&buf, &limits_exact).unwrap().is_some());
        let limits_under = HandshakeLimits {
            max_header_bytes: buf.len() - 1,
            max_headers: 8,
        };
        let e = parse_request(&buf, &limits_under).unwrap_err();
        assert!(matches!(e, HandshakeError::HeadersTooLarge));
        assert_eq!(e.status(), 431);
        // An incomplete section already at the limit can never complete.
        let junk = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 300]].concat();
        assert!(matches!(
            parse_request(&junk, &limits),
            Err(HandshakeError::HeadersTooLarge)
        ));
        // Too many headers.
        let mut lines = base();
        lines.extend(["A: 1", "B: 2", "C: 3", "D: 4"]);
        let e = parse_request(&request_with(&lines), &limits).unwrap_err();
        assert!(matches!(e, HandshakeError::TooManyHeaders));
        assert_eq!(e.status(), 431);
        let r = String::from_utf8(e.response()).unwrap();
        assert!(r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }

    #[test]
    fn malformed_is_400() {
        for buf in [
            &b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"[..],
            b"GET\x01 / HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let e = parse(buf).unwrap_err();
            assert!(matches!(e, HandshakeError::Malformed(_)), "{e:?}");
            assert_eq!(e.status(), 400);
            let r = String::from_utf8(e.response()).unwrap();
            assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"));
            assert!(r.contains("\r\nConnection: close\r\n"));
            assert!(r.contains("\r\nContent-Type: text/plain\r\n"));
            let body = r.split("\r\n\r\n").nth(1).unwrap();
            assert!(r.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
            assert!(body.ends_with('\n') && body.lines().count() == 1);
        }
    }

    #[test]
    fn absolute_form_target() {
        for (target, want) in [
            ("http://example.com/p?q=1", "/p?q=1"),
            ("ws://example.com:80/p", "/p"),
            ("https://example.com", "/"),
            ("http://example.com?q", "/?q"),
            ("http://example.com/p#frag", "/p"),
        ] {
            let buf = String::from_utf8(request_with(&base())).unwrap().replacen(
                "/chat?room=1",
                target,
                1,
            );
            let (req, _) = parse(buf.as_bytes()).unwrap().unwrap();
            assert_eq!(req.target, want, "{target}");
        }
        for target in ["*", "example.com:443", "http:///p", "1http://h/"] {
            let buf = String::from_utf8(request_with(&base())).unwrap().replacen(
                "/chat?room=1",
                target,
                1,
            );
            let e = parse(buf.as_bytes()).unwrap_err();
            assert!(
                matches!(e, HandshakeError::InvalidTarget),
                "{target}: {e:?}"
            );
        }
    }

    #[test]
    fn body_refused() {
        let mut lines = base();
        lines.push("Content-Length: 5");
        assert!(matches!(parse_err(&lines), HandshakeError::UnexpectedBody));
        let mut lines = base();
        lines.push("Transfer-Encoding: chunked");
        assert!(matches!(parse_err(&lines), HandshakeError::UnexpectedBody));
        let mut lines = base();
        lines.push("Content-Length: 0");
        assert!(parse(&request_with(&lines)).unwrap().is_some());
    }

    #[test]
    fn invalid_optional_headers() {
        let mut lines = base();
        lines.push("Sec-WebSocket-Protocol: chat, bad/proto");
        assert!(matches!(
            parse_err(&lines),
            HandshakeError::InvalidHeader("Sec-WebSocket-Protocol")
        ));
        let mut lines = base();
        lines.push("Sec-WebSocket-Protocol: , chat,,");
        let (req, _) = parse(&request_with(&lines)).unwrap().unwrap();
        assert_eq!(req.subprotocols, ["chat"]);
        let mut lines = base();
        lines.push("Sec-WebSocket-Extensions: bad name");
        assert!(matches!(
            parse_err(&lines),
            HandshakeError::InvalidHeader("Sec-WebSocket-Extensions")
        ));
        let mut lines = base();
        lines.extend(["Origin: a", "Origin: b"]);
        assert!(matches!(
            parse_err(&lines),
            HandshakeError::DuplicateHeader("Origin")
        ));
        let mut buf = request_with(&base());
        let at = buf.len() - 2;
        buf.splice(at..at, b"Origin: \xff\r\n".iter().copied());
        assert!(matches!(
            parse(&buf).unwrap_err(),
            HandshakeError::InvalidHeader("Origin")
        ));
    }

    #[test]
    fn extension_names_are_checked_parameters_are_not() {
        let names = |value: &'static str| {
            let mut lines = base();
            lines.push(value);
            parse(&request_with(&lines)).map(|r| r.expect("complete").0.extensions)
        };
        // Malformed parameters are the extension negotiation's business
        // (permessage-deflate then declines: no compression, no error).
        assert_eq!(
            names("Sec-WebSocket-Extensions: permessage-deflate; x=\"unterminated, y").unwrap(),
            ["permessage-deflate"]
        );
        assert_eq!(
            names("Sec-WebSocket-Extensions: a; b c, d; =").unwrap(),
            ["a", "d"]
        );
        // Empty elements, and parameters naming no extension, are skipped.
        assert_eq!(
            names("Sec-WebSocket-Extensions: , ;x=1, a ,,").unwrap(),
            ["a"]
        );
        // A comma inside a quoted value does not split.
        assert_eq!(
            names("Sec-WebSocket-Extensions: a; p=\"1, b\", c").unwrap(),
            ["a", "c"]
        );
        for bad in [
            "Sec-WebSocket-Extensions: bad name",
            "Sec-WebSocket-Extensions: a, (b)",
            "Sec-WebSocket-Extensions: a \"b, c\"",
            "Sec-WebSocket-Extensions: a=1",
        ] {
            assert!(
                matches!(
                    names(bad),
                    Err(HandshakeError::InvalidHeader("Sec-WebSocket-Extensions"))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn subprotocols_are_a_token_list() {
        let mut lines = base();
        lines.push("Sec-WebSocket-Protocol: \t a ,b,\t,c\t");
        let (req, _) = parse(&request_with(&lines)).unwrap().unwrap();
        assert_eq!(req.subprotocols, ["a", "b", "c"]);
        for bad in ["a b", "\"a\"", "a;b", "a/1", "a, \"b,c\""] {
            let mut lines = base();
            let line = format!("Sec-WebSocket-Protocol: {bad}");
            lines.push(&line);
            assert!(
                matches!(
                    parse(&request_with(&lines)),
                    Err(HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_messages_are_short() {
        let errs = [
            HandshakeError::MethodNotAllowed,
            HandshakeError::UnsupportedHttpVersion,
            HandshakeError::Malformed("invalid header name".into()),
            HandshakeError::InvalidTarget,
            HandshakeError::MissingHost,
            HandshakeError::DuplicateHeader("Sec-WebSocket-Version"),
            HandshakeError::InvalidHeader("Sec-WebSocket-Extensions"),
            HandshakeError::MissingUpgrade,
            HandshakeError::MissingConnectionUpgrade,
            HandshakeError::MissingKey,
            HandshakeError::InvalidKey,
            HandshakeError::UnsupportedVersion,
            HandshakeError::UnexpectedBody,
            HandshakeError::HeadersTooLarge,
            HandshakeError::TooManyHeaders,
        ];
        for e in errs {
            let s = e.to_string();
            assert!(s.len() < 80 && !s.contains('\n'), "{s}");
            assert!((400..=599).contains(&e.status()));
            assert!(e.response().ends_with(format!("\r\n\r\n{s}\n").as_bytes()));
        }
    }

    #[test]
    fn accept_response() {
        let r = build_accept_response(
            ACCEPT,
            Some("chat"),
            Some("permessage-deflate"),
            &[("X-Id".into(), b"7".to_vec())],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\nX-Id: 7\r\n\r\n"
        );
        let r = build_accept_response(ACCEPT, None, None, &[]).unwrap();
        assert!(
            !String::from_utf8(r)
                .unwrap()
                .contains("Sec-WebSocket-Protocol")
        );
        assert_eq!(
            build_accept_response(ACCEPT, Some("a b"), None, &[]),
            Err(ResponseError::InvalidHeaderValue(
                "Sec-WebSocket-Protocol".into()
            ))
        );
        assert_eq!(
            build_accept_response(ACCEPT, None, Some("x\r\nEvil: 1"), &[]),
            Err(ResponseError::InvalidHeaderValue(
                "Sec-WebSocket-Extensions".into()
            ))
        );
    }

    #[test]
    fn extra_header_checks() {
        let h = |n: &str, v: &[u8]| vec![(n.to_owned(), v.to_vec())];
        for name in [
            "Upgrade",
            "connection",
            "Sec-WebSocket-Accept",
            "sec-websocket-protocol",
            "Content-Length",
            "Transfer-Encoding",
        ] {
            assert_eq!(
                build_accept_response(ACCEPT, None, None, &h(name, b"x")),
                Err(ResponseError::ReservedHeader(name.into()))
            );
            assert_eq!(
                build_reject_response(403, "", &h(name, b"x"), b""),
                Err(ResponseError::ReservedHeader(name.into()))
            );
        }
        for name in ["", "Bad Name", "X:Y", "Ünï"] {
            assert_eq!(
                build_accept_response(ACCEPT, None, None, &h(name, b"x")),
                Err(ResponseError::InvalidHeaderName(name.into()))
            );
        }
        for value in [&b"a\rb"[..], b"a\nb", b"a\0b"] {
            assert_eq!(
                build_reject_response(400, "", &h("X-A", value), b""),
                Err(ResponseError::InvalidHeaderValue("X-A".into()))
            );
        }
        // obs-text is allowed in values.
        assert!(build_accept_response(ACCEPT, None, None, &h("X-A", b"caf\xc3\xa9")).is_ok());
    }

    #[test]
    fn reject_response() {
        let r = build_reject_response(
            401,
            "",
            &[("WWW-Authenticate".into(), b"Bearer".to_vec())],
            b"no token",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 8\r\n\
             WWW-Authenticate: Bearer\r\n\r\nno token"
        );
        let r = build_reject_response(499, "Custom Reason", &[], b"").unwrap();
        assert!(r.starts_with(b"HTTP/1.1 499 Custom Reason\r\n"));
        for status in [0, 101, 200, 399, 600] {
            assert_eq!(
                build_reject_response(status, "", &[], b""),
                Err(ResponseError::InvalidStatus(status))
            );
        }
        assert_eq!(
            build_reject_response(400, "a\r\nb", &[], b""),
            Err(ResponseError::InvalidReason)
        );
        assert!(build_reject_response(400, "Non autoris\u{e9}\tok", &[], b"").is_ok());
    }

    #[test]
    fn reasons() {
        assert_eq!(standard_reason(404), "Not Found");
        assert_eq!(standard_reason(426), "Upgrade Required");
        assert_eq!(standard_reason(431), "Request Header Fields Too Large");
        assert_eq!(standard_reason(499), "Client Error");
        assert_eq!(standard_reason(599), "Server Error");
        assert_eq!(standard_reason(1000), "Unknown");
    }
}
