//! Sans-IO WebSocket protocol core (RFC 6455, RFC 7692): bytes in, events and
//! bytes out. No IO, no async runtime, no wasm.
//!
//! - [`handshake`]: parse and validate the opening request, build the 101 or
//!   an error response (the one place handshake errors map to HTTP statuses).
//! - [`decoder`]: the receive state machine (frames → messages and control
//!   events), enforcing every framing rule as bytes arrive.
//! - [`encoder`]: unmasked server frames, into an [`outbox`]: bytes waiting
//!   for the socket, large payloads kept out of line for vectored writes.
//! - [`static_files`]: plain HTTP requests for `--static` files: safe
//!   paths, content types, conditional requests, response heads.
//! - [`fanout`]: a published message framed once for its subscribers.
//! - [`connection`]: one connection's rules (handshake answer, closing
//!   handshake, close timeout, keep-alive) over the decoder and encoder.
//! - [`frame`]: header coding and masking; [`utf8`]: incremental validation;
//!   [`close`]: close codes and payloads; [`deflate`]: permessage-deflate.
//! - [`error`]: [`ProtocolError`], the one place protocol errors map to
//!   close codes.

pub mod close;
pub mod connection;
pub mod decoder;
pub mod deflate;
pub mod encoder;
pub mod error;
pub mod fanout;
pub mod frame;
pub mod handshake;
pub mod header;
pub mod outbox;
pub mod static_files;
pub mod utf8;

pub use close::CloseCode;
pub use connection::{Connection, ConnectionConfig};
pub use decoder::{DataMessage, Decoder, DecoderConfig, Event, Inflate};
pub use encoder::{Deflate, Encoder};
pub use error::ProtocolError;
pub use frame::OpCode;
