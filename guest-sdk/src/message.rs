//! Data messages and the conversions `receive_data` uses.

use crate::bindings::wsbox::websocket::types::{MessageParam, MessageResult};
use crate::error::ConnectionError;

/// A complete WebSocket message (`DataMessage` in the seed).
///
/// Control frames are the host's business, with one exception: a guest that
/// accepted with [`AcceptOptions::receive_pongs`](crate::AcceptOptions::receive_pongs)
/// also receives the payload of every pong as [`Message::Pong`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Message {
    /// A text message; always valid UTF-8 (the host checks it).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A pong's payload (at most 125 bytes). Received only when asked for at
    /// accept time; sending one sends an unsolicited pong (a heartbeat).
    Pong(Vec<u8>),
}

impl Message {
    /// The text of a [`Message::Text`], `None` otherwise.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The payload as bytes, whatever the kind of message.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) | Message::Pong(bytes) => bytes,
        }
    }

    /// The payload as bytes, whatever the kind of message, without copying.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(bytes) | Message::Pong(bytes) => bytes,
        }
    }

    /// Borrows this message for the host call, without copying its payload.
    pub(crate) fn as_param(&self) -> MessageParam<'_> {
        match self {
            Message::Text(text) => MessageParam::Text(text),
            Message::Binary(bytes) => MessageParam::Binary(bytes),
            Message::Pong(bytes) => MessageParam::Pong(bytes),
        }
    }
}

impl From<MessageResult> for Message {
    fn from(message: MessageResult) -> Self {
        match message {
            MessageResult::Text(text) => Message::Text(text),
            MessageResult::Binary(bytes) => Message::Binary(bytes),
            MessageResult::Pong(bytes) => Message::Pong(bytes),
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Message::Binary(bytes)
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Self {
        Message::Binary(bytes.to_vec())
    }
}

/// Types a received message can be turned into (`WebSocketsData` in the seed);
/// used by [`Connection::receive_data`](crate::Connection::receive_data).
///
/// Text and binary convert both ways as in the seed: text becomes its UTF-8
/// bytes, and bytes become a `String` if they are valid UTF-8. A failed
/// conversion is [`ConnectionError::InvalidData`]; the connection stays usable.
pub trait FromMessage: Sized {
    /// Converts a received message.
    fn from_message(message: Message) -> Result<Self, ConnectionError>;
}

impl FromMessage for Message {
    fn from_message(message: Message) -> Result<Self, ConnectionError> {
        Ok(message)
    }
}

impl FromMessage for String {
    fn from_message(message: Message) -> Result<Self, ConnectionError> {
        match message {
            Message::Text(text) => Ok(text),
            Message::Binary(bytes) | Message::Pong(bytes) => String::from_utf8(bytes)
                .map_err(|e| ConnectionError::InvalidData(format!("message is not UTF-8: {e}"))),
        }
    }
}

impl FromMessage for Vec<u8> {
    fn from_message(message: Message) -> Result<Self, ConnectionError> {
        Ok(message.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_the_seed() {
        assert_eq!(Message::from("hi"), Message::Text("hi".into()));
        assert_eq!(Message::from(&b"hi"[..]), Message::Binary(b"hi".to_vec()));
        assert_eq!(
            String::from_message(Message::Binary(b"hi".to_vec())).unwrap(),
            "hi"
        );
        assert!(matches!(
            String::from_message(Message::Binary(vec![0xff])),
            Err(ConnectionError::InvalidData(_))
        ));
        assert_eq!(
            Vec::<u8>::from_message(Message::Text("hi".into())).unwrap(),
            b"hi"
        );
    }
}
