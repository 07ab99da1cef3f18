//! End-to-end checks of the examples' behaviour, whatever language the
//! guest is written in: each takes a host serving one implementation of an
//! example (the Rust guest, or its twin in another language) and panics
//! where it misbehaves. The Rust examples' tests and their twins' tests
//! call the same functions, so the twins are held to the same checks
//! (`tests/js_guests.rs`, `tests/python_guests.rs`).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::{Host, RawClient, op, ws};

/// `examples/echo`: every message comes back as it was sent.
pub mod echo {
    use super::*;

    /// Text, binary (every byte value), empty and non-ASCII text.
    pub async fn text_and_binary_come_back(host: &Host) {
        let mut client = ws::connect(host, "/").await;
        client.send(Message::text("hello wsbox")).await.unwrap();
        assert_eq!(ws::next(&mut client).await, Message::text("hello wsbox"));
        let binary: Vec<u8> = (0..=255).collect();
        client.send(Message::binary(binary.clone())).await.unwrap();
        assert_eq!(ws::next(&mut client).await, Message::binary(binary));
        client.send(Message::text("")).await.unwrap();
        assert_eq!(ws::next(&mut client).await, Message::text(""));
        let unicode = "grüße, 世界 🎉";
        client.send(Message::text(unicode)).await.unwrap();
        assert_eq!(ws::next(&mut client).await, Message::text(unicode));
        client.close(None).await.unwrap();
    }

