"""A guest that only lets in clients with a token (the twin of examples/auth).

- Without `?token=secret` in the URL: `401 Unauthorized` with a
  `WWW-Authenticate: Bearer realm="wsbox"` header and a short body.
- Otherwise it accepts, choosing the subprotocol `chat.v1` if offered, greets
  with `welcome` and echoes every message.
- On the text `bye` it closes with 4000 `bye` and waits for the client's
  answering close, as the closing handshake asks.
"""

import wsbox


def handle(pending: wsbox.PendingConnection) -> None:
    request = pending.request()
    if request.query_param("token") != "secret":
        wsbox.log.info(f"rejecting {request.remote_address}")
        pending.reject(
            "missing or invalid token\n",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="wsbox"'},
        )
        return

    subprotocol = "chat.v1" if request.offers_subprotocol("chat.v1") else None
    conn = pending.accept(subprotocol=subprotocol)
    conn.send_text("welcome")

    while True:
        message = conn.receive()
        if message == wsbox.Text("bye"):
            conn.close(4000, "bye")
            # Drain until the client's close arrives (or it goes away).
            try:
                while True:
                    conn.receive()
            except wsbox.ConnectionEnded:
                return
        conn.send(message)


WitWorld = wsbox.export_handler(handle)
