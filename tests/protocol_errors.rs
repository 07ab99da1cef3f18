//! Peers that break RFC 6455 get the close code the RFC asks for.

mod support;

use support::{Host, RawClient, encode_frame, op};

#[tokio::test]
async fn an_unmasked_frame_closes_with_1002() {
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client
        .send_raw(&encode_frame(true, 0, op::TEXT, b"no mask", None))
        .await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, 1002);
    client.expect_eof().await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::TEXT, &[b'o', b'k', 0xff]).await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, 1007);
}

#[tokio::test]
async fn invalid_utf8_fails_before_the_message_ends() {
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    // The first fragment already holds a byte that cannot start or continue
    // a character: the host fails the connection without waiting for more.
    client
        .send_frame(false, op::TEXT, &[b'a', 0xc0, b'b'])
        .await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, 1007);
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let host = Host::start("echo", &["--max-message-size", "1KiB"]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(false, op::BINARY, &[0; 600]).await;
    client.send_frame(true, op::CONTINUATION, &[0; 600]).await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, 1009);
}

#[tokio::test]
async fn a_continuation_without_a_start_closes_with_1002() {
    let host = Host::start("echo", &[]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::CONTINUATION, b"orphan").await;
    let (code, _) = client.expect_close().await;
    assert_eq!(code, 1002);
}
