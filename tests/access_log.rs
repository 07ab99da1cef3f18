//! The access log: one info line per finished connection, with its path,
//! subprotocol, guest version, duration, traffic each way and close, in
//! the human and the JSON log formats.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use support::{Host, RawClient, op};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn a_guest_close_is_logged_with_the_subprotocol_and_counts() {
    let host = Host::start("auth", &[]);
    let mut request = host
        .url("/room?token=secret")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat.v1".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("welcome"));
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
    ws.send(Message::text("bye")).await.unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Close(_)))));
    assert!(ws.next().await.is_none());

    let line = host.wait_for_log(&["connection finished"]);
    assert_has(
        &line,
        &[
            "wsbox::access",
            "path=\"/room\"",
            "subprotocol=\"chat.v1\"",
            "status=101",
            "messages_in=2",
            "messages_out=2",
            "close_code=4000",
            "closed_by=\"guest\"",
            "duration_ms=",
            "version=",
        ],
    );
    // The query (here a token) stays out of the log.
    assert!(!line.contains("secret"), "{line}");
}

#[tokio::test]
async fn json_lines_carry_exact_frame_bytes_and_the_client_close() {
    let host = Host::start("echo", &["--log-format", "json"]);
    let mut client = RawClient::connect(host.addr, "/echo", &[]).await;
    client.send_frame(true, op::TEXT, b"hello").await;
    client.send_frame(true, op::BINARY, b"abc").await;
    assert_eq!(client.read_frame().await.unwrap().payload, b"hello");
    assert_eq!(client.read_frame().await.unwrap().payload, b"abc");
    client
        .send_frame(true, op::CLOSE, &1000u16.to_be_bytes())
        .await;
    assert_eq!(client.expect_close().await.0, 1000);
    client.expect_eof().await;

    let line = host.wait_for_log(&["connection finished"]);
    let entry: Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(entry["target"], "wsbox::access");
    assert_eq!(entry["level"], "INFO");
    let fields = &entry["fields"];
    assert_eq!(fields["path"], "/echo");
    assert_eq!(fields["status"], 101);
    // Masked client frames: 2 + 4 + payload each (5, 3, and the close's 2).
    assert_eq!(fields["messages_in"], 2);
    assert_eq!(fields["bytes_in"], 11 + 9 + 8);
    // Server frames: 2 + payload (the echoes and the close's answer).
    assert_eq!(fields["messages_out"], 2);
    assert_eq!(fields["bytes_out"], 7 + 5 + 4);
    assert_eq!(fields["close_code"], 1000);
    assert_eq!(fields["closed_by"], "client");
    assert!(fields["duration_ms"].is_u64(), "{line}");
    assert!(fields["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(fields.get("subprotocol").is_none(), "{line}");
}

#[tokio::test]
async fn a_rejection_is_logged_with_its_status_and_no_close() {
    let host = Host::start("auth", &[]);
    let (_client, head) = RawClient::handshake(host.addr, "/", &[]).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let line = host.wait_for_log(&["connection finished"]);
    for field in [
        "status=401",
        "messages_in=0",
        "bytes_out=0",
        "closed_by=\"none\"",
    ] {
        assert!(line.contains(field), "no {field} in {line}");
    }
    assert!(!line.contains("close_code"), "{line}");
}

/// Check that a human log line has every one of `fields`.
fn assert_has(line: &str, fields: &[&str]) {
    for field in fields {
        assert!(line.contains(field), "no {field} in {line}");
    }
}
