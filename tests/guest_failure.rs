//! A guest that fails harms only its own connection.

mod support;

use futures_util::{SinkExt, StreamExt};
use support::{Host, RawClient, op};
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client on the echoing path `/`, beside the failing guests.
async fn neighbour(host: &Host) -> Client {
    let (client, _) = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .unwrap();
    client
}

/// Send `text` and expect it back.
async fn echo_once(client: &mut Client, text: String) {
    client.send(Message::text(text.clone())).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), Message::text(text));
}

#[tokio::test]
async fn a_trapping_guest_closes_its_connection_with_1011_and_others_keep_echoing() {
    let host = Host::start("misbehave", &[]);
    let mut neighbour = neighbour(&host).await;
    echo_once(&mut neighbour, "before".into()).await;

    let mut victim = RawClient::connect(host.addr, "/panic", &[]).await;
    victim.send_frame(true, op::TEXT, b"boom").await;
    let (code, _) = victim.expect_close().await;
    assert_eq!(code, 1011);
    host.wait_for_log(&["guest panicked on purpose"]);

    for i in 0..10 {
        echo_once(&mut neighbour, format!("after {i}")).await;
    }
}

#[tokio::test]
async fn a_text_that_is_not_utf8_from_the_guest_fails_it_with_1011_and_sends_nothing() {
    let host = Host::start("misbehave", &[]);
    // `send`, then `send-all` with a valid text in front: the batch is
    // checked before any of it is queued.
    for path in ["/bad-utf8", "/bad-utf8-batch"] {
        let mut client = RawClient::connect(host.addr, path, &[]).await;
        client.send_frame(true, op::TEXT, b"go").await;
        let first = client.read_frame().await.expect("a close frame");
        assert_eq!(first.opcode, op::CLOSE, "{path}: nothing before the close");
        assert_eq!(
            first.close_code().map(|(code, _)| code),
            Some(1011),
            "{path}"
        );
    }
    host.wait_for_log(&["invalid utf-8"]);
    echo_once(&mut neighbour(&host).await, "still here".into()).await;
}

#[tokio::test]
async fn a_guest_that_returns_without_closing_closes_with_1000() {
    let host = Host::start("misbehave", &[]);
    let mut client = RawClient::connect(host.addr, "/return", &[]).await;
    client.send_frame(true, op::TEXT, b"anything").await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, 1000);
}

#[tokio::test]
async fn a_guest_that_panics_before_answering_gets_the_client_a_500() {
    let host = Host::start("misbehave", &[]);
    let (_client, head) = RawClient::handshake(host.addr, "/panic-before-accept", &[]).await;
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
}
