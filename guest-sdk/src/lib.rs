//! Write wsbox WebSocket guests in Rust.
//!
//! wsbox runs one instance of a guest component per WebSocket connection.
//! The host owns the socket, the opening handshake, framing, control frames
//! and compression; the guest gets a [`PendingConnection`], accepts or
//! rejects it, and then exchanges whole [`Message`]s over a [`Connection`].
//!
//! ```no_run
//! use guest_sdk::PendingConnection;
//!
//! guest_sdk::export_handler!(handle);
//!
//! /// Accept every connection and send each message back.
//! fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
//!     let conn = pending.accept()?;
//!     loop {
//!         let message = conn.receive()?; // fails with the client's close
//!         conn.send(message)?;
//!     }
//! }
//! ```
//!
//! A handler is a `fn(PendingConnection)` returning `()` or a `Result`
//! (see [`HandlerReturn`]); [`export_handler!`] exports it as the
//! component's `handle`. A guest crate is a `cdylib` that depends on
//! `guest-sdk` only, built with
//! `cargo build --profile guest --target wasm32-wasip2`, which writes the
//! component straight to `target/wasm32-wasip2/guest/<crate>.wasm` (the
//! `guest` profile, release with link-time optimisation, is in the
//! workspace's `Cargo.toml`; the crate's README shows it).
//!
//! # From Haskell `websockets`
//!
//! The WIT contract follows the seed, `Network.WebSockets`; so does this SDK.
//!
//! | Haskell `websockets` | guest-sdk |
//! | --- | --- |
//! | `ServerApp` (`PendingConnection -> IO ()`) | `fn handle(PendingConnection)` and [`export_handler!`] |
//! | `PendingConnection`, `pendingRequest` | [`PendingConnection`], [`PendingConnection::request`] → [`Request`] |
//! | `requestPath`, `requestHeaders` | [`Request::target`], [`Request::path`], [`Request::query_param`]; [`Request::header`], [`Request::header_str`], [`Request::headers`] |
//! | `getRequestSubprotocols` | [`Request::subprotocols`], [`Request::offers_subprotocol`] |
//! | `acceptRequest` | [`PendingConnection::accept`] |
//! | `acceptRequestWith AcceptRequest{acceptSubprotocol, acceptHeaders}` | [`PendingConnection::accept_with`]`(`[`AcceptOptions`]`::default().subprotocol(..).header(..))` |
//! | `rejectRequest body` | [`PendingConnection::reject`] (400) |
//! | `rejectRequestWith RejectRequest{rejectCode, rejectMessage, rejectHeaders, rejectBody}` | [`PendingConnection::reject_with`]`(`[`RejectOptions`]`::new(401).reason(..).header(..).body(..))` |
//! | `ConnectionOptions{connectionOnPong}` | [`AcceptOptions::receive_pongs`] → [`Message::Pong`] |
//! | `connectionCompressionOptions` | [`AcceptOptions::compression`] (parameters are host configuration) |
//! | `connectionMessageDataSizeLimit` | [`AcceptOptions::max_message_size`] (frame limits, strict UTF-8: host) |
//! | `DataMessage` (`Text`, `Binary`) | [`Message`] (`Text`, `Binary`, and `Pong` if asked for) |
//! | `receiveDataMessage` | [`Connection::receive`] |
//! | `receiveData` / `WebSocketsData` | [`Connection::receive_data`]`::<T: `[`FromMessage`]`>` (`String`, `Vec<u8>`, `Message`); `receive_json` with the `json` feature |
//! | `sendTextData`, `sendBinaryData` | [`Connection::send_text`], [`Connection::send_binary`] (`send_json` with `json`) |
//! | `sendDataMessage`, `sendDataMessages` | [`Connection::send`], [`Connection::send_messages`] (one write) |
//! | `sendClose`, `sendCloseCode` | [`Connection::send_close`], [`Connection::send_close_code`]; then keep receiving until the peer's close |
//! | `sendPing` | [`Connection::send_ping`] ([`Connection::send_pong`] for a heartbeat) |
//! | `forkPingThread` / `withPingThread` | nothing to do: the host sends keep-alive pings |
//! | `CloseRequest` exception | [`ConnectionError::CloseRequest`] |
//! | `ConnectionClosed` exception | [`ConnectionError::ConnectionClosed`] |
//! | `ParseException`, `UnicodeException` | the host closes (1002, 1007); the guest sees `ConnectionClosed` |
//! | `HandshakeException` | [`HandshakeError`] |
//!
//! # Power users
//!
//! [`bindings`] holds the raw wit-bindgen bindings of the
//! `wsbox:websocket/handler` world; [`PendingConnection::into_raw`],
//! [`Connection::from_raw`] and friends move between the two.
//!
//! # The allocator
//!
//! Keep the default: do not set a `#[global_allocator]` in a guest. The
//! component's `cabi_realloc`, through which the host places each received
//! message in the guest's memory, allocates with wasi-libc's `malloc`
//! whatever the global allocator is, and the `String` or `Vec` it becomes
//! is freed through the global allocator: any other allocator than the
//! default corrupts the heap (`talc`, `rlsf` and a pointer-offsetting
//! wrapper around `System` were tried; README).
//!
//! # Features
//!
//! - `json`: [`Connection::receive_json`] and [`Connection::send_json`]
//!   through serde_json.

