//! Topics end to end: the real host, the `broadcast` example and the
//! `topicker` test guest, real WebSocket clients.

#[path = "interop/deflate_codec.rs"]
#[allow(dead_code)] // the deflate interop test uses the rest
mod deflate_codec;
mod support;

use std::time::Duration;

use futures_util::SinkExt;
use support::Host;
use support::ws::{Client, connect, next, silent};
use tokio_tungstenite::tungstenite::Message;

async fn next_text(client: &mut Client) -> String {
    match next(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Send a command to a `topicker` connection and return its answer.
async fn ask(client: &mut Client, command: &str) -> String {
    client.send(Message::text(command)).await.unwrap();
    next_text(client).await
}

#[tokio::test]
async fn a_publish_reaches_every_other_subscriber_and_keeps_its_type() {
    let host = Host::start("broadcast", &[]);
    let mut alice = connect(&host, "/room").await;
    let mut bob = connect(&host, "/room").await;
    let mut carol = connect(&host, "/room").await;
    let mut elsewhere = connect(&host, "/other").await;

    alice.send(Message::text("hello room")).await.unwrap();
    assert_eq!(next(&mut bob).await, Message::text("hello room"));
    assert_eq!(next(&mut carol).await, Message::text("hello room"));
    alice
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(next(&mut bob).await, Message::binary(vec![0u8, 1, 2, 255]));
    assert_eq!(
        next(&mut carol).await,
        Message::binary(vec![0u8, 1, 2, 255])
    );

    bob.send(Message::text("from bob")).await.unwrap();
    assert_eq!(next(&mut alice).await, Message::text("from bob"));
    assert_eq!(next(&mut carol).await, Message::text("from bob"));

    // The publisher does not get its own messages; another topic hears
    // nothing.
    silent(&mut alice, Duration::from_millis(300)).await;
    silent(&mut elsewhere, Duration::from_millis(10)).await;
}

#[tokio::test]
async fn compressed_subscribers_get_the_same_messages() {
    // One subscriber without server context takeover (the frame compressed
    // once per publish is shared), one with it (its own compressor), one
    // without compression: all must read the same text.
    let host = Host::start("broadcast", &[]);
    let offers = [
        Some("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover"),
        Some("Sec-WebSocket-Extensions: permessage-deflate"),
        None,
    ];
    let mut subscribers = Vec::new();
    for offer in offers {
        let headers: Vec<&str> = offer.into_iter().collect();
        let client = support::RawClient::connect(host.addr, "/z", &headers).await;
        // Each keeps its inflate context: the server decides whether the
        // next message refers back.
        subscribers.push((client, flate2::Decompress::new(false)));
    }
    let mut publisher = connect(&host, "/z").await;
    let text = "a compressible topic message, ".repeat(20);
    for _ in 0..3 {
        publisher.send(Message::text(text.clone())).await.unwrap();
    }
    for (index, (subscriber, inflater)) in subscribers.iter_mut().enumerate() {
        for _ in 0..3 {
            let frame = subscriber.read_frame().await.expect("a frame");
            assert_eq!(frame.opcode, support::op::TEXT);
            let compressed = frame.rsv & 0b100 != 0;
            assert_eq!(compressed, index < 2, "subscriber {index}: RSV1");
            let payload = if compressed {
                deflate_codec::inflate_message(inflater, &frame.payload, text.len()).unwrap()
            } else {
                frame.payload
            };
            assert_eq!(payload, text.as_bytes(), "subscriber {index}");
        }
    }
}

#[tokio::test]
async fn guests_can_take_topic_messages_themselves() {
    let host = Host::start("topicker", &[]);
    let mut watcher = connect(&host, "/news?delivery=guest").await;
    let mut reporter = connect(&host, "/news").await;
    let reporter_id = ask(&mut reporter, "id").await;
    let reporter_id = reporter_id.strip_prefix("id ").unwrap().to_owned();

    assert_eq!(
        ask(&mut reporter, "pub news extra extra").await,
        "published 1"
    );
    assert_eq!(
        next_text(&mut watcher).await,
        format!("topic news {reporter_id} extra extra")
    );
    // The reporter subscribed with socket delivery: including itself, its
    // own socket gets the raw message (queued by the publish, so before the
    // command's answer).
    reporter
        .send(Message::text("pubself news again"))
        .await
        .unwrap();
    assert_eq!(next_text(&mut reporter).await, "again");
    assert_eq!(next_text(&mut reporter).await, "published 2");
    assert_eq!(
        next_text(&mut watcher).await,
        format!("topic news {reporter_id} again")
    );
    assert_eq!(ask(&mut watcher, "count news").await, "count 2");
    assert_eq!(ask(&mut watcher, "unsub news").await, "ok true");
    assert_eq!(ask(&mut watcher, "unsub news").await, "ok false");
    assert_eq!(ask(&mut reporter, "pub news gone").await, "published 0");
    silent(&mut watcher, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_guest_waits_for_messages_topics_and_timers_at_once() {
    let host = Host::start("topicker", &[]);
    let mut waiter = connect(&host, "/t?delivery=guest&tick_ms=300").await;
    let mut other = connect(&host, "/t").await;
    // With nothing else happening, the timer fires.
    assert_eq!(next_text(&mut waiter).await, "tick");
    // A topic message wakes it before the timer.
    other.send(Message::text("pub t wake up")).await.unwrap();
    assert_eq!(next_text(&mut other).await, "published 1");
    let answer = next_text(&mut waiter).await;
    assert!(
        answer.starts_with("topic t ") && answer.ends_with(" wake up"),
        "{answer}"
    );
    // So does a client message.
    assert_eq!(ask(&mut waiter, "count t").await, "count 2");
}

#[tokio::test]
async fn topic_names_are_checked() {
    let host = Host::start("topicker", &[]);
    let mut client = connect(&host, "/").await;
    let long = "x".repeat(257);
    let answer = ask(&mut client, &format!("sub {long}")).await;
    assert!(
        answer.starts_with("error ") && answer.contains("256"),
        "{answer}"
    );
    assert!(ask(&mut client, "sub ").await.starts_with("error "));
    assert!(
        ask(&mut client, &format!("pub {long} x"))
            .await
            .starts_with("error ")
    );
    assert_eq!(
        ask(&mut client, &format!("sub {}", "y".repeat(256))).await,
        "ok"
    );
    assert_eq!(ask(&mut client, "sub ünïcødé").await, "ok");
}

#[tokio::test]
async fn ids_are_unique() {
    let host = Host::start("topicker", &[]);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..5 {
        let mut client = connect(&host, "/").await;
        assert!(ids.insert(ask(&mut client, "id").await));
    }
}

/// An echo guest built against an older minor version of the WIT (the
/// fixture) still links and serves.
async fn an_older_guest_keeps_serving(fixture: &str) {
    let fixture = support::workspace().join("tests/fixtures").join(fixture);
    let host = Host::start_path(&fixture, &[]);
    let mut client = connect(&host, "/").await;
    client.send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut client).await, Message::text("still here"));
    client.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut client).await, Message::binary(vec![1u8, 2, 3]));
}

