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

#[tokio::test]
async fn connections_are_served_by_every_connection_thread() {
    let host = Host::start("echo", &["--threads", "3"]);
    // The threads start just after the address is logged (the listening
    // sockets queue connections meanwhile).
    let connection_threads = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{}/task", host.pid()))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|comm| comm.trim().to_owned())
            .filter(|comm| comm.starts_with("wsbox-conn-"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut threads = connection_threads();
    while threads.len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        threads = connection_threads();
    }
    assert_eq!(threads.len(), 3, "threads: {threads:?}");
    // Enough connections that the kernel hands some to each listener; all
    // of them echo, wherever they landed.
    let mut clients = Vec::new();
    for _ in 0..30 {
        clients.push(RawClient::connect(host.addr, "/", &[]).await);
    }
    for (index, client) in clients.iter_mut().enumerate() {
        let payload = format!("message {index}");
        client.send_frame(true, op::TEXT, payload.as_bytes()).await;
        let echo = client.read_frame().await.expect("an echo");
        assert_eq!(echo.payload, payload.as_bytes());
    }
}

#[test]
fn a_second_host_on_the_same_port_is_refused() {
    // The listeners share their port through SO_REUSEPORT, which must not
    // let another server quietly take half the connections.
    let first = Host::start("echo", &["--threads", "2"]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("serve")
        .arg(support::guest("echo"))
        .args(["--listen", &first.addr.to_string()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("listening on {}", first.addr)) && stderr.contains("in use"),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn decommit_batches_larger_than_the_pool_never_refuse_a_connection() {
    // 2 connections + 16 spare slots, decommitted 64 at a time: past the
    // 18th connection every free slot waits for a batch that cannot fill,
    // so the pool must flush it to serve the next one.
    let host = Host::start(
        "echo",
        &["--max-connections", "2", "--decommit-batch", "64"],
    );
    for round in 0..40u8 {
        let mut client = RawClient::connect(host.addr, "/", &[]).await;
        client.send_frame(true, op::BINARY, &[round; 8]).await;
        let echo = client.read_frame().await.expect("an echo");
        assert_eq!(echo.payload, [round; 8], "connection {round}");
        client
            .send_frame(true, op::CLOSE, &close_payload(1000, ""))
            .await;
        let (code, _) = client.expect_close().await;
        assert_eq!(code, 1000);
        client.expect_eof().await;
    }
}
