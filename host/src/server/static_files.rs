//! The sans-IO half of answering plain HTTP requests (GET or HEAD without a
//! WebSocket upgrade) with `--static` files and the `--devconsole` page:
//! recognising such a request ([`PlainRequest::parse`]), turning its target
//! into a path that cannot leave the served directory ([`safe_path`]), the
//! content type ([`content_type`]), the conditional-request decision
//! ([`Validators::not_modified`]) and the response heads ([`ResponseHead`]).
//! [`StaticError`] is the one place its refusals map to HTTP statuses.
//!
//! Nothing here touches the file system or a socket; the IO half (resolving
//! symlinks, opening and streaming files) lives in `server::plain`.
//!
//! One request per connection: every response says `Connection: close` and
//! the server closes after it, so there is no keep-alive or pipelining to
//! get wrong.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::protocol::handshake::{HandshakeLimits, origin_form, standard_reason};
use crate::protocol::header::{list_bytes, list_contains};

/// Where `--devconsole` serves its page.
pub const CONSOLE_PATH: &str = "/__wsbox/console";

/// The file a directory is answered with.
pub const INDEX_FILE: &str = "index.html";

/// The method of a plain request, as far as the file server cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the answer to a GET without its body.
    Head,
    /// Anything else (answered with 405).
    Other(String),
}

/// A complete, well-formed HTTP/1.x request head that does not ask for a
/// WebSocket upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainRequest {
    /// The request method.
    pub method: Method,
    /// The request target in origin-form (path and query; an absolute-form
    /// target is reduced to it, as for the handshake).
    pub target: String,
    /// The values of every `If-None-Match` header, in order.
    pub if_none_match: Vec<Vec<u8>>,
    /// The first `If-Modified-Since` header, if any.
    pub if_modified_since: Option<String>,
}

impl PlainRequest {
    /// Reads a plain request head from the front of `buf` (within the same
    /// limits as a handshake). `None` when the head is incomplete or
    /// malformed, asks for a WebSocket upgrade (`Upgrade: websocket`, which
    /// the handshake validates instead), or is an HTTP/1.1 request without
    /// exactly one `Host` (RFC 9112 §3.2; the handshake's 400 answers it).
    pub fn parse(buf: &[u8], limits: &HandshakeLimits) -> Option<PlainRequest> {
        let window = buf.get(..limits.max_header_bytes).unwrap_or(buf);
        let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut request = httparse::Request::new(&mut slots);
        match request.parse(window) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) | Err(_) => return None,
        }
        let method = match request.method? {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            other => Method::Other(other.to_owned()),
        };
        let target = origin_form(request.path?)?;
        let headers: &[httparse::Header<'_>] = request.headers;
        let values = |name: &'static str| {
            headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.trim_ascii())
        };
        if values("Upgrade").any(|v| list_contains(v, "websocket")) {
            return None;
        }
        if request.version == Some(1) && values("Host").count() != 1 {
            return None;
        }
        Some(PlainRequest {
            method,
            target,
            if_none_match: values("If-None-Match").map(<[u8]>::to_vec).collect(),
            if_modified_since: values("If-Modified-Since")
                .next()
                .map(|v| String::from_utf8_lossy(v).into_owned()),
        })
    }

    /// The path part of the target (before any `?`), still percent-encoded.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query part of the target (after the first `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// Whether the answer goes without its body (HEAD).
    pub fn head_only(&self) -> bool {
        self.method == Method::Head
    }
}

/// Why a plain request gets no file. [`StaticError::status`] and
/// [`StaticError::response`] are the one place these map to HTTP.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StaticError {
    /// A method other than GET or HEAD → 405 with `Allow: GET, HEAD`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A `%` not followed by two hex digits → 400.
    #[error("invalid percent-encoding in the path")]
    BadEscape,
    /// Nothing to serve there → 404.
    #[error("not found")]
    NotFound,
    /// The path tries to leave the directory, or cannot be served safely
    /// (`..`, an encoded slash, a backslash, NUL, a root or drive prefix, a
    /// symlink out of the directory) → 404 like a missing file; the server
    /// logs the reason.
    #[error("path refused: {0}")]
    Refused(&'static str),
}

