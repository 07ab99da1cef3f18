// A guest that only lets in clients with a token (examples/auth, in JS).
//
// - Without `?token=secret` in the URL: `401 Unauthorized` with a
//   `WWW-Authenticate: Bearer realm="wsbox"` header and a short body.
// - Otherwise it accepts, choosing the subprotocol `chat.v1` if offered,
//   greets with `welcome` and echoes every message.
// - On the text `bye` it closes with 4000 `bye` and waits for the client's
//   answering close, as the closing handshake asks.
import { handler, log } from "wsbox-guest";

export const handle = handler((pending) => {
  const request = pending.request();
  if (request.queryParam("token") !== "secret") {
    log.info(`rejecting ${request.remoteAddress}`);
    pending.reject({
      status: 401,
      headers: { "WWW-Authenticate": 'Bearer realm="wsbox"' },
      body: "missing or invalid token\n",
    });
    return;
  }

  const conn = pending.accept({
    subprotocol: request.offersSubprotocol("chat.v1") ? "chat.v1" : undefined,
  });
  conn.sendText("welcome");

  for (;;) {
    const message = conn.receive();
    if (message.isText && message.data === "bye") {
      conn.close(4000, "bye");
      // Drain until the client's close arrives (or it goes away).
      for (;;) conn.receive();
    }
    conn.send(message);
  }
});