#[tokio::test]
async fn a_guest_built_against_wit_0_1_0_keeps_serving() {
    an_older_guest_keeps_serving("echo-wit-0.1.0.wasm").await;
}

#[tokio::test]
async fn a_guest_built_against_wit_0_1_1_keeps_serving() {
    an_older_guest_keeps_serving("echo-wit-0.1.1.wasm").await;
}

/// The host's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_costs_at_most_its_bound() {
    let host = Host::start("broadcast", &["--max-backpressure", "64KiB"]);
    let mut publisher = connect(&host, "/feed").await;
    let mut reader = connect(&host, "/feed").await;
    // Subscribed, then never reads: its kernel buffers fill, then its
    // queue in the host reaches the bound.
    let _stalled = support::RawClient::connect(host.addr, "/feed", &[]).await;
    let before = rss_kib(host.pid());

    let payload = vec![7u8; 16 << 10];
    let count = 2000; // 32 MiB in all
    for i in 0..count {
        let mut message = payload.clone();
        message[..4].copy_from_slice(&u32::to_be_bytes(i));
        publisher.send(Message::binary(message)).await.unwrap();
        // The reader keeps up, so it never misses anything.
        match next(&mut reader).await {
            Message::Binary(got) => assert_eq!(got[..4], u32::to_be_bytes(i)),
            other => panic!("expected binary, got {other:?}"),
        }
    }
    let grown = rss_kib(host.pid()).saturating_sub(before);
    assert!(
        grown < 16 << 10,
        "host memory grew by {grown} KiB while a subscriber was stalled"
    );
    host.wait_for_log(&["subscriber over its backpressure limit"]);
}

#[tokio::test]
async fn a_slow_subscriber_can_be_closed_instead() {
    let host = Host::start(
        "broadcast",
        &["--max-backpressure", "64KiB", "--close-slow-subscribers"],
    );
    let mut publisher = connect(&host, "/feed").await;
    let mut stalled = support::RawClient::connect(host.addr, "/feed", &[]).await;
    let payload = vec![7u8; 64 << 10];
    for _ in 0..200 {
        publisher
            .send(Message::binary(payload.clone()))
            .await
            .unwrap();
    }
    host.wait_for_log(&["closing a subscriber over its backpressure limit"]);
    let (code, _) = stalled.expect_close().await;
    assert_eq!(code, 1008);
}

/// `component` with a custom section appended: the same behaviour, a new
/// content hash, so the host sees a new version.
fn new_version_of(component: &[u8]) -> Vec<u8> {
    let name = b"wsbox-test-version";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(b"2");
    let mut bytes = component.to_vec();
    bytes.push(0); // custom section id
    bytes.push(section.len() as u8); // its size (under 128: one LEB byte)
    bytes.extend_from_slice(&section);
    bytes
}

#[tokio::test]
async fn connections_on_old_and_new_versions_share_topics_across_a_swap() {
    let dir = std::env::temp_dir().join(format!("wsbox-topics-swap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let app = dir.join("app.wasm");
    let original = std::fs::read(support::guest("broadcast")).unwrap();
    std::fs::write(&app, &original).unwrap();
    let host = Host::start_path(&app, &[]);
    let mut old = connect(&host, "/shared").await;

    std::fs::write(&app, new_version_of(&original)).unwrap();
    host.wait_for_log(&["now serving new guest version"]);
    let mut new = connect(&host, "/shared").await;

    old.send(Message::text("from the old version"))
        .await
        .unwrap();
    assert_eq!(next(&mut new).await, Message::text("from the old version"));
    new.send(Message::text("from the new version"))
        .await
        .unwrap();
    assert_eq!(next(&mut old).await, Message::text("from the new version"));
    let _ = std::fs::remove_dir_all(&dir);
}