impl StaticError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            StaticError::MethodNotAllowed => 405,
            StaticError::BadEscape => 400,
            StaticError::NotFound | StaticError::Refused(_) => 404,
        }
    }

    /// The complete response: a short plain-text reason (a refusal reads
    /// as "not found", so it tells a prober nothing), without the body
    /// when `head_only`.
    pub fn response(&self, head_only: bool, now: SystemTime) -> Vec<u8> {
        let mut head = ResponseHead::new(self.status(), now);
        if *self == StaticError::MethodNotAllowed {
            // "The origin server MUST generate an Allow header field in a
            // 405 (Method Not Allowed) response" (RFC 9110 §15.5.6).
            head = head.header("Allow", "GET, HEAD");
        }
        let body = match self {
            StaticError::Refused(_) => format!("{}\n", StaticError::NotFound),
            other => format!("{other}\n"),
        };
        text_response(head, &body, head_only)
    }
}

/// A request path that is safe to join to the served directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafePath {
    /// Plain names only (no `..`, `.`, root or prefix); empty for `/`.
    pub relative: PathBuf,
    /// The path ended in `/` (or was `/`): it names a directory, answered
    /// with its `index.html`.
    pub directory: bool,
}

/// Turns a request path (origin-form, query dropped, still
/// percent-encoded) into a relative path that cannot leave the directory.
///
/// Each `/`-separated segment is percent-decoded on its own, strictly (a
/// `%` without two hex digits is [`StaticError::BadEscape`]), so an encoded
/// slash can never make a new segment. Refused ([`StaticError::Refused`]):
/// `.` and `..` segments (plain or encoded), empty segments (`//etc/passwd`;
/// a single trailing `/` is fine), decoded `/`, `\` or NUL, segments that
/// are not UTF-8, and anything the platform reads as a root or a drive
/// prefix. Symlinks are the IO layer's to check.
pub fn safe_path(path: &str) -> Result<SafePath, StaticError> {
    let rest = path
        .strip_prefix('/')
        .ok_or(StaticError::Refused("not an absolute path"))?;
    let (rest, directory) = match rest.strip_suffix('/') {
        Some(rest) => (rest, true),
        None => (rest, rest.is_empty()),
    };
    let mut relative = PathBuf::new();
    if rest.is_empty() {
        return Ok(SafePath {
            relative,
            directory,
        });
    }
    for raw in rest.split('/') {
        if raw.is_empty() {
            return Err(StaticError::Refused("empty path segment"));
        }
        let decoded = percent_decode(raw)?;
        relative.push(checked_segment(&decoded)?);
    }
    Ok(SafePath {
        relative,
        directory,
    })
}

/// One decoded path segment, if it is a plain name.
fn checked_segment(segment: &[u8]) -> Result<&str, StaticError> {
    if segment.contains(&0) {
        return Err(StaticError::Refused("NUL in path"));
    }
    if segment.contains(&b'/') {
        return Err(StaticError::Refused("encoded slash in path"));
    }
    if segment.contains(&b'\\') {
        return Err(StaticError::Refused("backslash in path"));
    }
    let segment =
        std::str::from_utf8(segment).map_err(|_| StaticError::Refused("path is not UTF-8"))?;
    if segment == ".." || segment == "." {
        return Err(StaticError::Refused("dot segment in path"));
    }
    // What is left must be one plain name on this platform (no `C:`
    // prefix, no root).
    let mut components = Path::new(segment).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(segment),
        _ => Err(StaticError::Refused("not a plain file name")),
    }
}

/// Strict percent-decoding (RFC 3986 §2.1): `%` must be followed by two
/// hex digits.
fn percent_decode(raw: &str) -> Result<Vec<u8>, StaticError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte == b'%' {
            let digit = |i: usize| {
                bytes
                    .get(i)
                    .and_then(|&b| char::from(b).to_digit(16))
                    .and_then(|d| u8::try_from(d).ok())
            };
            let (Some(high), Some(low)) = (digit(at + 1), digit(at + 2)) else {
                return Err(StaticError::BadEscape);
            };
            out.push(high << 4 | low);
            at += 3;
        } else {
            out.push(byte);
            at += 1;
        }
    }
    Ok(out)
}

/// The `Content-Type` for a file, from its extension (ASCII
/// case-insensitive); `application/octet-stream` for unknown ones. Text
/// types say `charset=utf-8`.
pub fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// A file's validators: the `ETag` (size and modification time, to the
/// nanosecond) and `Last-Modified` (whole seconds, as HTTP dates are).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// A strong entity tag, quoted: `"<size hex>-<mtime ns hex>"`.
    pub etag: String,
    /// The modification time truncated to seconds; `None` when the file
    /// system has none (or it is before 1970).
    pub last_modified: Option<SystemTime>,
}

