//! The WIT imports, implemented by translating each call into a
//! [`ConnectionHandle`](crate::session::ConnectionHandle) call. Each one
//! reaches the connection through [`GuestState::conn`] or
//! [`GuestState::table`], which note the import for the CPU budget (see
//! the `state` module).

use wasmtime::component::Resource;

use super::GuestState;
use bytes::Bytes;
use wasmtime_wasi::p2::DynPollable;

use super::bindings::{
    ConnectionResource, EventsReady, PendingConnectionResource, log, types, websocket,
};
use crate::protocol::DataMessage;
use crate::protocol::connection::{
    AcceptParams, AnswerError, ConnEvent, ConnectionError, Incoming, Outgoing, RejectParams,
    TopicMessage,
};
use crate::protocol::handshake::ResponseError;
use crate::session::topics::{DeliveryMode, TopicError};

impl types::Host for GuestState {}
impl websocket::Host for GuestState {}

impl log::Host for GuestState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let conn = self.conn().id();
        let version = &**self.version();
        match level {
            log::Level::Trace => tracing::trace!(conn, version, "guest: {message}"),
            log::Level::Debug => tracing::debug!(conn, version, "guest: {message}"),
            log::Level::Info => tracing::info!(conn, version, "guest: {message}"),
            log::Level::Warn => tracing::warn!(conn, version, "guest: {message}"),
            log::Level::Error => tracing::error!(conn, version, "guest: {message}"),
        }
        Ok(())
    }
}

impl websocket::HostPendingConnection for GuestState {
    fn request(
        &mut self,
        _this: Resource<PendingConnectionResource>,
    ) -> wasmtime::Result<types::Request> {
        let conn = self.conn();
        let remote_address = conn.remote().to_string();
        conn.with_request(|request| types::Request {
            path: request.target.clone(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| types::Header {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            subprotocols: request.subprotocols.clone(),
            extensions: request.extensions.clone(),
            remote_address,
        })
        // Released only with the pending connection this call borrows.
        .ok_or_else(|| wasmtime::Error::msg("the request was released with its pending connection"))
    }

    fn accept(
        &mut self,
        _this: Resource<PendingConnectionResource>,
        options: types::AcceptOptions,
    ) -> wasmtime::Result<Result<Resource<ConnectionResource>, types::HandshakeError>> {
        let params = AcceptParams {
            subprotocol: options.subprotocol,
            headers: headers_from_wit(options.headers),
            compression: options.compression,
            receive_pongs: options.receive_pongs,
            max_message_size: options.max_message_size,
        };
        let result = match self.conn().accept(params) {
            Ok(()) => Ok(self.table().push(ConnectionResource)?),
            Err(error) => Err(handshake_error(error)),
        };
        Ok(result)
    }

    fn reject(
        &mut self,
        _this: Resource<PendingConnectionResource>,
        options: types::RejectOptions,
    ) -> wasmtime::Result<Result<(), types::HandshakeError>> {
        let params = RejectParams {
            status: options.status,
            reason: options.reason,
            headers: headers_from_wit(options.headers),
            body: options.body,
        };
        let result = self.conn().reject(&params).map_err(handshake_error);
        Ok(result)
    }

    fn drop(&mut self, this: Resource<PendingConnectionResource>) -> wasmtime::Result<()> {
        self.table().delete(this)?;
        // Nothing can ask for the request any more.
        self.conn().release_request();
        Ok(())
    }
}

impl websocket::HostConnection for GuestState {
    fn subprotocol(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.conn().subprotocol())
    }

    fn extensions(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.conn().extensions())
    }

