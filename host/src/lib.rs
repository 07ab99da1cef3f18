//! wsbox: a WebSocket server whose per-connection logic is a sandboxed
//! WebAssembly component.
//!
//! Layers, each importing only from the ones above it in this list:
//!
//! 1. [`protocol`]: the sans-IO core (handshake, frames, messages, close,
//!    permessage-deflate, and one connection's rules as a state machine):
//!    plain functions and state machines over bytes and time.
//! 2. [`config`], [`session`] and [`metrics`]: what the runtime and the
//!    server share: every knob with its default; the guest-facing
//!    connection handle, how a guest's run ended, topics and the broker
//!    link that shares them with other hosts; the process's metrics.
//! 3. [`runtime`] (wasmtime: engine, component loading, the WIT host) and
//!    [`server`] (IO: listener, per-connection driver), which starts guests
//!    through the runtime.
//! 4. The binary's own parts: [`cli`], [`config_file`] (`--config`) and
//!    [`reload`] (hot swap), used by `main`.
//!
//! Without the default `server` feature only [`protocol`] is built (no
//! tokio, no wasmtime): that is what the fuzz targets use.

pub mod protocol;

#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod session;

#[cfg(feature = "server")]
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config_file;
#[cfg(feature = "server")]
pub mod reload;
