//! wsbox: a WebSocket server whose per-connection logic is a sandboxed
//! WebAssembly component.
//!
//! - [`protocol`]: the sans-IO core (handshake, frames, messages, close,
//!   permessage-deflate): plain state machines over bytes.
//! - [`server`]: the IO layer: listener and per-connection driver.
//! - [`runtime`]: wasmtime: engine, component loading, the WIT host.
//! - [`config`]: every knob, with its default.

pub mod cli;
pub mod config;
pub mod protocol;
pub mod runtime;
pub mod server;
