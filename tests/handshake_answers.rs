//! The guest answers the opening handshake: accept with a subprotocol, or
//! reject with status, headers and body. The auth example's checks live in
//! `support::twins::auth`, which its twins in other languages pass too.

mod support;

use support::{Host, RawClient, twins::auth};

#[tokio::test]
async fn a_rejection_reaches_the_client_with_status_headers_and_body() {
    auth::no_token_gets_401_a_challenge_and_a_body(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn a_rejection_is_a_complete_http_response() {
    auth::the_rejection_is_a_complete_response(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn the_chosen_subprotocol_is_answered() {
    auth::the_offered_subprotocol_is_chosen(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn no_subprotocol_is_answered_when_none_was_offered() {
    auth::no_subprotocol_without_an_offer(&Host::start("auth", &[])).await;
}

#[tokio::test]
async fn a_guest_that_never_answers_gets_the_client_a_500() {
    let host = Host::start("misbehave", &[]);
    let (_client, head) = RawClient::handshake(host.addr, "/no-answer", &[]).await;
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
}