    /// A 1 MiB binary message sent in 64 KiB fragments comes back whole.
    pub async fn a_fragmented_mib_comes_back_whole(host: &Host) {
        let mut client = RawClient::connect(host.addr, "/", &[]).await;
        let message: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<&[u8]> = message.chunks(64 << 10).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { op::BINARY } else { op::CONTINUATION };
            client
                .send_frame(i + 1 == chunks.len(), opcode, chunk)
                .await;
        }
        let echoed = client.read_frame().await.expect("an echo");
        assert_eq!(echoed.opcode, op::BINARY);
        assert!(echoed.fin);
        assert_eq!(echoed.payload.len(), message.len());
        assert!(
            echoed.payload == message,
            "the echo differs from the message"
        );
    }

    /// `connections` clients at once, each echoing `messages` messages.
    pub async fn connections_at_once(host: &Host, connections: usize, messages: usize) {
        let mut tasks = Vec::new();
        for conn in 0..connections {
            let url = host.url("/");
            tasks.push(tokio::spawn(async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                for i in 0..messages {
                    let text = format!("connection {conn} message {i}");
                    ws.send(Message::text(text.clone())).await.unwrap();
                    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
                }
                ws.close(None).await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    /// A frame in the same packet as the handshake is the first message.
    pub async fn frames_sent_with_the_handshake_come_back(host: &Host) {
        let mut request = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            host.addr
        )
        .into_bytes();
        request.extend(super::super::encode_frame(
            true,
            0,
            op::TEXT,
            b"early",
            Some([1, 2, 3, 4]),
        ));
        let (mut client, head) = RawClient::send_request(host.addr, &request).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let frame = client.read_frame().await.expect("an echo");
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (op::TEXT, &b"early"[..])
        );
    }

    /// A burst written at once (small and large messages, text and binary,
    /// more than one `receive-all` batch holds by count and by bytes) comes
    /// back whole and in order; then the close is answered.
    pub async fn a_burst_comes_back_in_order(host: &Host) {
        let mut client = RawClient::connect(host.addr, "/", &[]).await;
        let messages: Vec<(u8, Vec<u8>)> = (0..300usize)
            .map(|i| {
                let size = match i % 50 {
                    7 => 100 << 10,
                    8 | 9 => 40 << 10,
                    _ => i % 40,
                };
                let bytes = (0..size).map(|j| b'a' + ((i + j) % 26) as u8).collect();
                (if i % 2 == 0 { op::TEXT } else { op::BINARY }, bytes)
            })
            .collect();
        let mut burst = Vec::new();
        for (opcode, payload) in &messages {
            let mask = Some([9, 8, 7, 6]);
            burst.extend(super::super::encode_frame(true, 0, *opcode, payload, mask));
        }
        client.send_raw(&burst).await;
        for (i, (opcode, payload)) in messages.iter().enumerate() {
            let frame = client.read_frame().await.expect("an echo");
            assert!(frame.fin, "message {i}: one frame");
            assert_eq!(frame.opcode, *opcode, "message {i}: opcode");
            assert!(frame.payload == *payload, "message {i}: payload differs");
        }
        client.send_frame(true, op::CLOSE, &[0x03, 0xe8]).await;
        let (code, _) = client.expect_close().await;
        assert_eq!(code, 1000);
        client.expect_eof().await;
    }

    /// The client's close is answered with its code, then TCP is closed.
    pub async fn the_clients_close_is_answered_then_tcp_closed(host: &Host) {
        let mut client = RawClient::connect(host.addr, "/", &[]).await;
        client
            .send_frame(true, op::CLOSE, &[0x03, 0xe8, b'o', b'k'])
            .await;
        let (code, _) = client.expect_close().await;
        assert_eq!(code, 1000);
        client.expect_eof().await;
    }
}

/// `examples/auth`: 401 without `?token=secret` (percent-decoded);
/// `chat.v1` if offered; `welcome`, echo, and 4000 on `bye`.
pub mod auth {
    use super::*;

    /// Without a token: 401, the challenge `Bearer realm="wsbox"` and the
    /// body `missing or invalid token` (the same in every twin).
    pub async fn no_token_gets_401_a_challenge_and_a_body(host: &Host) {
        let error = tokio_tungstenite::connect_async(host.url("/"))
            .await
            .expect_err("auth rejects a request without a token");
        let tungstenite::Error::Http(response) = error else {
            panic!("expected an HTTP error, got {error:?}");
        };
        assert_eq!(response.status(), 401);
        let challenge = response
            .headers()
            .get("www-authenticate")
            .expect("a challenge header");
        assert_eq!(challenge.to_str().unwrap(), r#"Bearer realm="wsbox""#);
        assert_eq!(
            response.body().as_deref(),
            Some(&b"missing or invalid token\n"[..])
        );
    }

    /// The rejection is a complete HTTP response: the body is as long as
    /// its `Content-Length` says.
    pub async fn the_rejection_is_a_complete_response(host: &Host) {
        let (mut client, head) = RawClient::handshake(host.addr, "/?token=wrong", &[]).await;
        assert!(head.starts_with("HTTP/1.1 401 "), "{head}");
        let length: usize = head
            .lines()
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a Content-Length");
        let body = client.read_to_end().await;
        assert_eq!(body.len(), length);
    }

    /// `chat.v1` among the offers is chosen; then `welcome`, and text and
    /// binary messages are echoed.
    pub async fn the_offered_subprotocol_is_chosen(host: &Host) {
        let mut request = host.url("/?token=secret").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "other.v2, chat.v1".parse().unwrap(),
        );
        let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "chat.v1"
        );
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("welcome"));
        for message in [Message::text("hi"), Message::binary(vec![0, 1, 2])] {
            ws.send(message.clone()).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), message);
        }
    }

    /// Without an offer, no subprotocol is answered. The token is sent
    /// percent-encoded (`%73ecret`): the guest compares the decoded value.
    pub async fn no_subprotocol_without_an_offer(host: &Host) {
        let (_ws, response) = tokio_tungstenite::connect_async(host.url("/?token=%73ecret"))
            .await
            .unwrap();
        assert!(response.headers().get("sec-websocket-protocol").is_none());
    }

    /// `bye` gets a close with 4000 `bye`, and the stream ends cleanly.
    pub async fn bye_closes_with_4000(host: &Host) {
        let (mut ws, _) = tokio_tungstenite::connect_async(host.url("/?token=secret"))
            .await
            .unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("welcome"));
        ws.send(Message::text("bye")).await.unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 4000);
                assert_eq!(frame.reason.as_str(), "bye");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        // tungstenite answers the close; the stream then ends cleanly.
        assert!(ws.next().await.is_none());
    }
}