    async fn receive(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Result<types::Message, types::ConnectionError>> {
        let result = self
            .conn()
            .receive()
            .await
            .map(message_to_wit)
            .map_err(connection_error);
        Ok(result)
    }

    async fn receive_all(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Result<Vec<types::Message>, types::ConnectionError>> {
        let result = self
            .conn()
            .receive_all()
            .await
            .map(|batch| batch.into_iter().map(message_to_wit).collect())
            .map_err(connection_error);
        Ok(result)
    }

    // `send` and `send-all` as the bindings generate them: the linker has
    // the copy-once ones from `guest_send` in their place.
    async fn send(
        &mut self,
        _this: Resource<ConnectionResource>,
        message: types::Message,
    ) -> wasmtime::Result<Result<(), types::ConnectionError>> {
        let result = self.conn().send(outgoing(message)).await;
        Ok(result.map_err(connection_error))
    }

    async fn send_all(
        &mut self,
        _this: Resource<ConnectionResource>,
        messages: Vec<types::Message>,
    ) -> wasmtime::Result<Result<(), types::ConnectionError>> {
        let batch: Vec<_> = messages.into_iter().map(outgoing).collect();
        let result = self.conn().send_all(batch).await;
        Ok(result.map_err(connection_error))
    }

    async fn close(
        &mut self,
        _this: Resource<ConnectionResource>,
        code: u16,
        reason: String,
    ) -> wasmtime::Result<Result<(), types::ConnectionError>> {
        let result = self.conn().close(code, &reason).await;
        Ok(result.map_err(connection_error))
    }

    async fn ping(
        &mut self,
        _this: Resource<ConnectionResource>,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), types::ConnectionError>> {
        let result = self.conn().ping(&payload).await;
        Ok(result.map_err(connection_error))
    }

    fn id(&mut self, _this: Resource<ConnectionResource>) -> wasmtime::Result<u64> {
        Ok(self.conn().id())
    }

    fn subscribe(
        &mut self,
        _this: Resource<ConnectionResource>,
        topic: String,
        delivery: types::Delivery,
    ) -> wasmtime::Result<Result<(), types::ConnectionError>> {
        let mode = match delivery {
            types::Delivery::Socket => DeliveryMode::Socket,
            types::Delivery::Guest => DeliveryMode::Guest,
        };
        Ok(self.conn().subscribe(&topic, mode).map_err(topic_error))
    }

    fn unsubscribe(
        &mut self,
        _this: Resource<ConnectionResource>,
        topic: String,
    ) -> wasmtime::Result<Result<bool, types::ConnectionError>> {
        Ok(Ok(self.conn().unsubscribe(&topic)))
    }

    fn publish(
        &mut self,
        _this: Resource<ConnectionResource>,
        topic: String,
        message: types::Message,
        options: types::PublishOptions,
    ) -> wasmtime::Result<Result<u32, types::ConnectionError>> {
        let (text, payload) = match message {
            types::Message::Text(text) => (true, Bytes::from(text)),
            types::Message::Binary(data) => (false, Bytes::from(data)),
            types::Message::Pong(_) => {
                return Ok(Err(types::ConnectionError::InvalidArgument(
                    "only text and binary messages can be published".into(),
                )));
            }
        };
        let result = self
            .conn()
            .publish(&topic, text, payload, options.include_self);
        Ok(result.map(|report| report.queued).map_err(topic_error))
    }

    fn subscriber_count(
        &mut self,
        _this: Resource<ConnectionResource>,
        topic: String,
    ) -> wasmtime::Result<Result<u32, types::ConnectionError>> {
        let count = self.conn().subscriber_count(&topic);
        Ok(count
            .map(|count| u32::try_from(count).unwrap_or(u32::MAX))
            .map_err(topic_error))
    }

    fn events_ready(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let conn = self.conn().clone();
        let ready = self.table().push(EventsReady { conn })?;
        wasmtime_wasi::p2::subscribe(self.table(), ready)
    }

    fn next_event(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Option<types::Event>> {
        Ok(self.conn().next_event().map(|event| match event {
            ConnEvent::Message(incoming) => types::Event::Message(message_to_wit(incoming)),
            ConnEvent::Topic(message) => types::Event::Topic(topic_message_to_wit(message)),
            ConnEvent::Closed(error) => types::Event::Closed(connection_error(error)),
        }))
    }

    fn drop(&mut self, this: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        self.table().delete(this)?;
        Ok(())
    }
}

/// The WIT form of a received message.
fn message_to_wit(incoming: Incoming) -> types::Message {
    match incoming {
        Incoming::Message(DataMessage::Text(text)) => types::Message::Text(text),
        Incoming::Message(DataMessage::Binary(data)) => types::Message::Binary(data),
        Incoming::Pong(data) => types::Message::Pong(data),
    }
}

/// The WIT form of a delivered topic message.
fn topic_message_to_wit(message: TopicMessage) -> types::TopicMessage {
    let payload = message.payload.to_vec();
    let body = if message.text {
        // Published as a WIT `string`, so UTF-8; checked again rather than
        // trusted.
        match String::from_utf8(payload) {
            Ok(text) => types::Message::Text(text),
            Err(error) => types::Message::Binary(error.into_bytes()),
        }
    } else {
        types::Message::Binary(payload)
    };
    types::TopicMessage {
        topic: message.topic.to_string(),
        message: body,
        publisher: message.publisher,
    }
}

/// The WIT form of a refused topic call.
fn topic_error(error: TopicError) -> types::ConnectionError {
    types::ConnectionError::InvalidArgument(error.to_string())
}

fn outgoing(message: types::Message) -> Outgoing<'static> {
    match message {
        types::Message::Text(text) => Outgoing::Text(text.into()),
        types::Message::Binary(data) => Outgoing::Binary(data.into()),
        types::Message::Pong(data) => Outgoing::Pong(data.into()),
    }
}

fn headers_from_wit(headers: Vec<types::Header>) -> Vec<(String, Vec<u8>)> {
    headers
        .into_iter()
        .map(|header| (header.name, header.value))
        .collect()
}

/// The WIT form of a connection error.
pub(super) fn connection_error(error: ConnectionError) -> types::ConnectionError {
    match error {
        ConnectionError::CloseRequest { code, reason } => {
            types::ConnectionError::CloseRequest(types::CloseFrame {
                code: code.0,
                reason,
            })
        }
        ConnectionError::ConnectionClosed => types::ConnectionError::ConnectionClosed,
        ConnectionError::InvalidArgument(why) => types::ConnectionError::InvalidArgument(why),
    }
}

/// The WIT form of a handshake answer error.
fn handshake_error(error: AnswerError) -> types::HandshakeError {
    match error {
        AnswerError::SubprotocolNotOffered(name) => {
            types::HandshakeError::SubprotocolNotOffered(name)
        }
        AnswerError::AlreadyAnswered => types::HandshakeError::AlreadyAnswered,
        AnswerError::ConnectionClosed => types::HandshakeError::ConnectionClosed,
        AnswerError::Response(
            error @ (ResponseError::InvalidStatus(_) | ResponseError::InvalidReason),
        ) => types::HandshakeError::InvalidStatus(error.to_string()),
        AnswerError::Response(error) => types::HandshakeError::InvalidHeader(error.to_string()),
    }
}
