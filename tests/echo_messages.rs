//! The echo example through the real host: text, binary, fragments, many
//! connections at once.

mod support;

use support::{Host, RawClient, op, twins};

#[tokio::test]
async fn text_and_binary_messages_are_echoed() {
    twins::echo_text_and_binary(&Host::start("echo", &[])).await;
}

#[tokio::test]
async fn a_one_mib_message_in_64_kib_fragments_comes_back_whole() {
    twins::echo_one_mib_in_fragments(&Host::start("echo", &[])).await;
}

#[tokio::test]
async fn hundred_connections_each_echo_hundred_messages() {
    twins::echo_many_connections(&Host::start("echo", &[]), 100, 100).await;
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
