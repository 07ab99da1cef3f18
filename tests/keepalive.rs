//! Keep-alive: pings to silent peers, the idle timeout, and the close
//! timeout for a peer that never answers our close.

mod support;

use std::time::{Duration, Instant};

use support::{Frame, Host, RawClient, op};

/// The next frame, or None if none arrives within `limit`.
async fn frame_within(client: &mut RawClient, limit: Duration) -> Option<Option<Frame>> {
    tokio::time::timeout(limit, client.read_frame()).await.ok()
}

#[tokio::test]
async fn a_silent_client_is_pinged_after_the_ping_interval() {
    let host = Host::start("echo", &["--ping-interval", "300ms"]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    let started = Instant::now();
    let frame = frame_within(&mut client, Duration::from_secs(5))
        .await
        .expect("no ping within 5 s (interval 300 ms)")
        .expect("the connection ended instead of a ping");
    assert_eq!(frame.opcode, op::PING, "{frame:?}");
    assert!(frame.fin);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "pinged after {:?}, well before the 300 ms interval",
        started.elapsed()
    );
}

#[tokio::test]
async fn answering_pings_keeps_a_connection_open_past_the_idle_timeout() {
    let host = Host::start(
        "echo",
        &["--ping-interval", "300ms", "--idle-timeout", "1500ms"],
    );
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    // Twice the idle timeout, sending nothing but pongs.
    let until = Instant::now() + Duration::from_secs(3);
    let mut pings = 0;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match frame_within(&mut client, left).await {
            None => break,
            Some(None) => panic!("the connection ended after {pings} pings"),
            Some(Some(frame)) => {
                assert_ne!(
                    frame.opcode,
                    op::CLOSE,
                    "closed despite pongs: {:?}",
                    frame.close_code()
                );
                assert_eq!(frame.opcode, op::PING, "{frame:?}");
                pings += 1;
                client.send_frame(true, op::PONG, &frame.payload).await;
            }
        }
    }
    assert!(
        pings >= 2,
        "only {pings} pings in 3 s with a 300 ms interval"
    );
    // Still open and working.
    client.send_frame(true, op::TEXT, b"still here").await;
    loop {
        let frame = client.read_frame().await.expect("an echo");
        if frame.opcode == op::PING {
            continue;
        }
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (op::TEXT, &b"still here"[..])
        );
        break;
    }
}

#[tokio::test]
async fn a_silent_client_is_closed_with_1001_at_the_idle_timeout() {
    let host = Host::start("echo", &["--idle-timeout", "1s", "--ping-interval", "0"]);
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    let started = Instant::now();
    let frame = frame_within(&mut client, Duration::from_secs(6))
        .await
        .expect("no close within 6 s (idle timeout 1 s)")
        .expect("TCP ended without a close frame");
    assert_eq!(frame.opcode, op::CLOSE, "pings are off, yet got {frame:?}");
    let (code, _) = frame.close_code().expect("a close code");
    assert_eq!(code, 1001);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the 1 s idle timeout",
        started.elapsed()
    );
    // The client answers; the server then closes TCP.
    client
        .send_frame(true, op::CLOSE, &1001u16.to_be_bytes())
        .await;
    client.expect_eof().await;
}

#[tokio::test]
async fn a_client_that_never_answers_our_close_is_dropped_at_the_close_timeout() {
    let host = Host::start("misbehave", &["--close-timeout", "1s"]);
    let mut client = RawClient::connect(host.addr, "/close-first", &[]).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), (1000, "done"));
    let started = Instant::now();
    // Never answer; the server must give up and close TCP (default close
    // timeout: 5 s, so 4 s shows the flag was honoured).
    tokio::time::timeout(Duration::from_secs(4), client.expect_eof())
        .await
        .expect("TCP still open 4 s after our unanswered close (close timeout 1 s)");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "TCP closed after {:?}, before the close timeout",
        started.elapsed()
    );
}
