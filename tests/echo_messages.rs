//! The echo example through the real host: text, binary, fragments, many
//! connections at once.

mod support;

use futures_util::{SinkExt, StreamExt};
use support::{Host, RawClient, op};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn text_and_binary_messages_are_echoed() {
    let host = Host::start("echo", &[]);
    let (mut ws, _) = tokio_tungstenite::connect_async(host.url("/"))
        .await
        .unwrap();
    ws.send(Message::text("hello wsbox")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("hello wsbox")
    );
    let binary: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(binary.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(binary));
    ws.send(Message::text("")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(""));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_one_mib_message_in_64_kib_fragments_comes_back_whole() {
    let host = Host::start("echo", &[]);
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

#[tokio::test]
async fn hundred_connections_each_echo_hundred_messages() {
    let host = Host::start("echo", &[]);
    let mut tasks = Vec::new();
    for conn in 0..100 {
        let url = host.url("/");
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for i in 0..100 {
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

#[tokio::test]
async fn frames_sent_with_the_handshake_are_read_as_the_first_frames() {
    let host = Host::start("echo", &[]);
    let mut request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        host.addr
    )
    .into_bytes();
    request.extend(support::encode_frame(
        true,
        0,
        op::TEXT,
        b"early",
        Some([1, 2, 3, 4]),
    ));
    let (mut client, head) = RawClient::send_request(host.addr, &request).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let frame = client.read_frame().await.expect("an echo");
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (op::TEXT, &b"early"[..])
    );
}
