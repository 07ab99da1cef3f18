//! Close frames and the framing rules around them (RFC 6455 §5.5, §7.4):
//! valid codes are echoed, anything else fails the connection with the
//! code the RFC asks for.

mod support;

use std::net::SocketAddr;

use support::{Host, RawClient, encode_frame, op};

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// A close frame payload: code and reason bytes.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// Connect to an echo host, send `bytes` verbatim, and return the code of
/// the server's close frame.
async fn close_code_after(addr: SocketAddr, bytes: &[u8]) -> u16 {
    let mut client = RawClient::connect(addr, "/", &[]).await;
    client.send_raw(bytes).await;
    client.expect_close().await.0
}

#[tokio::test]
async fn a_valid_close_code_is_echoed_and_tcp_closed() {
    let host = Host::start("echo", &[]);
    for code in [
        1000, 1001, 1003, 1007, 1008, 1011, 1012, 1014, 3000, 4000, 4999,
    ] {
        let mut client = RawClient::connect(host.addr, "/", &[]).await;
        client
            .send_frame(true, op::CLOSE, &close_payload(code, b"bye"))
            .await;
        let (echoed, _) = client.expect_close().await;
        assert_eq!(echoed, code, "close code {code} was not echoed");
        client.expect_eof().await;
    }
}

#[tokio::test]
async fn an_invalid_close_code_closes_with_1002() {
    let host = Host::start("echo", &[]);
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        let frame = encode_frame(true, 0, op::CLOSE, &close_payload(code, b""), Some(MASK));
        let answer = close_code_after(host.addr, &frame).await;
        assert_eq!(answer, 1002, "close code {code} was answered with {answer}");
    }
}

#[tokio::test]
async fn a_one_byte_close_payload_closes_with_1002() {
    let host = Host::start("echo", &[]);
    let frame = encode_frame(true, 0, op::CLOSE, &[0x03], Some(MASK));
    assert_eq!(close_code_after(host.addr, &frame).await, 1002);
}

#[tokio::test]
async fn a_close_reason_that_is_not_utf8_closes_with_1007() {
    let host = Host::start("echo", &[]);
    for reason in [
        &b"\xff"[..],
        b"ok\xc3",
        b"\xed\xa0\x80", /* a surrogate */
    ] {
        let frame = encode_frame(true, 0, op::CLOSE, &close_payload(1000, reason), Some(MASK));
        let answer = close_code_after(host.addr, &frame).await;
        assert_eq!(answer, 1007, "reason {reason:?} was answered with {answer}");
    }
}

#[tokio::test]
async fn a_close_frame_over_125_bytes_closes_with_1002() {
    let host = Host::start("echo", &[]);
    let payload = close_payload(1000, &[b'x'; 124]); // 126 bytes
    let frame = encode_frame(true, 0, op::CLOSE, &payload, Some(MASK));
    assert_eq!(close_code_after(host.addr, &frame).await, 1002);
}

#[tokio::test]
async fn a_close_frame_of_exactly_125_bytes_is_echoed() {
    let host = Host::start("echo", &[]);
    let payload = close_payload(1000, &[b'x'; 123]); // 125 bytes
    let frame = encode_frame(true, 0, op::CLOSE, &payload, Some(MASK));
    assert_eq!(close_code_after(host.addr, &frame).await, 1000);
}

#[tokio::test]
async fn a_fragmented_ping_closes_with_1002() {
    let host = Host::start("echo", &[]);
    let mut bytes = encode_frame(false, 0, op::PING, b"frag", Some(MASK));
    bytes.extend(encode_frame(true, 0, op::CONTINUATION, b"ment", Some(MASK)));
    assert_eq!(close_code_after(host.addr, &bytes).await, 1002);
}

#[tokio::test]
async fn a_new_text_frame_inside_a_fragmented_message_closes_with_1002() {
    let host = Host::start("echo", &[]);
    let mut bytes = encode_frame(false, 0, op::TEXT, b"first", Some(MASK));
    bytes.extend(encode_frame(true, 0, op::TEXT, b"second", Some(MASK)));
    assert_eq!(close_code_after(host.addr, &bytes).await, 1002);
}

#[tokio::test]
async fn a_control_frame_between_fragments_is_fine() {
    // The control for the test above: a ping may interleave.
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(false, op::TEXT, b"hel").await;
    client.send_frame(true, op::PING, b"p").await;
    client.send_frame(true, op::CONTINUATION, b"lo").await;
    let pong = client.read_frame().await.expect("a pong");
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (op::PONG, &b"p"[..])
    );
    let mut text = Vec::new();
    loop {
        let frame = client.read_frame().await.expect("the echo");
        text.extend_from_slice(&frame.payload);
        if frame.fin {
            break;
        }
    }
    assert_eq!(text, b"hello");
}

#[tokio::test]
async fn nonzero_rsv_bits_without_an_extension_close_with_1002() {
    let host = Host::start("echo", &[]);
    for rsv in [0b100, 0b010, 0b001] {
        let frame = encode_frame(true, rsv, op::TEXT, b"reserved", Some(MASK));
        let answer = close_code_after(host.addr, &frame).await;
        assert_eq!(answer, 1002, "RSV {rsv:03b} was answered with {answer}");
    }
}

#[tokio::test]
async fn an_unknown_opcode_closes_with_1002() {
    let host = Host::start("echo", &[]);
    for opcode in [0x3, 0x7, 0xB, 0xF] {
        let frame = encode_frame(true, 0, opcode, b"?", Some(MASK));
        let answer = close_code_after(host.addr, &frame).await;
        assert_eq!(
            answer, 1002,
            "opcode {opcode:#x} was answered with {answer}"
        );
    }
}

#[tokio::test]
async fn after_failing_a_connection_the_server_closes_tcp_once_the_client_answers() {
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client
        .send_raw(&encode_frame(true, 0, 0x3, b"?", Some(MASK)))
        .await;
    assert_eq!(client.expect_close().await.0, 1002);
    client
        .send_frame(true, op::CLOSE, &close_payload(1002, b""))
        .await;
    client.expect_eof().await;
}

#[tokio::test]
async fn nothing_is_sent_after_the_servers_close() {
    // Frames after a close are not answered: the echo of a later message
    // and the pong of a later ping must not follow the close frame.
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    let mut bytes = encode_frame(true, 0, op::CLOSE, &close_payload(1000, b""), Some(MASK));
    bytes.extend(encode_frame(true, 0, op::TEXT, b"late", Some(MASK)));
    bytes.extend(encode_frame(true, 0, op::PING, b"late", Some(MASK)));
    client.send_raw(&bytes).await;
    let close = client.read_frame().await.expect("the echoed close");
    assert_eq!(close.opcode, op::CLOSE);
    assert_eq!(
        client.read_frame().await,
        None,
        "a frame followed the close"
    );
}
