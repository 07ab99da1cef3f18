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
async fn a_burst_comes_back_in_order() {
    echo::a_burst_comes_back_in_order(&Host::start("echo", &[])).await;
}

#[tokio::test]
async fn frames_sent_with_the_handshake_are_read_as_the_first_frames() {
    echo::frames_sent_with_the_handshake_come_back(&Host::start("echo", &[])).await;
}

/// The host started with `flag mode` logs `key=logged` in its pool line, and echoes over more
/// connections in all than it has pool slots, so that slots are reused.
async fn serves_the_same_with(flag: &str, mode: &str, key: &str, logged: &str) {
    // Room for nine: the first connection's close may still be under way
    // (its slot not yet free) when the eight open.
    let host = Host::start("echo", &[flag, mode, "--max-connections", "9"]);
    let line = host.wait_for_log(&["instance pool sized per connection"]);
    assert!(
        line.contains(&format!("{key}=\"{logged}\"")) || line.contains(&format!("{key}={logged}")),
        "{flag} {mode}: {line}"
    );
    echo::text_and_binary_come_back(&host).await;
    echo::connections_at_once(&host, 8, 20).await;
}

/// Both ways of initialising a guest's memory serve the same (`--memory-init`; `auto` copies
/// the Rust echo's small image).
#[tokio::test]
async fn memory_copied_or_mapped_copy_on_write_serves_the_same() {
    for (mode, logged) in [("copy", "copy"), ("cow", "cow"), ("auto", "copy")] {
        serves_the_same_with("--memory-init", mode, "memory_init", logged).await;
    }
}

/// Finished instances given back one at a time or in batches serve the same, slots reused
/// (`--decommit-batch`; `auto` waits for 32 regions, eight instances, of the Rust echo, whose
/// data is a few KiB).
#[tokio::test]
async fn instances_given_back_one_at_a_time_or_in_batches_serve_the_same() {
    for (batch, logged) in [("1", "1"), ("8", "8"), ("auto", "32")] {
        serves_the_same_with("--decommit-batch", batch, "decommit_batch", logged).await;
    }
}

/// Tables filled at instantiation or at their first indirect call serve the same
/// (`--table-init`).
#[tokio::test]
async fn tables_filled_eagerly_or_lazily_serve_the_same() {
    for mode in ["eager", "lazy"] {
        serves_the_same_with("--table-init", mode, "table_init", mode).await;
    }
}
