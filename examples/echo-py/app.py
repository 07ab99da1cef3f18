"""The smallest wsbox guest in Python: accept every connection and send each
message back until the client closes (the twin of examples/echo)."""

import wsbox


def handle(pending: wsbox.PendingConnection) -> None:
    conn = pending.accept()
    while True:
        # Whatever has arrived (at least one message), echoed in one write.
        # Raises the client's CloseRequest (or ConnectionClosed), which ends
        # the handler normally.
        conn.send_messages(conn.receive_all())


WitWorld = wsbox.export_handler(handle)
