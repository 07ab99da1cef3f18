//! The guest answers the opening handshake: accept with a subprotocol, or
//! reject with status, headers and body.

mod support;

use support::{Host, RawClient, twins};

#[tokio::test]
async fn a_rejection_reaches_the_client_with_status_headers_and_body() {
    twins::auth_rejects_without_token(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn a_rejection_is_a_complete_http_response() {
    twins::auth_rejection_is_complete(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn the_chosen_subprotocol_is_answered() {
    twins::auth_accepts_with_subprotocol(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn no_subprotocol_is_answered_when_none_was_offered() {
    twins::auth_accepts_without_subprotocol(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn a_guest_that_never_answers_gets_the_client_a_500() {
    let host = Host::start("misbehave", &[]);
    let (_client, head) = RawClient::handshake(host.addr, "/no-answer", &[]).await;
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
}
