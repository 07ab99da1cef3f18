//! The opening handshake's rules on the wire (RFC 6455 §4.2 over RFC 7230):
//! every malformed or unsupported request gets the right status with a
//! one-line reason, and nothing reaches the guest.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{Host, RawClient, op};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY_LINE: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

/// The header lines of a valid handshake, in order.
fn valid_headers() -> Vec<String> {
    [
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        KEY_LINE,
        "Sec-WebSocket-Version: 13",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The valid header lines with header `name` dropped, or replaced by the
/// full line `line`.
fn headers_with(name: &str, line: Option<&str>) -> Vec<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut out: Vec<String> = valid_headers()
        .into_iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with(&prefix))
        .collect();
    assert_eq!(out.len(), valid_headers().len() - 1, "no header {name}");
    if let Some(line) = line {
        out.push(line.to_owned());
    }
    out
}

/// A request from its request line and header lines.
fn request(request_line: &str, headers: &[String]) -> Vec<u8> {
    let mut text = format!("{request_line}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// What the server answered.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    /// The value of the first response header `name`.
    fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"))
}

/// Send `bytes` as the whole request and read a refusal: head, then the body
/// up to EOF (the server closes after refusing).
async fn refusal(addr: SocketAddr, bytes: &[u8]) -> Answer {
    let (mut client, head) = RawClient::send_request(addr, bytes).await;
    let status = status_of(&head);
    assert_ne!(status, 101, "expected a refusal, got:\n{head}");
    let body = client.read_to_end().await;
    let body = String::from_utf8(body).expect("the reason is text");
    if let Some(length) = header(&head, "Content-Length") {
        assert_eq!(
            length.parse::<usize>().unwrap(),
            body.len(),
            "Content-Length disagrees with the body:\n{head}{body}"
        );
    }
    Answer { status, head, body }
}

/// The refusal has `status` and a short one-line reason as its body.
fn assert_refused(answer: &Answer, status: u16) {
    assert_eq!(
        answer.status, status,
        "expected {status}, got:\n{}{}",
        answer.head, answer.body
    );
    assert!(
        answer.head.starts_with(&format!("HTTP/1.1 {status} ")),
        "{}",
        answer.head
    );
    let reason = answer.body.trim_end_matches('\n');
    assert!(
        !reason.trim().is_empty(),
        "no reason given:\n{}",
        answer.head
    );
    assert!(
        answer.body.ends_with('\n') && !reason.contains('\n') && !reason.contains('\r'),
        "the reason is not one line: {:?}",
        answer.body
    );
    assert!(reason.len() < 200, "the reason is not short: {reason:?}");
}

async fn assert_accepted(addr: SocketAddr, bytes: &[u8]) -> RawClient {
    let (client, head) = RawClient::send_request(addr, bytes).await;
    assert!(
        head.starts_with("HTTP/1.1 101 "),
        "expected 101, got:\n{head}"
    );
    client
}

#[tokio::test]
async fn a_bad_request_line_gets_400() {
    let host = Host::start("echo", &[]);
    for line in [
        "this is not http",
        "GET /",
        "GET / HTTP/1.1 trailing",
        "GET\u{1} / HTTP/1.1",
    ] {
        let answer = refusal(host.addr, &request(line, &valid_headers())).await;
        assert_refused(&answer, 400);
    }
}

#[tokio::test]
async fn a_missing_key_gets_400() {
    let host = Host::start("echo", &[]);
    let answer = refusal(
        host.addr,
        &request("GET / HTTP/1.1", &headers_with("Sec-WebSocket-Key", None)),
    )
    .await;
    assert_refused(&answer, 400);
}

#[tokio::test]
async fn a_key_that_is_not_16_bytes_of_base64_gets_400() {
    let host = Host::start("echo", &[]);
    for key in [
        "Sec-WebSocket-Key: not base64!",
        "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P", // 15 bytes
        "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=", // 17 bytes
        "Sec-WebSocket-Key: ",
    ] {
        let answer = refusal(
            host.addr,
            &request(
                "GET / HTTP/1.1",
                &headers_with("Sec-WebSocket-Key", Some(key)),
            ),
        )
        .await;
        assert_refused(&answer, 400);
    }
}

#[tokio::test]
async fn a_missing_upgrade_header_gets_400() {
    let host = Host::start("echo", &[]);
    for replacement in [None, Some("Upgrade: h2c")] {
        let answer = refusal(
            host.addr,
            &request("GET / HTTP/1.1", &headers_with("Upgrade", replacement)),
        )
        .await;
        assert_refused(&answer, 400);
    }
}

#[tokio::test]
async fn a_connection_header_without_the_upgrade_token_gets_400() {
    let host = Host::start("echo", &[]);
    for replacement in [None, Some("Connection: keep-alive")] {
        let answer = refusal(
            host.addr,
            &request("GET / HTTP/1.1", &headers_with("Connection", replacement)),
        )
        .await;
        assert_refused(&answer, 400);
    }
}

#[tokio::test]
async fn a_connection_header_listing_upgrade_among_others_is_accepted() {
    let host = Host::start("echo", &[]);
    let mut client = assert_accepted(
        host.addr,
        &request(
            "GET / HTTP/1.1",
            &headers_with("Connection", Some("Connection: keep-alive, Upgrade")),
        ),
    )
    .await;
    client.send_frame(true, op::TEXT, b"still works").await;
    let echo = client.read_frame().await.expect("an echo");
    assert_eq!(
        (echo.opcode, echo.payload.as_slice()),
        (op::TEXT, &b"still works"[..])
    );
}

#[tokio::test]
async fn http_1_0_gets_400() {
    let host = Host::start("echo", &[]);
    let answer = refusal(host.addr, &request("GET / HTTP/1.0", &valid_headers())).await;
    assert_refused(&answer, 400);
}

#[tokio::test]
async fn a_missing_host_header_gets_400() {
    let host = Host::start("echo", &[]);
    let answer = refusal(
        host.addr,
        &request("GET / HTTP/1.1", &headers_with("Host", None)),
    )
    .await;
    assert_refused(&answer, 400);
}

#[tokio::test]
async fn an_absolute_form_target_reaches_the_guest_as_its_path() {
    // misbehave closes at once with 1000 "done" on the path /close-first
    // (and echoes on every other path): the close shows the guest saw
    // `/close-first`, not `http://example.com/close-first`.
    let host = Host::start("misbehave", &[]);
    let mut client = assert_accepted(
        host.addr,
        &request(
            "GET http://example.com/close-first?q=1 HTTP/1.1",
            &valid_headers(),
        ),
    )
    .await;
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), (1000, "done"));
}

