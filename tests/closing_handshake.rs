//! Closing handshakes in both directions, and pings answered by the host.

mod support;

use futures_util::StreamExt;
use support::twins::{auth, echo};
use support::{Host, RawClient, op};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn a_guest_close_with_4000_reaches_the_client() {
    auth::bye_closes_with_4000(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn a_client_close_reaches_the_guest_as_a_close_request() {
    let host = Host::start("misbehave", &[]);
    let (mut ws, _) = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .unwrap();
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4321),
        reason: "client leaving".into(),
    }))
    .await
    .unwrap();
    // The host echoes the code in its close.
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 4321),
        other => panic!("expected the echoed close, got {other:?}"),
    }
    host.wait_for_log(&["close-request", "4321", "client leaving"]);
}

#[tokio::test]
async fn the_server_closes_tcp_after_the_closing_handshake() {
    echo::the_clients_close_is_answered_then_tcp_closed(&Host::start("echo", &[])).await;
}

#[tokio::test]
async fn a_close_without_code_is_answered_without_code() {
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::CLOSE, &[]).await;
    let frame = client.read_frame().await.expect("a close");
    assert_eq!(frame.opcode, op::CLOSE);
    assert!(frame.payload.is_empty());
}

#[tokio::test]
async fn pings_are_answered_with_the_same_payload() {
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::PING, b"are you there?").await;
    let pong = client.read_frame().await.expect("a pong");
    assert_eq!(pong.opcode, op::PONG);
    assert_eq!(pong.payload, b"are you there?");
}

#[tokio::test]
async fn a_guest_that_asked_for_pongs_receives_them() {
    let host = Host::start("misbehave", &[]);
    let mut client = RawClient::connect(host.addr, "/pongs", &[]).await;
    let ping = client.read_frame().await.expect("the guest's ping");
    assert_eq!(
        (ping.opcode, ping.payload.as_slice()),
        (op::PING, &b"hello"[..])
    );
    client.send_frame(true, op::PONG, b"hello").await;
    let reply = client.read_frame().await.expect("the guest's report");
    assert_eq!(reply.opcode, op::TEXT);
    assert_eq!(reply.payload, b"pong:hello");
}

#[tokio::test]
async fn a_guest_that_closes_first_waits_for_the_clients_close() {
    let host = Host::start("misbehave", &[]);
    let mut client = RawClient::connect(host.addr, "/close-first", &[]).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), (1000, "done"));
    client.send_frame(true, op::CLOSE, &[0x03, 0xe8]).await;
    client.expect_eof().await;
}