impl Validators {
    /// The validators of a file of `len` bytes modified at `modified`.
    pub fn new(len: u64, modified: Option<SystemTime>) -> Validators {
        let since_epoch = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
        let etag = match since_epoch {
            Some(age) => format!("\"{len:x}-{:x}\"", age.as_nanos()),
            None => format!("\"{len:x}\""),
        };
        let last_modified = since_epoch.map(|age| UNIX_EPOCH + Duration::from_secs(age.as_secs()));
        Validators {
            etag,
            last_modified,
        }
    }

    /// Whether `request` already has this version: answer 304 instead of
    /// the file. RFC 9110 §13.2.2: `If-None-Match` first (weak comparison,
    /// `*` matches any file); only without it `If-Modified-Since` (the
    /// file not modified after the date; an invalid date is ignored); both
    /// only for GET and HEAD.
    pub fn not_modified(&self, request: &PlainRequest) -> bool {
        if !matches!(request.method, Method::Get | Method::Head) {
            return false;
        }
        if !request.if_none_match.is_empty() {
            // "the origin server MUST use the weak comparison function"
            // (RFC 9110 §13.1.2).
            return request
                .if_none_match
                .iter()
                .flat_map(|value| list_bytes(value))
                .any(|(_, tag)| {
                    tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == self.etag.as_bytes()
                });
        }
        match (&request.if_modified_since, self.last_modified) {
            (Some(date), Some(modified)) => {
                httpdate::parse_http_date(date).is_ok_and(|since| modified <= since)
            }
            _ => false,
        }
    }
}

/// A response head: status line and header fields. Every head says
/// `Connection: close` (one request per connection) and carries a `Date`.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    status: u16,
    headers: Vec<(&'static str, String)>,
}

impl ResponseHead {
    /// A head with `status` and a `Date` of `now`.
    pub fn new(status: u16, now: SystemTime) -> ResponseHead {
        ResponseHead {
            status,
            headers: vec![("Date", httpdate::fmt_http_date(now))],
        }
    }

    /// Adds a header field. Control characters in `value` are dropped, so
    /// no value can break the head's framing.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> ResponseHead {
        let mut value = value.into();
        value.retain(|c| !c.is_control());
        self.headers.push((name, value));
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The head as bytes, ending with the empty line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            self.status,
            standard_reason(self.status)
        );
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// The head for a file: 200 with its type, length and validators, or (when
/// `not_modified`) 304 with the validators only. `Cache-Control: no-cache`
/// makes browsers revalidate every time, so an edited file shows at once.
pub fn file_head(
    content_type: &str,
    len: u64,
    validators: &Validators,
    not_modified: bool,
    now: SystemTime,
) -> ResponseHead {
    let mut head = if not_modified {
        ResponseHead::new(304, now)
    } else {
        ResponseHead::new(200, now)
            .header("Content-Type", content_type)
            .header("Content-Length", len.to_string())
            .header("X-Content-Type-Options", "nosniff")
    };
    head = head
        .header("ETag", validators.etag.clone())
        .header("Cache-Control", "no-cache");
    if let Some(modified) = validators.last_modified {
        head = head.header("Last-Modified", httpdate::fmt_http_date(modified));
    }
    head
}

/// The 301 sending a directory's path without its trailing slash to the
/// path with it (so the page's relative links resolve inside it), keeping
/// the query.
pub fn directory_redirect(request: &PlainRequest, now: SystemTime) -> Vec<u8> {
    let location = match request.query() {
        Some(query) => format!("{}/?{query}", request.path()),
        None => format!("{}/", request.path()),
    };
    let body = format!("moved to {location}\n");
    let head = ResponseHead::new(301, now).header("Location", location);
    text_response(head, &body, request.head_only())
}

