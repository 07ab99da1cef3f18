//! The smallest wsbox guest: accept every connection and send each message
//! back until the client closes.

use guest_sdk::PendingConnection;

guest_sdk::export_handler!(handle);

fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
    let conn = pending.accept()?;
    loop {
        // Whatever has arrived (at least one message), echoed in one write:
        // two host calls per burst, not two per message. Fails with the
        // client's close (or a dropped connection), which ends the handler
        // normally.
        let messages = conn.receive_all()?;
        conn.send_messages(messages)?;
    }
}
