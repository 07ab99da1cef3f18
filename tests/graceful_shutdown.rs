//! SIGTERM: stop accepting, close every connection with 1001, wait for them
//! (up to the grace period), exit 0.

mod support;

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use support::{Host, RawClient, op};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

fn sigterm(host: &Host) {
    let status = Command::new("kill")
        .args(["-TERM", &host.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -TERM failed");
}

/// Wait up to `limit` for the host to exit.
async fn exit_within(host: &mut Host, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = host.child().try_wait().expect("waiting for the host") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let mut host = Host::start("echo", &["--shutdown-grace", "5s"]);
    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(RawClient::connect(host.addr, "/", &[]).await);
    }
    // Every connection is live: each echoes.
    for client in &mut clients {
        client.send_frame(true, op::TEXT, b"up").await;
    }
    for client in &mut clients {
        assert_eq!(client.read_frame().await.expect("an echo").payload, b"up");
    }

    let signalled = Instant::now();
    sigterm(&host);
    let mut tasks = JoinSet::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        tasks.spawn(async move {
            let (code, reason) = client.expect_close().await;
            // Answer, as a well-behaved client does; the server then closes TCP.
            client
                .send_frame(true, op::CLOSE, &code.to_be_bytes())
                .await;
            client.expect_eof().await;
            (i, code, reason)
        });
    }
    let mut closed = 0;
    while let Some(result) = tasks.join_next().await {
        let (i, code, reason) = result.expect("a client task panicked");
        assert_eq!(code, 1001, "client {i} got {code} {reason:?}");
        closed += 1;
    }
    assert_eq!(closed, 50);

    let status = exit_within(&mut host, Duration::from_secs(10))
        .await
        .expect("the host did not exit within 10 s of SIGTERM (grace 5 s)");
    assert!(status.success(), "the host exited with {status}");
    eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
}

#[tokio::test]
async fn a_connection_attempt_after_sigterm_is_refused() {
    // A client that ignores the server's close keeps the host in its grace
    // period, so the attempts meet a host that is shutting down, not gone.
    let mut host = Host::start("echo", &["--shutdown-grace", "5s", "--close-timeout", "5s"]);
    let mut lingering = RawClient::connect(host.addr, "/", &[]).await;
    // Accepted before the signal, its request sent after: answered 503.
    let mut slow = tokio::net::TcpStream::connect(host.addr).await.unwrap();
    sigterm(&host);
    // Logged once every listener is closed: the kernel refuses from here on.
    host.wait_for_log(&["shutting down"]);

    let error = tokio::net::TcpStream::connect(host.addr)
        .await
        .expect_err("a listener was still open after \"shutting down\"");
    assert_eq!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{error}"
    );

    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        host.addr
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503 "),
        "a handshake finished after SIGTERM got: {answer:?}"
    );

    // The lingering client still gets its 1001, and once it answers the
    // host exits cleanly.
    assert_eq!(lingering.expect_close().await.0, 1001);
    lingering
        .send_frame(true, op::CLOSE, &1001u16.to_be_bytes())
        .await;
    lingering.expect_eof().await;
    let status = exit_within(&mut host, Duration::from_secs(10))
        .await
        .expect("the host did not exit after its last connection closed");
    assert!(status.success(), "the host exited with {status}");
}

#[tokio::test]
async fn a_client_that_ignores_the_close_does_not_hold_the_exit_past_the_grace_period() {
    let mut host = Host::start(
        "echo",
        &["--shutdown-grace", "1s", "--close-timeout", "60s"],
    );
    let mut stubborn = RawClient::connect(host.addr, "/", &[]).await;
    sigterm(&host);
    assert_eq!(stubborn.expect_close().await.0, 1001);
    // Never answer. The grace period (1 s) bounds the wait, not the close
    // timeout (60 s).
    let status = exit_within(&mut host, Duration::from_secs(8))
        .await
        .expect("the host did not exit within 8 s of SIGTERM (grace 1 s)");
    assert!(status.success(), "the host exited with {status}");
    stubborn.expect_eof().await;
}