// The generated bindings name their runtime `guest_sdk::...` so that the code
// the export macro expands in a guest crate finds it there, not in a
// `wit-bindgen` dependency the guest does not have.
extern crate self as guest_sdk;

mod connection;
mod error;
mod handler;
pub mod log;
mod message;
mod pending;
mod request;
mod topics;

pub use connection::Connection;
pub use error::{ConnectionError, Error, HandshakeError};
pub use handler::HandlerReturn;
pub use message::{FromMessage, Message};
pub use pending::{AcceptOptions, PendingConnection, RejectOptions};
pub use request::{Header, Request};
pub use topics::{Delivery, Event, TopicMessage};

/// `Result<T, guest_sdk::Error>`: what a handler using `?` on both the
/// handshake and the connection returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The raw wit-bindgen bindings of the `wsbox:websocket/handler` world
/// (`wit/websocket.wit`).
///
/// Imports live in [`bindings::wsbox::websocket`]; parameters borrow
/// (`MessageParam<'_>`, `AcceptOptions<'_>`...), results own
/// (`MessageResult`, `Request`...). The export is the [`bindings::Guest`]
/// trait, which [`export_handler!`] implements.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wsbox:websocket/handler",
        ownership: Borrowing { duplicate_if_necessary: true },
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_handler_impl",
        default_bindings_module: "guest_sdk::bindings",
        runtime_path: "guest_sdk::__private::wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use crate::handler::run;
    pub use wit_bindgen;
}

/// Exports a handler as the component's `handle` function.
///
/// The handler is a function (or closure) taking a [`PendingConnection`] and
/// returning `()` or a `Result<(), E>` (see [`HandlerReturn`]). Use the
/// macro once, at the top level of the guest crate:
///
/// ```no_run
/// use guest_sdk::PendingConnection;
///
/// guest_sdk::export_handler!(handle);
///
/// fn handle(pending: PendingConnection) {
///     let _ = pending.reject("nobody home\n");
/// }
/// ```
///
/// It runs once per connection, on a fresh instance of the guest.
#[macro_export]
macro_rules! export_handler {
    ($handler:expr $(,)?) => {
        const _: () = {
            struct __GuestSdkHandler;

            impl $crate::bindings::Guest for __GuestSdkHandler {
                fn handle(pending: $crate::bindings::PendingConnection) {
                    $crate::__private::run(pending, $handler)
                }
            }

            $crate::bindings::__export_handler_impl!(
                __GuestSdkHandler with_types_in $crate::bindings
            );
        };
    };
}
