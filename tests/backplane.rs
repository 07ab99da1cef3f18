//! The Redis backplane end to end: several real hosts share topics through
//! a real `redis-server`, with real WebSocket clients; and what happens
//! when Redis is missing, killed, stuck, or fed foreign messages.
//!
//! Each test starts its own `redis-server` on a free loopback port with
//! persistence off, and stops it. Without `redis-server` (Debian's
//! `redis-server` package, which brings `redis-cli`) the tests print SKIP
//! and pass, unless `CI` is set: then they fail.

mod support;

use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::ws::{Client, connect, next, silent};
use support::{Host, in_ci, runs};
use tokio_tungstenite::tungstenite::Message;
use wsbox::session::broker::envelope;

const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// A redis-server of the test's own
// ---------------------------------------------------------------------------

/// Whether redis-server and redis-cli are here; SKIP (or, under CI, fail)
/// when they are not.
fn have_redis() -> bool {
    if runs("redis-server") && runs("redis-cli") {
        return true;
    }
    assert!(
        !in_ci(),
        "redis-server and redis-cli are required for the backplane tests when CI is set \
         (apt-get install redis-server)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: redis-server not found; the backplane tests are skipped (set CI to make this an error)"
    );
    false
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("a local address").port()
}

/// A `redis-server` process on a loopback port, without persistence;
/// killed when dropped.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Start one on a free port.
    fn start() -> Redis {
        Redis::start_on(free_port())
    }

    /// Start one on `port` and wait until it answers.
    fn start_on(port: u16) -> Redis {
        let mut redis = Redis { port, child: None };
        redis.restart();
        redis
    }

    /// Start (again) on the same port.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it (SIGKILL) and wait for it to end.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Send `signal` to the process.
    fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("redis is running");
        let pid = i32::try_from(child.id()).expect("a pid fits in i32");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({signal})");
    }

    /// Run `redis-cli -p PORT ARGS...` and return its output.
    fn cli(&self, args: &[&str]) -> String {
        self.cli_with_stdin(args, None)
    }

    /// `redis-cli -x`: the last argument is read from `stdin`, byte-exact.
    fn cli_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-p", &self.port.to_string()]);
        if stdin.is_some() {
            cmd.arg("-x");
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("running redis-cli");
        let mut input = child.stdin.take().expect("stdin is piped");
        if let Some(bytes) = stdin {
            input.write_all(bytes).expect("writing to redis-cli");
        }
        drop(input);
        let output = child.wait_with_output().expect("redis-cli output");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// How many connections subscribe to `topic`'s channel.
    fn subscribers(&self, topic: &str) -> usize {
        let channel = format!("wsbox:topic:{topic}");
        let output = self.cli(&["PUBSUB", "NUMSUB", &channel]);
        output
            .lines()
            .nth(1)
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Wait until exactly `hosts` hosts subscribe to `topic`.
    fn wait_for_subscribers(&self, topic: &str, hosts: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.subscribers(topic);
            if now == hosts {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{topic}: {now} hosts subscribe, expected {hosts}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Publish raw bytes on `topic`'s channel, as any Redis client could.
    fn publish_raw(&self, topic: &str, bytes: &[u8]) {
        let channel = format!("wsbox:topic:{topic}");
        self.cli_with_stdin(&["PUBLISH", &channel], Some(bytes));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server must be continued to die promptly.
            let pid = i32::try_from(child.id()).unwrap_or(0);
            // SAFETY: as in `signal`.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

fn start_host(guest: &str, redis: &Redis, args: &[&str]) -> Host {
    let url = redis.url();
    let mut all = vec!["--broker", url.as_str()];
    all.extend_from_slice(args);
    Host::start(guest, &all)
}

/// The next chat message, as JSON.
async fn next_json(client: &mut Client) -> Value {
    match next(client).await {
        Message::Text(text) => serde_json::from_str(&text).expect("chat messages are JSON"),
        other => panic!("expected a chat message, got {other:?}"),
    }
}

async fn say(client: &mut Client, text: &str) {
    let message = json!({"type": "say", "text": text}).to_string();
    client.send(Message::text(message)).await.unwrap();
}

/// Log lines of `host` containing `needle`.
fn count_logs(host: &Host, needle: &str) -> usize {
    host.logs()
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}

/// The value of `key=` in a log line (`key=12` or `key="12"`).
fn log_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let value = line[start..].split_whitespace().next()?;
    Some(value.trim_matches('"').to_owned())
}

// ---------------------------------------------------------------------------
// Hosts sharing topics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn chat_members_on_three_hosts_share_one_room() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start();
    let hosts: Vec<Host> = (0..3).map(|_| start_host("chat", &redis, &[])).collect();
    let topic = "chat/lobby";

    let mut ann = connect(&hosts[0], "/chat/lobby?nick=ann").await;
    // Subscriber counts are each host's own.
    assert_eq!(
        next_json(&mut ann).await,
        json!({"type": "welcome", "members": 1})
    );
    redis.wait_for_subscribers(topic, 1);
    let mut ben = connect(&hosts[1], "/chat/lobby?nick=ben").await;
    assert_eq!(
        next_json(&mut ben).await,
        json!({"type": "welcome", "members": 1})
    );
    assert_eq!(
        next_json(&mut ann).await,
        json!({"type": "joined", "nick": "ben", "members": 1})
    );
    redis.wait_for_subscribers(topic, 2);
    let mut cid = connect(&hosts[2], "/chat/lobby?nick=cid").await;
    assert_eq!(
        next_json(&mut cid).await,
        json!({"type": "welcome", "members": 1})
    );
    let joined = json!({"type": "joined", "nick": "cid", "members": 1});
    assert_eq!(next_json(&mut ann).await, joined);
    assert_eq!(next_json(&mut ben).await, joined);
    redis.wait_for_subscribers(topic, 3);

    say(&mut ann, "hi from host 0").await;
    let said = json!({"type": "said", "from": "ann", "text": "hi from host 0"});
    for member in [&mut ann, &mut ben, &mut cid] {
        assert_eq!(next_json(member).await, said, "each member sees it once");
    }
    say(&mut cid, "hi from host 2").await;
    let said = json!({"type": "said", "from": "cid", "text": "hi from host 2"});
    for member in [&mut ann, &mut ben, &mut cid] {
        assert_eq!(next_json(member).await, said);
    }

    // A second member on ann's host: the room is still one room.
    let mut dee = connect(&hosts[0], "/chat/lobby?nick=dee").await;
    assert_eq!(
        next_json(&mut dee).await,
        json!({"type": "welcome", "members": 2})
    );
    let joined = json!({"type": "joined", "nick": "dee", "members": 2});
    for member in [&mut ann, &mut ben, &mut cid] {
        assert_eq!(next_json(member).await, joined);
    }

    ben.close(None).await.unwrap();
    let left = json!({"type": "left", "nick": "ben", "members": 0});
    for member in [&mut ann, &mut cid, &mut dee] {
        assert_eq!(next_json(member).await, left);
    }
    // ben's host has no member left: it leaves the channel.
    redis.wait_for_subscribers(topic, 2);
    // Nobody got anything twice.
    for member in [&mut ann, &mut cid, &mut dee] {
        silent(member, Duration::from_millis(200)).await;
    }
}

/// A binary message `[publisher, seq (4 bytes)]`.
fn numbered(publisher: u8, seq: u32) -> Message {
    let mut bytes = vec![publisher];
    bytes.extend_from_slice(&seq.to_be_bytes());
    Message::binary(bytes)
}

/// Read `per_publisher` numbered messages from each of `publishers` and
/// check that each publisher's arrive in order, none missing.
async fn expect_in_order(client: &mut Client, publishers: &[u8], per_publisher: u32) {
    let mut next_seq = [0u32; 256];
    let total = publishers.len() * per_publisher as usize;
    for _ in 0..total {
        let Message::Binary(bytes) = next(client).await else {
            panic!("expected a numbered binary message");
        };
        assert_eq!(bytes.len(), 5);
        let publisher = bytes[0];
        assert!(publishers.contains(&publisher), "from {publisher}");
        let seq = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let expected = &mut next_seq[usize::from(publisher)];
        assert_eq!(seq, *expected, "publisher {publisher} out of order");
        *expected += 1;
    }
}

#[tokio::test]
async fn each_publishers_messages_arrive_in_order_on_every_host() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start();
    let hosts: Vec<Host> = (0..3)
        .map(|_| start_host("broadcast", &redis, &[]))
        .collect();
    let mut listeners = Vec::new();
    for (index, host) in hosts.iter().enumerate() {
        listeners.push(connect(host, "/feed").await);
        redis.wait_for_subscribers("/feed", index + 1);
    }
    // Publishers on hosts 0 and 1, 1,000 numbered messages each, at once.
    let count = 1000;
    let mut clients = Vec::new();
    for (tag, host) in [(1u8, &hosts[0]), (2u8, &hosts[1])] {
        clients.push((tag, connect(host, "/feed").await));
    }
    // The guest subscribes right after it accepts: give the publishers'
    // guests that moment, so they hear each other from the first message.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut publishers = Vec::new();
    for (tag, mut client) in clients {
        publishers.push(tokio::spawn(async move {
            for seq in 0..count {
                client.send(numbered(tag, seq)).await.unwrap();
            }
            client
        }));
    }
    let mut publishers_back = Vec::new();
    for publisher in publishers {
        publishers_back.push(publisher.await.unwrap());
    }
    for listener in &mut listeners {
        expect_in_order(listener, &[1, 2], count).await;
    }
    // Each publisher also hears the other one, in order.
    expect_in_order(&mut publishers_back[0], &[2], count).await;
    expect_in_order(&mut publishers_back[1], &[1], count).await;
    for listener in &mut listeners {
        silent(listener, Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_others_go_on_when_a_host_leaves() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start();
    let mut hosts: Vec<Host> = (0..3)
        .map(|_| start_host("broadcast", &redis, &[]))
        .collect();
    let mut clients = Vec::new();
    for (index, host) in hosts.iter().enumerate() {
        clients.push(connect(host, "/room").await);
        redis.wait_for_subscribers("/room", index + 1);
    }
    clients[0].send(Message::text("all three")).await.unwrap();
    assert_eq!(next(&mut clients[1]).await, Message::text("all three"));
    assert_eq!(next(&mut clients[2]).await, Message::text("all three"));

    // Host 2 stops (SIGTERM: it closes its connections and exits); its
    // client answers the close.
    let mut leaving = clients.pop().unwrap();
    tokio::spawn(async move { while let Some(Ok(_)) = leaving.next().await {} });
    let pid = i32::try_from(hosts[2].pid()).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = hosts[2].child().wait().unwrap();
    assert!(status.success(), "host 2 exited with {status}");
    redis.wait_for_subscribers("/room", 2);
    hosts.pop();

    clients[1].send(Message::text("two left")).await.unwrap();
    assert_eq!(next(&mut clients[0]).await, Message::text("two left"));
    clients[0].send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut clients[1]).await, Message::text("still here"));
    for host in &hosts {
        assert_eq!(count_logs(host, "lost the broker"), 0);
    }
}

#[tokio::test]
async fn connection_ids_differ_across_hosts() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start();
    let first = start_host("topicker", &redis, &[]);
    let second = start_host("topicker", &redis, &[]);
    let mut watcher = connect(&second, "/news?delivery=guest").await;
    redis.wait_for_subscribers("news", 1);
    let mut reporter = connect(&first, "/news").await;
    reporter.send(Message::text("id")).await.unwrap();
    let Message::Text(id) = next(&mut reporter).await else {
        panic!("expected the id");
    };
    let id = id.strip_prefix("id ").unwrap().to_owned();
    watcher.send(Message::text("id")).await.unwrap();
    let Message::Text(watcher_id) = next(&mut watcher).await else {
        panic!("expected the id");
    };
    assert_ne!(format!("id {id}"), watcher_id.to_string());

    reporter
        .send(Message::text("pub news extra"))
        .await
        .unwrap();
    // `published N` counts this host's subscribers: none but the reporter,
    // which a publish skips.
    assert_eq!(next(&mut reporter).await, Message::text("published 0"));
    // The guest on the other host sees the publisher's own id.
    assert_eq!(
        next(&mut watcher).await,
        Message::text(format!("topic news {id} extra"))
    );
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_host_starts_without_redis_and_joins_when_it_appears() {
    if !have_redis() {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let lonely = Host::start("broadcast", &["--broker", &url]);
    // Local topics work at once.
    let mut a = connect(&lonely, "/t").await;
    let mut b = connect(&lonely, "/t").await;
    a.send(Message::text("local")).await.unwrap();
    assert_eq!(next(&mut b).await, Message::text("local"));
    let line = lonely.wait_for_log(&["broker unreachable"]);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    // Retries (backoff up to 2 s) make no more lines.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_logs(&lonely, "broker"), 1, "{:#?}", lonely.logs());

    let redis = Redis::start_on(port);
    lonely.wait_for_log(&["broker reachable again"]);
    redis.wait_for_subscribers("/t", 1);
    let other = start_host("broadcast", &redis, &[]);
    let mut c = connect(&other, "/t").await;
    redis.wait_for_subscribers("/t", 2);
    c.send(Message::text("across")).await.unwrap();
    assert_eq!(next(&mut a).await, Message::text("across"));
    assert_eq!(next(&mut b).await, Message::text("across"));
    a.send(Message::text("back")).await.unwrap();
    assert_eq!(next(&mut c).await, Message::text("back"));
}

#[tokio::test]
async fn a_host_survives_redis_dying_and_resubscribes_when_it_returns() {
    if !have_redis() {
        return;
    }
    let mut redis = Redis::start();
    let first = start_host("broadcast", &redis, &[]);
    let second = start_host("broadcast", &redis, &[]);
    let mut here = connect(&first, "/live").await;
    let mut there = connect(&second, "/live").await;
    let mut also_here = connect(&first, "/live").await;
    // A second topic, to see that every live topic is resubscribed.
    let mut other_here = connect(&first, "/other").await;
    let mut other_there = connect(&second, "/other").await;
    redis.wait_for_subscribers("/live", 2);
    redis.wait_for_subscribers("/other", 2);
    here.send(Message::text("before")).await.unwrap();
    assert_eq!(next(&mut there).await, Message::text("before"));
    assert_eq!(next(&mut also_here).await, Message::text("before"));

    redis.kill();
    first.wait_for_log(&["lost the broker"]);
    second.wait_for_log(&["lost the broker"]);
    // Local delivery goes on; nothing crosses.
    for i in 0..5 {
        here.send(Message::text(format!("gap {i}"))).await.unwrap();
        assert_eq!(
            next(&mut also_here).await,
            Message::text(format!("gap {i}"))
        );
    }
    silent(&mut there, Duration::from_millis(300)).await;

    redis.restart();
    let line = first.wait_for_log(&["broker reachable again"]);
    assert_eq!(log_field(&line, "lost").as_deref(), Some("5"), "{line}");
    assert_eq!(log_field(&line, "topics").as_deref(), Some("2"), "{line}");
    second.wait_for_log(&["broker reachable again"]);
    assert_eq!(count_logs(&first, "lost the broker"), 1);
    assert_eq!(redis.subscribers("/live"), 2);
    assert_eq!(redis.subscribers("/other"), 2);

    here.send(Message::text("after")).await.unwrap();
    assert_eq!(next(&mut there).await, Message::text("after"));
    assert_eq!(next(&mut also_here).await, Message::text("after"));
    other_there
        .send(Message::text("other after"))
        .await
        .unwrap();
    assert_eq!(next(&mut other_here).await, Message::text("other after"));
}

#[tokio::test]
async fn a_stuck_redis_blocks_neither_publishes_nor_accepts() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start();
    let first = start_host("broadcast", &redis, &["--broker-queue", "64KiB"]);
    let second = start_host("broadcast", &redis, &[]);
    let mut publisher = connect(&first, "/feed").await;
    let mut local = connect(&first, "/feed").await;
    let mut remote = connect(&second, "/feed").await;
    redis.wait_for_subscribers("/feed", 2);
    publisher.send(Message::text("warm")).await.unwrap();
    assert_eq!(next(&mut local).await, Message::text("warm"));
    assert_eq!(next(&mut remote).await, Message::text("warm"));

    redis.signal(libc::SIGSTOP);
    // 4 MiB of publishes against a 64 KiB queue towards Redis: the local
    // subscriber gets every one, at once.
    let started = Instant::now();
    let payload = vec![b'x'; 4096];
    for seq in 0..1024u32 {
        let mut message = payload.clone();
        message[..4].copy_from_slice(&seq.to_be_bytes());
        publisher.send(Message::binary(message)).await.unwrap();
        let Message::Binary(got) = next(&mut local).await else {
            panic!("expected binary");
        };
        assert_eq!(got[..4], seq.to_be_bytes());
    }
    // New connections are accepted and served meanwhile, on a new topic
    // too (its subscription waits for Redis, not the guest).
    let mut late = connect(&first, "/late").await;
    let mut late_peer = connect(&first, "/late").await;
    late.send(Message::text("late but local")).await.unwrap();
    assert_eq!(next(&mut late_peer).await, Message::text("late but local"));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} with Redis stuck"
    );
    let line = first.wait_for_log(&["broker queue full"]);
    assert!(log_field(&line, "dropped").is_some(), "{line}");
    // One line for the overflow, however many were dropped.
    assert_eq!(count_logs(&first, "broker queue full"), 1);

    // The batch sent to the stuck server gets no answer: after 2 s the link
    // drops the connection (and counts that batch as lost).
    first.wait_for_log(&["lost the broker", "timed out"]);
    redis.signal(libc::SIGCONT);
    // It reconnects, and topics work across hosts again.
    let line = first.wait_for_log(&["broker reachable again"]);
    let lost: u64 = log_field(&line, "lost").unwrap().parse().unwrap();
    assert!(lost > 0, "{line}");
    // The overflow before the timeout is in the process's total.
    let lost_total: u64 = log_field(&line, "lost_total").unwrap().parse().unwrap();
    assert!(lost_total > 500, "{line}");
    redis.wait_for_subscribers("/late", 1);
    // Whatever reached Redis before it stopped may still arrive at the
    // other host; skip to a fresh marker.
    publisher.send(Message::text("unstuck")).await.unwrap();
    loop {
        if next(&mut remote).await == Message::text("unstuck") {
            break;
        }
    }
    assert_eq!(
        next(&mut local).await,
        Message::text("unstuck"),
        "local delivery saw every message in order"
    );
}

