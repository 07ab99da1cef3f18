//! An open WebSocket connection.

use crate::bindings::wsbox::websocket::{types::MessageParam, websocket};
use crate::error::ConnectionError;
use crate::message::{FromMessage, Message};

/// An open WebSocket connection (`Connection` in the seed).
///
/// The host handles control frames: it answers pings, answers the peer's
/// close and sends keep-alive pings, so a guest only deals with messages.
/// Every call may suspend the guest (never a host thread): `receive` until a
/// message arrives, the sends while the socket cannot take more.
#[derive(Debug)]
pub struct Connection {
    raw: websocket::Connection,
}

impl Connection {
    /// Wraps the raw resource (for code that mixes the SDK with
    /// [`bindings`](crate::bindings)).
    pub fn from_raw(raw: websocket::Connection) -> Self {
        Connection { raw }
    }

    /// The raw resource.
    pub fn as_raw(&self) -> &websocket::Connection {
        &self.raw
    }

    /// Unwraps the raw resource.
    pub fn into_raw(self) -> websocket::Connection {
        self.raw
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn subprotocol(&self) -> Option<String> {
        self.raw.subprotocol()
    }

    /// The `Sec-WebSocket-Extensions` value the host answered with (e.g.
    /// `permessage-deflate`), if an extension was negotiated.
    pub fn extensions(&self) -> Option<String> {
        self.raw.extensions()
    }

    /// Waits for the next message (`receiveDataMessage`).
    ///
    /// Ends with [`ConnectionError::CloseRequest`] when the peer closes (the
    /// host has answered already) or [`ConnectionError::ConnectionClosed`].
    pub fn receive(&self) -> Result<Message, ConnectionError> {
        Ok(self.raw.receive()?.into())
    }

    /// Waits for the next message, then returns it together with the
    /// messages already received behind it, in order (never empty; at most
    /// 64 messages, and 64 KiB unless the first alone is larger). Answering
    /// a batch with one [`send_messages`](Self::send_messages) handles a
    /// burst in two host calls instead of two per message. Ends as
    /// [`receive`](Self::receive) does, on the call after the messages in
    /// front of the close.
    pub fn receive_all(&self) -> Result<Vec<Message>, ConnectionError> {
        Ok(self
            .raw
            .receive_all()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Waits for the next text or binary message and converts it
    /// (`receiveData`): `receive_data::<String>()`, `receive_data::<Vec<u8>>()`.
    /// Pongs are skipped.
    pub fn receive_data<T: FromMessage>(&self) -> Result<T, ConnectionError> {
        loop {
            match self.receive()? {
                Message::Pong(_) => continue,
                message => return T::from_message(message),
            }
        }
    }

    /// Sends one message (`sendDataMessage`).
    pub fn send(&self, message: Message) -> Result<(), ConnectionError> {
        Ok(self.raw.send(message.as_param())?)
    }

    /// Sends a text message (`sendTextData`), without copying it.
    pub fn send_text(&self, text: impl AsRef<str>) -> Result<(), ConnectionError> {
        Ok(self.raw.send(MessageParam::Text(text.as_ref()))?)
    }

    /// Sends a binary message (`sendBinaryData`), without copying it.
    pub fn send_binary(&self, bytes: impl AsRef<[u8]>) -> Result<(), ConnectionError> {
        Ok(self.raw.send(MessageParam::Binary(bytes.as_ref()))?)
    }

    /// Sends several messages in one write (`sendDataMessages`).
    pub fn send_messages<M: Into<Message>>(
        &self,
        messages: impl IntoIterator<Item = M>,
    ) -> Result<(), ConnectionError> {
        let messages: Vec<Message> = messages.into_iter().map(Into::into).collect();
        if let [message] = messages.as_slice() {
            // The same on the wire, without lowering a list.
            return Ok(self.raw.send(message.as_param())?);
        }
        let params: Vec<MessageParam<'_>> = messages.iter().map(Message::as_param).collect();
        Ok(self.raw.send_all(&params)?)
    }

    /// Starts the closing handshake with 1000 and no reason (`sendClose`).
    /// See [`send_close_code`](Self::send_close_code).
    pub fn send_close(&self) -> Result<(), ConnectionError> {
        self.send_close_code(1000, "")
    }

    /// Starts the closing handshake (`sendCloseCode`). As in the seed, keep
    /// calling [`receive`](Self::receive) until it fails with the peer's
    /// close or `ConnectionClosed`; the host drops the connection if the
    /// peer does not answer in time.
    pub fn send_close_code(&self, code: u16, reason: &str) -> Result<(), ConnectionError> {
        Ok(self.raw.close(code, reason)?)
    }

    /// Sends a ping (`sendPing`), at most 125 bytes; the pong is not
    /// awaited (see [`AcceptOptions::receive_pongs`](crate::AcceptOptions::receive_pongs)).
    pub fn send_ping(&self, payload: impl AsRef<[u8]>) -> Result<(), ConnectionError> {
        Ok(self.raw.ping(payload.as_ref())?)
    }

    /// Sends an unsolicited pong (a heartbeat), at most 125 bytes.
    pub fn send_pong(&self, payload: impl AsRef<[u8]>) -> Result<(), ConnectionError> {
        Ok(self.raw.send(MessageParam::Pong(payload.as_ref()))?)
    }
}

#[cfg(feature = "json")]
impl Connection {
    /// Waits for the next text or binary message and parses it as JSON.
    /// Pongs are skipped; a parse failure is [`ConnectionError::InvalidData`].
    pub fn receive_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConnectionError> {
        let message: Message = self.receive_data()?;
        serde_json::from_slice(message.as_bytes())
            .map_err(|e| ConnectionError::InvalidData(format!("invalid JSON: {e}")))
    }

    /// Sends `value` as a JSON text message. A value that cannot be
    /// serialized is [`ConnectionError::InvalidArgument`]; nothing is sent.
    pub fn send_json<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
    ) -> Result<(), ConnectionError> {
        let text = serde_json::to_string(value)
            .map_err(|e| ConnectionError::InvalidArgument(format!("cannot serialize JSON: {e}")))?;
        self.send_text(text)
    }
}
