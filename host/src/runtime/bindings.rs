//! Host bindings for the `wsbox:websocket/handler` world.

/// The host-side representation of a guest's `pending-connection` handle.
/// One store serves one connection, so the handle carries no data: the
/// connection itself lives in the store's [`super::GuestState`].
pub struct PendingConnectionResource;

/// The host-side representation of a guest's `connection` handle.
pub struct ConnectionResource;

/// What a guest's `events-ready` pollable waits on: the connection having an
/// event for `next-event`.
pub struct EventsReady {
    /// The connection whose events are awaited.
    pub conn: crate::session::ConnectionHandle,
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for EventsReady {
    async fn ready(&mut self) {
        self.conn.wait_event().await;
    }
}

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    // Async only where the host waits (for a message, or for room to
    // write). An async import is a boxed future that wasmtime polls on the
    // guest's fiber stack, and the frames that takes count: a connection
    // keeps every page of that stack its deepest call reached, and the
    // `accept` of a `--release` host went about 400 bytes past the first
    // page as an async import (`fiber_stack` bench, host/benches/README.md).
    imports: {
        "wsbox:websocket/websocket.[method]connection.receive": async | trappable,
        "wsbox:websocket/websocket.[method]connection.receive-all": async | trappable,
        "wsbox:websocket/websocket.[method]connection.send": async | trappable,
        "wsbox:websocket/websocket.[method]connection.send-all": async | trappable,
        "wsbox:websocket/websocket.[method]connection.close": async | trappable,
        "wsbox:websocket/websocket.[method]connection.ping": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "wsbox:websocket/websocket.pending-connection": PendingConnectionResource,
        "wsbox:websocket/websocket.connection": ConnectionResource,
        // WASI's poll and clocks are wasmtime-wasi's own (linked with the
        // rest of WASI), so a guest's `pollable`s mix freely.
        "wasi": wasmtime_wasi::p2::bindings,
    },
});

pub use self::wsbox::websocket::{log, types, websocket};
