//! The guest answers the opening handshake: accept with a subprotocol, or
//! reject with status, headers and body.

mod support;

use futures_util::{SinkExt, StreamExt};
use support::{Host, RawClient};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

#[tokio::test]
async fn a_rejection_reaches_the_client_with_status_headers_and_body() {
    let host = Host::start("auth", &[]);
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
    assert!(challenge.to_str().unwrap().starts_with("Bearer"));
    let body = response.body().as_ref().expect("a body");
    assert!(!body.is_empty());
}

#[tokio::test]
async fn a_rejection_is_a_complete_http_response() {
    let host = Host::start("auth", &[]);
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

#[tokio::test]
async fn the_chosen_subprotocol_is_answered() {
    let host = Host::start("auth", &[]);
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
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
}

#[tokio::test]
async fn no_subprotocol_is_answered_when_none_was_offered() {
    let host = Host::start("auth", &[]);
    let (_ws, response) = tokio_tungstenite::connect_async(host.url("/?token=secret"))
        .await
        .unwrap();
    assert!(response.headers().get("sec-websocket-protocol").is_none());
}

#[tokio::test]
async fn a_guest_that_never_answers_gets_the_client_a_500() {
    let host = Host::start("misbehave", &[]);
    let (_client, head) = RawClient::handshake(host.addr, "/no-answer", &[]).await;
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
}
