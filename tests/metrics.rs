//! `--metrics-listen`: Prometheus text at /metrics with what the server
//! saw, and the /healthz and /readyz checks, on a port of their own.

mod support;

use std::path::PathBuf;

use support::metrics::{get, metrics_addr, sample};
use support::{Host, RawClient, guest, op};

#[tokio::test]
async fn traffic_closes_rejections_failures_and_swaps_are_counted() {
    let dir = std::env::temp_dir().join(format!("wsbox-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let app: PathBuf = dir.join("app.wasm");
    std::fs::copy(guest("misbehave"), &app).unwrap();
    let host = Host::start_path(&app, &["--metrics-listen", "127.0.0.1:0"]);
    let admin = metrics_addr(&host);
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".into()));
    // Ready once the accept loop runs, a moment after the log line: probe
    // as a load balancer would.
    let deadline = std::time::Instant::now() + support::WAIT;
    while get(admin, "/readyz") != (200, "ready\n".into()) {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(get(admin, "/nothing").0, 404);

    // Two messages echoed, then the client's close.
    let mut client = RawClient::connect(host.addr, "/", &[]).await;
    client.send_frame(true, op::TEXT, b"hello").await;
    client.send_frame(true, op::BINARY, b"abc").await;
    client.read_frame().await.unwrap();
    client.read_frame().await.unwrap();
    client
        .send_frame(true, op::CLOSE, &1000u16.to_be_bytes())
        .await;
    client.expect_close().await;
    client.expect_eof().await;
    // A handshake without a version (426), a guest that fails before answering
    // (500) and one that traps after accepting (1011).
    let (_, head) = RawClient::send_request(
        host.addr,
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    let (_, head) = RawClient::handshake(host.addr, "/panic-before-accept", &[]).await;
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    let mut client = RawClient::connect(host.addr, "/panic", &[]).await;
    client.send_frame(true, op::TEXT, b"boom").await;
    assert_eq!(client.expect_close().await.0, 1011);
    drop(client);
    // A hot swap.
    let echo = std::fs::read(guest("echo")).unwrap();
    let temp = dir.join("app.wasm.tmp");
    std::fs::write(&temp, echo).unwrap();
    std::fs::rename(&temp, &app).unwrap();
    host.wait_for_log(&["hot swap"]);

    // Every connection's numbers are in once its access line is out.
    let deadline = std::time::Instant::now() + support::WAIT;
    let text = loop {
        let (status, text) = get(admin, "/metrics");
        assert_eq!(status, 200);
        if sample(&text, "wsbox_connections_total") == 3.0
            && sample(&text, "wsbox_connections_open") == 0.0
        {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for (series, value) in [
        ("wsbox_messages_received_total", 3.0),
        ("wsbox_messages_sent_total", 2.0),
        // 2 + 4 + payload per client frame: 11, 9, the close's 8, "boom" 10.
        ("wsbox_bytes_received_total", 38.0),
        (
            "wsbox_closes_total{code=\"1000\",initiator=\"client\"}",
            1.0,
        ),
        ("wsbox_closes_total{code=\"1011\",initiator=\"guest\"}", 1.0),
        ("wsbox_handshakes_rejected_total{status=\"426\"}", 1.0),
        ("wsbox_handshakes_rejected_total{status=\"500\"}", 1.0),
        ("wsbox_guest_failures_total{kind=\"trap\"}", 2.0),
        ("wsbox_guest_failures_total{kind=\"cpu\"}", 0.0),
        ("wsbox_guest_instantiate_seconds_count", 3.0),
        ("wsbox_guest_swaps_total{result=\"ok\"}", 1.0),
        ("wsbox_topics", 0.0),
        ("wsbox_topic_deliveries_total", 0.0),
    ] {
        assert_eq!(sample(&text, series), value, "{series} in:\n{text}");
    }
    assert!(text.contains("# TYPE wsbox_topic_drops counter"), "{text}");
    assert!(text.contains("# TYPE wsbox_guest_yields counter"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readyz_waits_for_a_configured_broker() {
    // Nothing listens on the broker's port: the host serves, but is not
    // ready for a load balancer to send it clients of shared topics.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let broker = format!("redis://{}", unused.local_addr().unwrap());
    drop(unused);
    let host = Host::start(
        "echo",
        &["--metrics-listen", "127.0.0.1:0", "--broker", &broker],
    );
    let admin = metrics_addr(&host);
    assert_eq!(get(admin, "/healthz"), (200, "ok\n".into()));
    // Give the listener a moment to start; the broker stays unreachable.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        get(admin, "/readyz"),
        (503, "not ready: broker not connected\n".into())
    );
}
