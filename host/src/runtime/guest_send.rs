//! The guest's `send` and `send-all`, linked over the generated bindings'
//! so a message is copied once, from the guest's memory into the
//! connection's write buffer. The generated ones lift each message into a
//! host `String` or `Vec` first (and the list into a `Vec`): an allocation
//! and a copy per message, freed as soon as the frame is queued.

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Lift, Linker, Resource, WasmList, WasmStr};

use super::GuestState;
use super::bindings::ConnectionResource;
use super::host_impl::connection_error;
use crate::protocol::connection::Outgoing;

/// The instance the generated bindings link the `websocket` interface as
/// (the WIT package's name and version; a test checks it against the WIT).
const WEBSOCKET_INSTANCE: &str = "wsbox:websocket/websocket@0.1.2";

/// A WIT `message` still in the guest's memory: bounds checked when lifted,
/// read (and a text's UTF-8 checked) when queued.
#[derive(ComponentType, Lift)]
#[component(variant)]
enum GuestMessage {
    #[component(name = "text")]
    Text(WasmStr),
    #[component(name = "binary")]
    Binary(WasmList<u8>),
    #[component(name = "pong")]
    Pong(WasmList<u8>),
}

impl GuestMessage {
    /// The message as borrowed from the guest's memory. A text that is not
    /// UTF-8 is an error (a trap: the guest broke the canonical ABI), as
    /// when the generated bindings lift a `string`.
    fn view<'a>(
        &self,
        store: &'a StoreContextMut<'_, GuestState>,
    ) -> wasmtime::Result<Outgoing<'a>> {
        Ok(match self {
            GuestMessage::Text(text) => Outgoing::Text(text.to_str(store)?),
            GuestMessage::Binary(data) => Outgoing::Binary(data.as_le_slice(store).into()),
            GuestMessage::Pong(data) => Outgoing::Pong(data.as_le_slice(store).into()),
        })
    }
}

/// Replace the generated `send` and `send-all` in `linker` (which already
/// has the generated `websocket` interface) with the copy-once ones.
pub(super) fn link(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = link_shadowing(linker);
    linker.allow_shadowing(false);
    linked
}

fn link_shadowing(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    let mut websocket = linker.instance(WEBSOCKET_INSTANCE)?;
    websocket.func_wrap_async(
        "[method]connection.send",
        |mut store, (_this, message): (Resource<ConnectionResource>, GuestMessage)| {
            Box::new(async move {
                let conn = store.data_mut().conn().clone();
                let result = conn.send(message.view(&store)?).await;
                Ok((result.map_err(connection_error),))
            })
        },
    )?;
    websocket.func_wrap_async(
        "[method]connection.send-all",
        |mut store, (_this, messages): (Resource<ConnectionResource>, WasmList<GuestMessage>)| {
            Box::new(async move {
                let conn = store.data_mut().conn().clone();
                // Lifting an element needs the store mutably, reading the
                // memory behind it shared: two passes. A batch of one (the
                // usual reply) needs no list on the host.
                let single = match messages.len() {
                    1 => messages.get(&mut store, 0).transpose()?,
                    _ => None,
                };
                let result = if let Some(message) = single {
                    conn.send(message.view(&store)?).await
                } else {
                    // Sized up front: collecting through `Result` would
                    // grow each list by doubling.
                    let mut lifted = Vec::with_capacity(messages.len());
                    for message in messages.iter(&mut store)? {
                        lifted.push(message?);
                    }
                    let mut batch = Vec::with_capacity(lifted.len());
                    for message in &lifted {
                        batch.push(message.view(&store)?);
                    }
                    conn.send_all(batch).await
                };
                Ok((result.map_err(connection_error),))
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_name_is_the_wit_package_s() {
        let wit = include_str!("../../../wit/websocket.wit");
        let package = wit
            .lines()
            .find_map(|line| line.trim().strip_prefix("package "))
            .map(|name| name.trim_end_matches(';'));
        let (namespace, version) = package.and_then(|name| name.split_once('@')).unwrap();
        assert_eq!(
            WEBSOCKET_INSTANCE,
            format!("{namespace}/websocket@{version}")
        );
    }
}