/// A complete response with a plain-text body (left out when `head_only`;
/// `Content-Length` says what a GET would get).
fn text_response(head: ResponseHead, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = head
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", body.len().to_string())
        .to_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Option<PlainRequest> {
        PlainRequest::parse(raw.as_bytes(), &HandshakeLimits::default())
    }

    fn get(target: &str, headers: &[&str]) -> PlainRequest {
        let mut raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n");
        for header in headers {
            raw.push_str(header);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        parse(&raw).unwrap()
    }

    #[test]
    fn a_plain_get_is_a_plain_request() {
        let request = get(
            "/a/b.html?x=1",
            &["If-None-Match: \"1\"", "If-None-Match: \"2\""],
        );
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.path(), "/a/b.html");
        assert_eq!(request.query(), Some("x=1"));
        assert_eq!(
            request.if_none_match,
            vec![b"\"1\"".to_vec(), b"\"2\"".to_vec()]
        );
        assert!(!request.head_only());
    }

    #[test]
    fn upgrades_partial_heads_and_missing_hosts_are_not_plain_requests() {
        assert!(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\r\n").is_none());
        assert!(parse("GET / HTTP/1.1\r\nHost: h\r\n").is_none());
        assert!(parse("GET / HTTP/1.1\r\n\r\n").is_none());
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_none());
        assert!(parse("GET * HTTP/1.1\r\nHost: h\r\n\r\n").is_none());
        assert!(parse("GARBAGE\r\n\r\n").is_none());
        // HTTP/1.0 needs no Host; another upgrade (h2c) may be ignored.
        assert!(parse("GET / HTTP/1.0\r\n\r\n").is_some());
        assert!(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n").is_some());
    }

    #[test]
    fn methods_and_absolute_form() {
        let post = parse("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(post.method, Method::Other("POST".to_owned()));
        let head = parse("HEAD http://h/x?q HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(head.head_only());
        assert_eq!(head.target, "/x?q");
    }

    fn path(relative: &str, directory: bool) -> Result<SafePath, StaticError> {
        Ok(SafePath {
            relative: PathBuf::from(relative),
            directory,
        })
    }

    #[test]
    fn plain_paths_map_into_the_directory() {
        assert_eq!(safe_path("/"), path("", true));
        assert_eq!(safe_path("/index.html"), path("index.html", false));
        assert_eq!(safe_path("/a/b/"), path("a/b", true));
        assert_eq!(safe_path("/a/b"), path("a/b", false));
        assert_eq!(
            safe_path("/hello%20world.txt"),
            path("hello world.txt", false)
        );
        assert_eq!(safe_path("/caf%C3%A9"), path("café", false));
        assert_eq!(safe_path("/a..b/.hidden"), path("a..b/.hidden", false));
        assert_eq!(safe_path("/a+b"), path("a+b", false));
    }

    #[test]
    fn invalid_escapes_are_bad_requests() {
        for bad in ["/%", "/%2", "/%zz", "/a%g0", "/%%41"] {
            assert_eq!(safe_path(bad), Err(StaticError::BadEscape), "{bad}");
        }
        assert_eq!(StaticError::BadEscape.status(), 400);
    }

    #[test]
    fn every_way_out_is_refused() {
        for attempt in [
            "/../secret",
            "/a/../../secret",
            "/%2e%2e/secret",
            "/%2E%2E/secret",
            "/%2E./secret",
            "/.%2e/secret",
            "/%2E%2E%2Fsecret",
            "/..%2fsecret",
            "/..%2Fsecret",
            "/a/%5c..%5csecret",
            "/a\\..\\secret",
            "/%5c",
            "//etc/passwd",
            "/a//b",
            "/%2fetc/passwd",
            "/%00",
            "/a%00.html",
            "/./index.html",
            "/%2e",
            "/%ff%fe",
            "/..",
            "/../",
        ] {
            match safe_path(attempt) {
                Err(StaticError::Refused(_)) => {}
                other => panic!("{attempt}: {other:?}"),
            }
        }
        assert_eq!(StaticError::Refused("x").status(), 404);
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (name, expected) in [
            ("a.html", "text/html; charset=utf-8"),
            ("A.HTM", "text/html; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.mjs", "text/javascript; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.js.map", "application/json"),
            ("a.svg", "image/svg+xml"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("favicon.ico", "image/x-icon"),
            ("app.wasm", "application/wasm"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("f.woff2", "font/woff2"),
            ("a.bin", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), expected, "{name}");
        }
    }

    fn validators() -> Validators {
        Validators::new(
            1234,
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)),
        )
    }

    #[test]
    fn validators_come_from_size_and_time() {
        let v = validators();
        assert_eq!(
            v.etag,
            format!("\"4d2-{:x}\"", 1_700_000_000_250_000_000u128)
        );
        assert_eq!(
            v.last_modified,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_ne!(
            Validators::new(
                1235,
                Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_250))
            ),
            v
        );
        assert_eq!(Validators::new(16, None).etag, "\"10\"");
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        let v = validators();
        let tag = v.etag.clone();
        assert!(v.not_modified(&get("/", &[&format!("If-None-Match: {tag}")])));
        assert!(v.not_modified(&get("/", &[&format!("If-None-Match: W/{tag}")])));
        assert!(v.not_modified(&get("/", &[&format!("If-None-Match: \"x\", {tag}")])));
        assert!(v.not_modified(&get(
            "/",
            &["If-None-Match: \"x\"", &format!("If-None-Match: {tag}")]
        )));
        assert!(v.not_modified(&get("/", &["If-None-Match: *"])));
        assert!(!v.not_modified(&get("/", &["If-None-Match: \"other\""])));
        assert!(!v.not_modified(&get("/", &[])));
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let v = validators();
        let same = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let later = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_700_000_001));
        let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_699_999_999));
        assert!(v.not_modified(&get("/", &[&format!("If-Modified-Since: {same}")])));
        assert!(v.not_modified(&get("/", &[&format!("If-Modified-Since: {later}")])));
        assert!(!v.not_modified(&get("/", &[&format!("If-Modified-Since: {earlier}")])));
        assert!(!v.not_modified(&get("/", &["If-Modified-Since: yesterday"])));
        // The obsolete formats are accepted too (RFC 9110 §5.6.7).
        assert!(v.not_modified(&get(
            "/",
            &["If-Modified-Since: Tuesday, 14-Nov-23 22:13:20 GMT"]
        )));
        assert!(v.not_modified(&get("/", &["If-Modified-Since: Tue Nov 14 22:13:20 2023"])));
        // No Last-Modified, no 304 by date.
        let undated = Validators::new(1234, None);
        assert!(!undated.not_modified(&get("/", &[&format!("If-Modified-Since: {later}")])));
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let v = validators();
        let later = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let request = get(
            "/",
            &[
                "If-None-Match: \"other\"",
                &format!("If-Modified-Since: {later}"),
            ],
        );
        assert!(!v.not_modified(&request));
    }

    #[test]
    fn only_get_and_head_are_conditional() {
        let v = validators();
        let raw = format!(
            "POST / HTTP/1.1\r\nHost: h\r\nIf-None-Match: {}\r\n\r\n",
            v.etag
        );
        assert!(!v.not_modified(&parse(&raw).unwrap()));
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    const NOW: SystemTime = UNIX_EPOCH;

    #[test]
    fn file_heads_carry_type_length_and_validators() {
        let v = validators();
        let ok = text(file_head("text/css; charset=utf-8", 1234, &v, false, NOW).to_bytes());
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        for line in [
            "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
            "Content-Type: text/css; charset=utf-8\r\n",
            "Content-Length: 1234\r\n",
            &format!("ETag: {}\r\n", v.etag),
            "Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n",
            "Connection: close\r\n",
        ] {
            assert!(ok.contains(line), "{line:?} missing in {ok}");
        }
        assert!(ok.ends_with("\r\n\r\n"));
        let not_modified = text(file_head("text/css", 1234, &v, true, NOW).to_bytes());
        assert!(not_modified.starts_with("HTTP/1.1 304 Not Modified\r\n"));
        assert!(not_modified.contains(&format!("ETag: {}\r\n", v.etag)));
        assert!(!not_modified.contains("Content-Length"), "{not_modified}");
    }

    #[test]
    fn error_answers() {
        let not_allowed = text(StaticError::MethodNotAllowed.response(false, NOW));
        assert!(not_allowed.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(not_allowed.contains("Allow: GET, HEAD\r\n"));
        assert!(not_allowed.ends_with("\r\n\r\nmethod not allowed\n"));
        let refused = text(StaticError::Refused("dot segment").response(false, NOW));
        assert!(refused.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(refused.ends_with("\r\n\r\nnot found\n"), "{refused}");
        let head = text(StaticError::NotFound.response(true, NOW));
        assert!(head.contains("Content-Length: 10\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn a_directory_without_its_slash_is_redirected_keeping_the_query() {
        let moved = text(directory_redirect(&get("/docs?x=1", &[]), NOW));
        assert!(moved.starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
        assert!(moved.contains("Location: /docs/?x=1\r\n"), "{moved}");
        let head = parse("HEAD /docs HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(text(directory_redirect(&head, NOW)).ends_with("\r\n\r\n"));
    }

    #[test]
    fn header_values_cannot_break_the_head() {
        let head = text(
            ResponseHead::new(200, NOW)
                .header("X", "a\r\nB: c")
                .to_bytes(),
        );
        assert!(head.contains("X: aB: c\r\n"), "{head}");
    }
}
