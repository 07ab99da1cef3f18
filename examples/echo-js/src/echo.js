// The smallest wsbox guest in JavaScript: accept every connection and send
// each message back until the client closes (examples/echo, in JS).
import { handler } from "wsbox-guest";

export const handle = handler((pending) => {
  const conn = pending.accept();
  for (;;) {
    // Whatever has arrived (at least one message), echoed in one write.
    // Throws the client's close (CloseRequest) or ConnectionClosed, which
    // ends the handler normally.
    conn.sendAll(conn.receiveAll());
  }
});