/// `examples/chat`: rooms by path, nicknames, JSON lines, joins and
/// leaves, the guest's own idle ping.
pub mod chat {
    use super::*;

    async fn join(host: &Host, room: &str, nick: &str, extra: &str) -> ws::Client {
        ws::connect(host, &format!("/chat/{room}?nick={nick}{extra}")).await
    }

    /// The next JSON message.
    async fn next(client: &mut ws::Client) -> Value {
        match ws::next(client).await {
            Message::Text(text) => serde_json::from_str(&text).expect("chat messages are JSON"),
            other => panic!("expected a JSON text message, got {other:?}"),
        }
    }

    async fn say(client: &mut ws::Client, text: &str) {
        let message = json!({"type": "say", "text": text}).to_string();
        client.send(Message::text(message)).await.unwrap();
    }

    /// Two members of a room chat and see each other come and go; a room
    /// elsewhere hears nothing of it.
    pub async fn members_chat_and_come_and_go(host: &Host) {
        let mut ann = join(host, "lobby", "ann", "").await;
        assert_eq!(
            next(&mut ann).await,
            json!({"type": "welcome", "members": 1})
        );
        let mut ben = join(host, "lobby", "ben", "").await;
        assert_eq!(
            next(&mut ben).await,
            json!({"type": "welcome", "members": 2})
        );
        assert_eq!(
            next(&mut ann).await,
            json!({"type": "joined", "nick": "ben", "members": 2})
        );
        let mut cid = join(host, "attic", "cid", "").await;
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
        ws::silent(&mut cid, Duration::from_millis(200)).await;
    }

    /// A valid nickname is required (400), and a room (404).
    pub async fn a_nickname_and_a_room_are_required(host: &Host) {
        for path in [
            "/chat/lobby",
            "/chat/lobby?nick=",
            "/chat/lobby?nick=no%20spaces",
            "/chat/lobby?nick=abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            let (_, head) = RawClient::handshake(host.addr, path, &[]).await;
            assert!(head.starts_with("HTTP/1.1 400 "), "{path}: {head}");
        }
        let (_, head) = RawClient::handshake(host.addr, "/elsewhere?nick=ann", &[]).await;
        assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    }

    /// With `&ping_after=1`, a silent member gets `ping` after a second.
    pub async fn a_silent_member_is_pinged(host: &Host) {
        let mut quiet = join(host, "lobby", "quiet", "&ping_after=1").await;
        assert_eq!(
            next(&mut quiet).await,
            json!({"type": "welcome", "members": 1})
        );
        let started = Instant::now();
        assert_eq!(next(&mut quiet).await, json!({"type": "ping"}));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(800),
            "pinged after {waited:?}, before a second of silence"
        );
        say(&mut quiet, "pong").await;
        assert_eq!(
            next(&mut quiet).await,
            json!({"type": "said", "from": "quiet", "text": "pong"})
        );
    }

    /// Text that is not a chat message, and binary, get an error; the
    /// member stays.
    pub async fn nonsense_gets_an_error_not_a_disconnect(host: &Host) {
        let mut ann = join(host, "lobby", "ann", "").await;
        next(&mut ann).await;
        ann.send(Message::text("not json")).await.unwrap();
        assert_eq!(next(&mut ann).await["type"], "error");
        ann.send(Message::binary(b"{}".to_vec())).await.unwrap();
        assert_eq!(
            next(&mut ann).await,
            json!({"type": "error", "error": "send JSON text messages"})
        );
        say(&mut ann, "still here").await;
        assert_eq!(next(&mut ann).await["text"], "still here");
    }
}
