//! A test guest for topics and events, driven by text commands from its
//! client. It subscribes to the topics named in the path
//! (`/T1,T2?delivery=guest|socket&tick_ms=N`), then waits on
//! `next_event` (with a timeout of N ms when `tick_ms` is given) and
//! answers:
//!
//! | event | answer |
//! | --- | --- |
//! | text `pub TOPIC TEXT` | publish TEXT to TOPIC; answer `published N` |
//! | text `pubself TOPIC TEXT` | the same, including this connection |
//! | binary `B` | publish the bytes to the first topic, answer nothing |
//! | text `sub TOPIC` / `unsub TOPIC` | answer `ok` / `ok true|false`, or `error ...` |
//! | text `count TOPIC` | answer `count N` (or `error ...`) |
//! | text `id` | answer `id N` |
//! | a delivered topic message | answer `topic TOPIC PUBLISHER TEXT` (text) or `topic TOPIC PUBLISHER <N bytes>` |
//! | the timeout | answer `tick` |
//! | the close | log `closed ...` and return |

use std::time::Duration;

use guest_sdk::{Connection, Delivery, Event, Message, PendingConnection};

guest_sdk::export_handler!(handle);

fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
    let request = pending.request();
    let topics: Vec<String> = request
        .path()
        .trim_start_matches('/')
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let delivery = match request.query_param("delivery").as_deref() {
        Some("guest") => Delivery::Guest,
        _ => Delivery::Socket,
    };
    let tick = request
        .query_param("tick_ms")
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let conn = pending.accept()?;
    for topic in &topics {
        conn.subscribe_with(topic, delivery)?;
    }
    loop {
        match conn.next_event(tick) {
            Ok(Event::Message(Message::Text(text))) => command(&conn, delivery, &text)?,
            Ok(Event::Message(Message::Binary(bytes))) => {
                if let Some(topic) = topics.first() {
                    conn.publish(topic, bytes)?;
                }
            }
            Ok(Event::Topic(message)) => {
                let body = match &message.message {
                    Message::Text(text) => text.clone(),
                    other => format!("<{} bytes>", other.as_bytes().len()),
                };
                conn.send_text(format!(
                    "topic {} {} {body}",
                    message.topic, message.publisher
                ))?;
            }
            Ok(Event::Timeout) => conn.send_text("tick")?,
            Ok(_) => {}
            Err(error) => {
                guest_sdk::log::info(format!("closed {error}"));
                return Ok(());
            }
        }
    }
}

fn command(conn: &Connection, delivery: Delivery, text: &str) -> guest_sdk::Result<()> {
    let mut words = text.splitn(3, ' ');
    let verb = words.next().unwrap_or_default();
    let topic = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default();
    let answer = match verb {
        "pub" | "pubself" => match conn.publish_with(topic, rest, verb == "pubself") {
            Ok(n) => format!("published {n}"),
            Err(error) => format!("error {error}"),
        },
        "sub" => match conn.subscribe_with(topic, delivery) {
            Ok(()) => "ok".to_owned(),
            Err(error) => format!("error {error}"),
        },
        "unsub" => match conn.unsubscribe(topic) {
            Ok(was) => format!("ok {was}"),
            Err(error) => format!("error {error}"),
        },
        "count" => match conn.subscriber_count(topic) {
            Ok(n) => format!("count {n}"),
            Err(error) => format!("error {error}"),
        },
        "id" => format!("id {}", conn.id()),
        _ => format!("error unknown command {verb:?}"),
    };
    conn.send_text(answer)?;
    Ok(())
}
