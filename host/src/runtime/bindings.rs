//! Host bindings for the `wsbox:websocket/handler` world.

/// The host-side representation of a guest's `pending-connection` handle.
/// One store serves one connection, so the handle carries no data: the
/// connection itself lives in the store's [`super::GuestState`].
pub struct PendingConnectionResource;

/// The host-side representation of a guest's `connection` handle.
pub struct ConnectionResource;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "wsbox:websocket/websocket.pending-connection": PendingConnectionResource,
        "wsbox:websocket/websocket.connection": ConnectionResource,
    },
});

pub use self::wsbox::websocket::{log, types, websocket};
