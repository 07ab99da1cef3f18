//! Configured limits: frame size, message size, and the connection limit.

mod support;

use std::time::{Duration, Instant};

use support::{Host, RawClient, op};

/// A close frame payload: code and reason.
fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

#[tokio::test]
async fn a_frame_over_max_frame_size_closes_with_1009_and_a_reason() {
    let host = Host::start("echo", &["--max-frame-size", "1KiB"]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::BINARY, &[7; 2048]).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1009, "reason: {reason:?}");
    assert!(!reason.is_empty(), "a 1009 close should say why");
    // Answering the close ends the connection.
    client
        .send_frame(true, op::CLOSE, &close_payload(1009, ""))
        .await;
    client.expect_eof().await;
}

#[tokio::test]
async fn a_frame_at_max_frame_size_is_accepted() {
    // The control for the test above: exactly the limit is fine.
    let host = Host::start("echo", &["--max-frame-size", "1KiB"]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::BINARY, &[7; 1024]).await;
    let echo = client.read_frame().await.expect("an echo");
    assert_eq!((echo.opcode, echo.payload.len()), (op::BINARY, 1024));
}

#[tokio::test]
async fn a_fragmented_message_over_max_message_size_closes_with_1009() {
    let host = Host::start("echo", &["--max-message-size", "1KiB"]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    // Five 300-byte fragments: each well under the limit, 1500 together.
    client.send_frame(false, op::TEXT, &[b'a'; 300]).await;
    for _ in 0..3 {
        client
            .send_frame(false, op::CONTINUATION, &[b'a'; 300])
            .await;
    }
    client
        .send_frame(true, op::CONTINUATION, &[b'a'; 300])
        .await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1009, "reason: {reason:?}");
    assert!(!reason.is_empty(), "a 1009 close should say why");
}

#[tokio::test]
async fn a_fragmented_message_within_max_message_size_is_echoed_whole() {
    let host = Host::start("echo", &["--max-message-size", "1KiB"]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(false, op::TEXT, &[b'a'; 300]).await;
    client
        .send_frame(false, op::CONTINUATION, &[b'b'; 300])
        .await;
    client
        .send_frame(true, op::CONTINUATION, &[b'c'; 300])
        .await;
    let mut echoed = Vec::new();
    loop {
        let frame = client.read_frame().await.expect("an echo");
        echoed.extend_from_slice(&frame.payload);
        if frame.fin {
            break;
        }
    }
    assert_eq!(echoed.len(), 900);
}

#[tokio::test]
async fn the_connection_over_max_connections_gets_503_then_a_slot_frees_up() {
    let host = Host::start("echo", &["--max-connections", "5"]);
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(RawClient::connect(host.addr, "/", &[]).await);
    }

    // The sixth is refused promptly, never left hanging.
    let (mut sixth, head) = tokio::time::timeout(
        Duration::from_secs(5),
        RawClient::handshake(host.addr, "/", &[]),
    )
    .await
    .expect("the sixth handshake was not answered within 5 s");
    assert!(
        head.starts_with("HTTP/1.1 503 "),
        "expected 503, got:\n{head}"
    );
    let retry_after = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("Retry-After")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("a 503 without Retry-After:\n{head}"));
    assert!(
        retry_after.parse::<u64>().is_ok(),
        "Retry-After is not a number of seconds: {retry_after:?}"
    );
    sixth.read_to_end().await;

    // The five still work.
    for client in &mut clients {
        client.send_frame(true, op::TEXT, b"alive").await;
        assert_eq!(
            client.read_frame().await.expect("an echo").payload,
            b"alive"
        );
    }

    // One leaves with a full closing handshake...
    let mut leaving = clients.remove(0);
    leaving
        .send_frame(true, op::CLOSE, &1000u16.to_be_bytes())
        .await;
    assert_eq!(leaving.expect_close().await.0, 1000);
    leaving.expect_eof().await;

    // ...and its slot is given to a newcomer. The slot is freed once the
    // server has finished the connection, a moment after the client saw
    // EOF, so a newcomer may still be told 503 briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut newcomer = loop {
        let (client, head) = RawClient::handshake(host.addr, "/", &[]).await;
        if head.starts_with("HTTP/1.1 101 ") {
            break client;
        }
        assert!(
            head.starts_with("HTTP/1.1 503 "),
            "expected 101 or 503, got:\n{head}"
        );
        assert!(
            Instant::now() < deadline,
            "no connection accepted 10 s after one of the five closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    newcomer.send_frame(true, op::TEXT, b"my turn").await;
    assert_eq!(
        newcomer.read_frame().await.expect("an echo").payload,
        b"my turn"
    );
}
