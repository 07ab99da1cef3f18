//! Broadcast: a connection to path P (the query is ignored) subscribes to
//! topic P, and every data message it sends is published to P for every
//! other subscriber. The host writes each publish to the subscribers'
//! sockets itself, framed once; their guests are not woken.

use guest_sdk::PendingConnection;

guest_sdk::export_handler!(handle);

fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
    let topic = pending.request().path().to_owned();
    let conn = pending.accept()?;
    conn.subscribe(&topic)?;
    loop {
        let message = conn.receive()?; // ends with the client's close
        conn.publish(&topic, message)?;
    }
}
