//! The echo example through the real host: text, binary, fragments, many
//! connections at once. The checks live in `support::twins::echo`, which
//! the echo example's twins in other languages pass too.

mod support;

use support::{Host, twins::echo};

#[tokio::test]
async fn text_and_binary_messages_are_echoed() {
    echo::text_and_binary_come_back(&Host::start("echo", &[])).await;
}

#[tokio::test]
async fn a_one_mib_message_in_64_kib_fragments_comes_back_whole() {
    echo::a_fragmented_mib_comes_back_whole(&Host::start("echo", &[])).await;
}

#[tokio::test]
async fn hundred_connections_each_echo_hundred_messages() {
    echo::connections_at_once(&Host::start("echo", &[]), 100, 100).await;
}

#[tokio::test]
async fn frames_sent_with_the_handshake_are_read_as_the_first_frames() {
    echo::frames_sent_with_the_handshake_come_back(&Host::start("echo", &[])).await;
}