#[tokio::test]
async fn foreign_and_oversized_messages_never_reach_a_client() {
    if !have_redis() {
        return;
    }
    let redis = Redis::start();
    let host = start_host("broadcast", &redis, &["--max-message-size", "1KiB"]);
    let mut client = connect(&host, "/feed").await;
    redis.wait_for_subscribers("/feed", 1);

    // Another program's message on a wsbox channel.
    redis.publish_raw("/feed", b"hello from somewhere else");
    host.wait_for_log(&["dropped a message from the broker", "not a wsbox envelope"]);
    // A wsbox envelope over --max-message-size.
    let oversized = envelope::encode(7, 1, false, &[0u8; 2048]);
    redis.publish_raw("/feed", &oversized);
    // A text message that is not UTF-8, and a future version.
    redis.publish_raw("/feed", &envelope::encode(7, 1, true, &[0xff, 0xfe]));
    let mut future = envelope::encode(7, 1, false, b"x");
    future[4] = 9;
    redis.publish_raw("/feed", &future);
    // A good envelope from another host gets through, and after all of the
    // above (one subscriber connection keeps the order).
    redis.publish_raw("/feed", &envelope::encode(7, 1, true, b"a real message"));
    assert_eq!(next(&mut client).await, Message::text("a real message"));
    silent(&mut client, Duration::from_millis(200)).await;
    for reason in [
        "over the 1024-byte message size limit",
        "not valid UTF-8",
        "envelope version 9",
    ] {
        host.wait_for_log(&["dropped a message from the broker", reason]);
    }
    // A flood of the same kind makes one line per period, not one each.
    for _ in 0..20 {
        redis.publish_raw("/feed", b"spam");
    }
    redis.publish_raw("/feed", &envelope::encode(7, 1, true, b"second real"));
    assert_eq!(next(&mut client).await, Message::text("second real"));
    assert_eq!(count_logs(&host, "not a wsbox envelope"), 1);
}
