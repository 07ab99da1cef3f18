//! The behaviour of the `echo` and `auth` examples, as checks on a host
//! serving one of them, so that their twins in other languages
//! (`examples/echo-py`, `examples/auth-py`, ...) are held to the same.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::{Host, RawClient, op};

/// Text (empty too) and binary messages come back as sent.
pub async fn echo_text_and_binary(host: &Host) {
    let (mut ws, _) = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .unwrap();
    let binary: Vec<u8> = (0..=255).collect();
    for message in [
        Message::text("hello wsbox"),
        Message::binary(binary),
        Message::text(""),
        Message::text("ünïcödé ✓"),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), message);
    }
    ws.close(None).await.unwrap();
}

/// A 1 MiB binary message sent in 64 KiB fragments comes back whole.
pub async fn echo_one_mib_in_fragments(host: &Host) {
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    let message: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = message.chunks(64 << 10).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { op::BINARY } else { op::CONTINUATION };
        client
            .send_frame(i + 1 == chunks.len(), opcode, chunk)
            .await;
    }
    let echoed = client.read_frame().await.expect("an echo");
    assert_eq!(echoed.opcode, op::BINARY);
    assert!(echoed.fin);
    assert_eq!(echoed.payload.len(), message.len());
    assert!(
        echoed.payload == message,
        "the echo differs from the message"
    );
}

/// `connections` clients at once each get `messages` echoes back in order.
pub async fn echo_many_connections(host: &Host, connections: usize, messages: usize) {
    let mut tasks = Vec::new();
    for conn in 0..connections {
        let url = host.url("/");
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for i in 0..messages {
                let text = format!("connection {conn} message {i}");
                ws.send(Message::text(text.clone())).await.unwrap();
                assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
            }
            ws.close(None).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Without a token: 401 with a Bearer challenge and a body.
pub async fn auth_rejects_without_token(host: &Host) {
    let error = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .expect_err("auth rejects a request without a token");
    let tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP error, got {error:?}");
    };
    assert_eq!(response.status(), 401);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .expect("a challenge header");
    assert_eq!(challenge.to_str().unwrap(), r#"Bearer realm="wsbox""#);
    assert_eq!(
        response.body().as_deref(),
        Some(&b"missing or invalid token\n"[..])
    );
}

/// A rejection is a whole HTTP response: its body is Content-Length long.
pub async fn auth_rejection_is_complete(host: &Host) {
    let (mut client, head) = RawClient::handshake(host.addr, "/?token=wrong", &[]).await;
    assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let body = client.read_to_end().await;
    assert_eq!(body.len(), length);
}

/// With the token, `chat.v1` is chosen among the offered subprotocols, the
/// client is greeted with `welcome` and its messages are echoed.
pub async fn auth_accepts_with_subprotocol(host: &Host) {
    let mut request = host.url("/?token=secret").into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "other.v2, chat.v1".parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "chat.v1"
    );
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("welcome"));
    for message in [Message::text("hi"), Message::binary(vec![0, 1, 2])] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), message);
    }
}

/// No subprotocol offered, none answered; the token may be percent-encoded.
pub async fn auth_accepts_without_subprotocol(host: &Host) {
    let (_ws, response) = tokio_tungstenite::connect_async(host.url("/?token=%73ecret"))
        .await
        .unwrap();
    assert!(response.headers().get("sec-websocket-protocol").is_none());
}

/// `bye` gets a close with 4000 `bye`; after the client's answer the
/// stream ends cleanly.
pub async fn auth_closes_with_4000_on_bye(host: &Host) {
    let (mut ws, _) = tokio_tungstenite::connect_async(host.url("/?token=secret"))
        .await
        .unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("welcome"));
    ws.send(Message::text("bye")).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4000);
            assert_eq!(frame.reason.as_str(), "bye");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // tungstenite answers the close; the stream then ends cleanly.
    assert!(ws.next().await.is_none());
}
