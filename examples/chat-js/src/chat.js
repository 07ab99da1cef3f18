// Chat rooms (examples/chat, in JS): a connection to
// `/chat/ROOM?nick=NAME` joins room ROOM as NAME. Messages are JSON text:
//
// - the client sends `{"type":"say","text":"..."}`;
// - everyone in the room (the sender too) gets
//   `{"type":"said","from":NICK,"text":"..."}`;
// - a newcomer gets `{"type":"welcome","members":N}`, the others
//   `{"type":"joined","nick":NICK,"members":N}`, and
//   `{"type":"left","nick":NICK,"members":N}` when a member leaves;
// - a member silent for 60 s (or `&ping_after=SECONDS`) gets
//   `{"type":"ping"}` from this guest's own timer;
// - anything else gets `{"type":"error","error":"..."}`.
//
// Without a valid nickname (1 to 32 letters, digits, `-` or `_`) the
// handshake is rejected with 400. Room traffic goes through a host topic
// (`chat/ROOM`) delivered straight to every member's socket.
import { handler } from "wsbox-guest";

const json = (value) => JSON.stringify(value);

const validNick = (nick) => /^[A-Za-z0-9_-]{1,32}$/.test(nick);

/** The text of a `say` message, or throws why it is not one. */
function parseSay(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`not a chat message: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || value.type !== "say" || typeof value.text !== "string") {
    throw new Error('not a chat message: expected {"type":"say","text":"..."}');
  }
  return value.text;
}

export const handle = handler((pending) => {
  const request = pending.request();
  const room = request.path.startsWith("/chat/") ? request.path.slice("/chat/".length) : "";
  if (room === "") {
    pending.reject({ status: 404, body: "no such room: use /chat/ROOM\n" });
    return;
  }
  const nick = request.queryParam("nick") ?? "";
  if (!validNick(nick)) {
    pending.reject({ status: 400, body: "a nickname is required: ?nick= 1 to 32 letters, digits, - or _\n" });
    return;
  }
  const pingAfter = request.queryParam("ping_after");
  const pingAfterMs = /^[0-9]+$/.test(pingAfter ?? "") ? Number(pingAfter) * 1000 : 60_000;
  const topic = `chat/${room}`;

  const conn = pending.accept();
  conn.subscribe(topic);
  const members = conn.subscriberCount(topic);
  conn.sendText(json({ type: "welcome", members }));
  conn.publish(topic, json({ type: "joined", nick, members }));

  try {
    let lastHeard = Date.now();
    for (;;) {
      const timeout = Math.max(0, pingAfterMs - (Date.now() - lastHeard));
      const event = conn.nextEvent(timeout);
      if (event.type === "message") {
        lastHeard = Date.now();
        if (!event.message.isText) {
          conn.sendText(json({ type: "error", error: "send JSON text messages" }));
          continue;
        }
        let text;
        try {
          text = parseSay(event.message.data);
        } catch (error) {
          conn.sendText(json({ type: "error", error: error.message }));
          continue;
        }
        conn.publish(topic, json({ type: "said", from: nick, text }), { includeSelf: true });
      } else if (event.type === "timeout") {
        conn.sendText(json({ type: "ping" }));
        lastHeard = Date.now();
      }
    }
  } finally {
    // However the loop ended (normally: the client's close), say goodbye.
    conn.unsubscribe(topic);
    conn.publish(topic, json({ type: "left", nick, members: conn.subscriberCount(topic) }));
  }
});
