//! wsbox: a WebSocket server whose per-connection logic is a sandboxed
//! WebAssembly component.
//!
//! - [`protocol`]: the sans-IO core (handshake, frames, messages, close,
//!   permessage-deflate): plain state machines over bytes.
//! - [`server`]: the IO layer: listener and per-connection driver.
//! - [`runtime`]: wasmtime: engine, component loading, the WIT host.
//! - [`config`]: every knob, with its default.
//!
//! Without the default `server` feature only [`protocol`] is built (no
//! tokio, no wasmtime): that is what the fuzz targets use.

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config;
pub mod protocol;
#[cfg(feature = "server")]
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