#[tokio::test]
async fn an_absolute_form_target_keeps_its_query() {
    // auth accepts (and greets) only with `token=secret` in the query.
    let host = Host::start("auth", &[]);
    let mut client = assert_accepted(
        host.addr,
        &request(
            "GET http://example.com/room?token=secret HTTP/1.1",
            &valid_headers(),
        ),
    )
    .await;
    let greeting = client.read_frame().await.expect("a greeting");
    assert_eq!(
        (greeting.opcode, greeting.payload.as_slice()),
        (op::TEXT, &b"welcome"[..])
    );
}

#[tokio::test]
async fn post_gets_405_with_allow_get() {
    let host = Host::start("echo", &[]);
    let answer = refusal(host.addr, &request("POST / HTTP/1.1", &valid_headers())).await;
    assert_refused(&answer, 405);
    assert_eq!(answer.header("Allow"), Some("GET"), "{}", answer.head);
}

#[tokio::test]
async fn version_8_gets_426_naming_version_13() {
    let host = Host::start("echo", &[]);
    let answer = refusal(
        host.addr,
        &request(
            "GET / HTTP/1.1",
            &headers_with("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
        ),
    )
    .await;
    assert_refused(&answer, 426);
    assert_eq!(
        answer.header("Sec-WebSocket-Version"),
        Some("13"),
        "{}",
        answer.head
    );
}

#[tokio::test]
async fn a_header_section_over_max_header_bytes_gets_431() {
    let host = Host::start("echo", &["--max-header-bytes", "1KiB"]);
    let mut headers = valid_headers();
    headers.push(format!("X-Padding: {}", "a".repeat(2048)));
    let answer = refusal(host.addr, &request("GET / HTTP/1.1", &headers)).await;
    assert_refused(&answer, 431);
}

#[tokio::test]
async fn a_header_section_under_max_header_bytes_is_accepted() {
    // The control for the test above: the same limit lets a normal request in.
    let host = Host::start("echo", &["--max-header-bytes", "1KiB"]);
    let mut headers = valid_headers();
    headers.push(format!("X-Padding: {}", "a".repeat(600)));
    assert_accepted(host.addr, &request("GET / HTTP/1.1", &headers)).await;
}

#[tokio::test]
async fn more_than_64_headers_get_431() {
    let host = Host::start("echo", &[]);
    let mut headers = valid_headers();
    headers.extend((0..65).map(|i| format!("X-H{i}: {i}")));
    let answer = refusal(host.addr, &request("GET / HTTP/1.1", &headers)).await;
    assert_refused(&answer, 431);
}

#[tokio::test]
async fn a_handshake_sent_too_slowly_is_dropped_at_the_handshake_timeout() {
    let host = Host::start("echo", &["--handshake-timeout", "1s"]);
    let started = Instant::now();
    let stream = TcpStream::connect(host.addr).await.expect("connecting");
    let (mut reader, mut writer) = stream.into_split();
    // Slowloris: a valid request, one byte every 200 ms (it would take
    // half a minute to complete).
    let trickle = tokio::spawn(async move {
        let bytes = request("GET / HTTP/1.1", &valid_headers());
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(
        closed.is_ok(),
        "the server kept a trickling handshake open past 5 s (timeout 1 s)"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed after {elapsed:?}, before the 1 s handshake timeout"
    );
    assert!(
        !String::from_utf8_lossy(&received).starts_with("HTTP/1.1 101"),
        "an incomplete handshake was accepted"
    );
}

#[tokio::test]
async fn a_disallowed_origin_gets_403() {
    let host = Host::start("echo", &["--allowed-origins", "https://good.example"]);
    let mut headers = valid_headers();
    headers.push("Origin: https://evil.example".to_owned());
    let answer = refusal(host.addr, &request("GET / HTTP/1.1", &headers)).await;
    assert_refused(&answer, 403);
}

#[tokio::test]
async fn a_missing_origin_gets_403_when_origins_are_restricted() {
    let host = Host::start("echo", &["--allowed-origins", "https://good.example"]);
    let answer = refusal(host.addr, &request("GET / HTTP/1.1", &valid_headers())).await;
    assert_refused(&answer, 403);
}

#[tokio::test]
async fn an_allowed_origin_is_accepted() {
    let host = Host::start("echo", &["--allowed-origins", "https://good.example"]);
    let mut headers = valid_headers();
    headers.push("Origin: https://good.example".to_owned());
    let mut client = assert_accepted(host.addr, &request("GET / HTTP/1.1", &headers)).await;
    client.send_frame(true, op::TEXT, b"hi").await;
    let echo = client.read_frame().await.expect("an echo");
    assert_eq!(echo.payload, b"hi");
}
