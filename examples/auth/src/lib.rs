//! A guest that only lets in clients with a token.
//!
//! - Without `?token=secret` in the URL: `401 Unauthorized` with a
//!   `WWW-Authenticate: Bearer realm="wsbox"` header and a short body.
//! - Otherwise it accepts, choosing the subprotocol `chat.v1` if offered,
//!   greets with `welcome` and echoes every message.
//! - On the text `bye` it closes with 4000 `bye` and waits for the client's
//!   answering close, as the closing handshake asks.

use guest_sdk::{AcceptOptions, Message, PendingConnection, RejectOptions};

guest_sdk::export_handler!(handle);

fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
    let request = pending.request();
    if request.query_param("token").as_deref() != Some("secret") {
        guest_sdk::log::info(format!("rejecting {}", request.remote_address()));
        let rejection = RejectOptions::new(401)
            .header("WWW-Authenticate", r#"Bearer realm="wsbox""#)
            .body("missing or invalid token\n");
        pending.reject_with(rejection)?;
        return Ok(());
    }

    let mut options = AcceptOptions::default();
    if request.offers_subprotocol("chat.v1") {
        options = options.subprotocol("chat.v1");
    }
    let conn = pending.accept_with(options)?;
    conn.send_text("welcome")?;

    loop {
        match conn.receive()? {
            Message::Text(text) if text == "bye" => {
                conn.send_close_code(4000, "bye")?;
                // Drain until the client's close arrives (or it goes away).
                while conn.receive().is_ok() {}
                return Ok(());
            }
            message => conn.send(message)?,
        }
    }
}
