//! The WIT imports, implemented by translating each call into a
//! [`ConnectionHandle`](crate::session::ConnectionHandle) call. CPU budget
//! bookkeeping is not done here but in the store's call hook, for every
//! import at once (see the module above).

use wasmtime::component::Resource;

use super::GuestState;
use super::bindings::{ConnectionResource, PendingConnectionResource, log, types, websocket};
use crate::protocol::DataMessage;
use crate::protocol::connection::{
    AcceptParams, AnswerError, ConnectionError, Incoming, Outgoing, RejectParams,
};
use crate::protocol::handshake::ResponseError;

impl types::Host for GuestState {}
impl websocket::Host for GuestState {}

impl log::Host for GuestState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
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
    async fn request(
        &mut self,
        _this: Resource<PendingConnectionResource>,
    ) -> wasmtime::Result<types::Request> {
        let request = self.conn().request();
        let result = types::Request {
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
            remote_address: self.conn().remote().to_string(),
        };
        Ok(result)
    }

    async fn accept(
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

    async fn reject(
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

    async fn drop(&mut self, this: Resource<PendingConnectionResource>) -> wasmtime::Result<()> {
        self.table().delete(this)?;
        Ok(())
    }
}

impl websocket::HostConnection for GuestState {
    async fn subprotocol(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.conn().subprotocol())
    }

    async fn extensions(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Option<String>> {
        Ok(self.conn().extensions())
    }

    async fn receive(
        &mut self,
        _this: Resource<ConnectionResource>,
    ) -> wasmtime::Result<Result<types::Message, types::ConnectionError>> {
        let result = match self.conn().receive().await {
            Ok(Incoming::Message(DataMessage::Text(text))) => Ok(types::Message::Text(text)),
            Ok(Incoming::Message(DataMessage::Binary(data))) => Ok(types::Message::Binary(data)),
            Ok(Incoming::Pong(data)) => Ok(types::Message::Pong(data)),
            Err(error) => Err(connection_error(error)),
        };
        Ok(result)
    }

    async fn send(
        &mut self,
        _this: Resource<ConnectionResource>,
        message: types::Message,
    ) -> wasmtime::Result<Result<(), types::ConnectionError>> {
        let result = self.conn().send(outgoing(&message)).await;
        Ok(result.map_err(connection_error))
    }

    async fn send_all(
        &mut self,
        _this: Resource<ConnectionResource>,
        messages: Vec<types::Message>,
    ) -> wasmtime::Result<Result<(), types::ConnectionError>> {
        let batch: Vec<Outgoing<'_>> = messages.iter().map(outgoing).collect();
        let result = self.conn().send_all(&batch).await;
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

    async fn drop(&mut self, this: Resource<ConnectionResource>) -> wasmtime::Result<()> {
        self.table().delete(this)?;
        Ok(())
    }
}

fn outgoing(message: &types::Message) -> Outgoing<'_> {
    match message {
        types::Message::Text(text) => Outgoing::Text(text),
        types::Message::Binary(data) => Outgoing::Binary(data),
        types::Message::Pong(data) => Outgoing::Pong(data),
    }
}

fn headers_from_wit(headers: Vec<types::Header>) -> Vec<(String, Vec<u8>)> {
    headers
        .into_iter()
        .map(|header| (header.name, header.value))
        .collect()
}

/// The WIT form of a connection error.
fn connection_error(error: ConnectionError) -> types::ConnectionError {
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
