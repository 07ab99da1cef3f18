//! The `chat` example end to end: rooms by path, nicknames, JSON messages,
//! join and leave notices, and the guest's own idle ping.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Host, RawClient};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn join(host: &Host, room: &str, nick: &str, extra: &str) -> Client {
    let url = host.url(&format!("/chat/{room}?nick={nick}{extra}"));
    let (client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    client
}

/// The next JSON message.
async fn next(client: &mut Client) -> Value {
    loop {
        let message = timeout(Duration::from_secs(10), client.next())
            .await
            .expect("timed out waiting for a chat message")
            .expect("the connection ended")
            .expect("a WebSocket error");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("chat messages are JSON");
        }
    }
}

async fn say(client: &mut Client, text: &str) {
    let message = json!({"type": "say", "text": text}).to_string();
    client.send(Message::text(message)).await.unwrap();
}

#[tokio::test]
async fn two_members_chat_in_a_room_and_see_each_other_come_and_go() {
    let host = Host::start("chat", &[]);
    let mut ann = join(&host, "lobby", "ann", "").await;
    assert_eq!(
        next(&mut ann).await,
        json!({"type": "welcome", "members": 1})
    );
    let mut ben = join(&host, "lobby", "ben", "").await;
    assert_eq!(
        next(&mut ben).await,
        json!({"type": "welcome", "members": 2})
    );
    assert_eq!(
        next(&mut ann).await,
        json!({"type": "joined", "nick": "ben", "members": 2})
    );
    // Someone in another room hears nothing of it.
    let mut cid = join(&host, "attic", "cid", "").await;
    assert_eq!(
        next(&mut cid).await,
        json!({"type": "welcome", "members": 1})
    );

    say(&mut ann, "hi ben").await;
    let said = json!({"type": "said", "from": "ann", "text": "hi ben"});
    assert_eq!(next(&mut ben).await, said);
    assert_eq!(next(&mut ann).await, said, "the sender sees its own line");

    ben.close(None).await.unwrap();
    assert_eq!(
        next(&mut ann).await,
        json!({"type": "left", "nick": "ben", "members": 1})
    );
    say(&mut cid, "anyone?").await;
    assert_eq!(
        next(&mut cid).await,
        json!({"type": "said", "from": "cid", "text": "anyone?"})
    );
}

#[tokio::test]
async fn a_nickname_is_required() {
    let host = Host::start("chat", &[]);
    for path in [
        "/chat/lobby",
        "/chat/lobby?nick=",
        "/chat/lobby?nick=no%20spaces",
    ] {
        let (_, head) = RawClient::handshake(host.addr, path, &[]).await;
        assert!(head.starts_with("HTTP/1.1 400 "), "{path}: {head}");
    }
}

#[tokio::test]
async fn a_silent_member_gets_pinged_by_the_guests_timer() {
    let host = Host::start("chat", &[]);
    let mut quiet = join(&host, "lobby", "quiet", "&ping_after=1").await;
    assert_eq!(
        next(&mut quiet).await,
        json!({"type": "welcome", "members": 1})
    );
    assert_eq!(next(&mut quiet).await, json!({"type": "ping"}));
    say(&mut quiet, "pong").await;
    assert_eq!(
        next(&mut quiet).await,
        json!({"type": "said", "from": "quiet", "text": "pong"})
    );
}

#[tokio::test]
async fn nonsense_gets_an_error_not_a_disconnect() {
    let host = Host::start("chat", &[]);
    let mut ann = join(&host, "lobby", "ann", "").await;
    next(&mut ann).await;
    ann.send(Message::text("not json")).await.unwrap();
    assert_eq!(next(&mut ann).await["type"], "error");
    say(&mut ann, "still here").await;
    assert_eq!(next(&mut ann).await["text"], "still here");
}
