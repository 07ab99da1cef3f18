//! Chat rooms: a connection to `/chat/ROOM?nick=NAME` joins room ROOM as
//! NAME. Messages are JSON text:
//!
//! - the client sends `{"type":"say","text":"..."}`;
//! - everyone in the room (the sender too) gets
//!   `{"type":"said","from":NICK,"text":"..."}`;
//! - a newcomer gets `{"type":"welcome","members":N}`, the others
//!   `{"type":"joined","nick":NICK,"members":N}`, and
//!   `{"type":"left","nick":NICK,"members":N}` when a member leaves;
//! - a member silent for 60 s (or `&ping_after=SECONDS`) gets
//!   `{"type":"ping"}` from this guest's own timer;
//! - anything else gets `{"type":"error","error":"..."}`.
//!
//! Without a valid nickname (1 to 32 letters, digits, `-` or `_`) the
//! handshake is rejected with 400. Room traffic goes through a host topic
//! (`chat/ROOM`) delivered straight to every member's socket.

use std::time::{Duration, Instant};

use guest_sdk::{ConnectionError, Event, Message, PendingConnection, RejectOptions};
use serde::{Deserialize, Serialize};

guest_sdk::export_handler!(handle);

/// What a client may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum FromClient {
    Say { text: String },
}

/// What the room sends.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ToClient<'a> {
    Welcome { members: u32 },
    Joined { nick: &'a str, members: u32 },
    Left { nick: &'a str, members: u32 },
    Said { from: &'a str, text: &'a str },
    Ping,
    Error { error: String },
}

fn json(message: &ToClient<'_>) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

fn valid_nick(nick: &str) -> bool {
    (1..=32).contains(&nick.len())
        && nick
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
    let request = pending.request();
    let Some(room) = request
        .path()
        .strip_prefix("/chat/")
        .filter(|r| !r.is_empty())
    else {
        pending.reject_with(RejectOptions::new(404).body("no such room: use /chat/ROOM\n"))?;
        return Ok(());
    };
    let nick = request.query_param("nick").unwrap_or_default();
    if !valid_nick(&nick) {
        pending.reject_with(
            RejectOptions::new(400)
                .body("a nickname is required: ?nick= 1 to 32 letters, digits, - or _\n"),
        )?;
        return Ok(());
    }
    let ping_after = request
        .query_param("ping_after")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs);
    let topic = format!("chat/{room}");

    let conn = pending.accept()?;
    conn.subscribe(&topic)?;
    let members = conn.subscriber_count(&topic)?;
    conn.send_text(json(&ToClient::Welcome { members }))?;
    conn.publish(
        &topic,
        json(&ToClient::Joined {
            nick: &nick,
            members,
        }),
    )?;

    let mut last_heard = Instant::now();
    let ended = loop {
        let silence = last_heard.elapsed();
        let timeout = ping_after.saturating_sub(silence);
        match conn.next_event(Some(timeout)) {
            Ok(Event::Message(Message::Text(text))) => {
                last_heard = Instant::now();
                match serde_json::from_str::<FromClient>(&text) {
                    Ok(FromClient::Say { text }) => {
                        let said = json(&ToClient::Said {
                            from: &nick,
                            text: &text,
                        });
                        conn.publish_with(&topic, said, true)?;
                    }
                    Err(error) => conn.send_text(json(&ToClient::Error {
                        error: format!("not a chat message: {error}"),
                    }))?,
                }
            }
            Ok(Event::Message(_)) => {
                last_heard = Instant::now();
                conn.send_text(json(&ToClient::Error {
                    error: "send JSON text messages".into(),
                }))?;
            }
            Ok(Event::Timeout) => {
                conn.send_text(json(&ToClient::Ping))?;
                last_heard = Instant::now();
            }
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    conn.unsubscribe(&topic)?;
    let members = conn.subscriber_count(&topic)?;
    conn.publish(
        &topic,
        json(&ToClient::Left {
            nick: &nick,
            members,
        }),
    )?;
    match ended {
        ConnectionError::CloseRequest { .. } | ConnectionError::ConnectionClosed => Ok(()),
        error => Err(error.into()),
    }
}
