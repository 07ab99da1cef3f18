// Write wsbox WebSocket guests in JavaScript.
//
// A thin, idiomatic layer over the component bindings of the
// `wsbox:websocket/handler` world (wit/websocket.wit), mirroring the Rust
// `guest-sdk`: messages, errors as exceptions carrying the close code,
// accept/reject options with defaults, topics and events. Every call is
// synchronous: see README.md ("Why not async/await") for the reason.

import * as websocket from "wsbox:websocket/websocket@0.1.2";
import * as rawLog from "wsbox:websocket/log@0.1.2";
import * as monotonicClock from "wasi:clocks/monotonic-clock@0.2.12";
import * as wasiPoll from "wasi:io/poll@0.2.12";

// The QuickJS backend has neither TextEncoder nor TextDecoder.
const encoder = typeof TextEncoder === "function" ? new TextEncoder() : null;
const decoder = typeof TextDecoder === "function" ? new TextDecoder("utf-8", { fatal: true }) : null;

/** UTF-8 bytes of a string. */
export function utf8Encode(text) {
  if (encoder) return encoder.encode(text);
  const bytes = [];
  for (const char of text) {
    const c = char.codePointAt(0);
    if (c < 0x80) bytes.push(c);
    else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(bytes);
}

/** The string of UTF-8 bytes; throws `InvalidData` if they are not UTF-8. */
export function utf8Decode(bytes) {
  if (decoder) {
    try {
      return decoder.decode(bytes);
    } catch {
      throw new InvalidData("not valid UTF-8");
    }
  }
  let latin = "";
  for (const b of bytes) latin += String.fromCharCode(b);
  try {
    return decodeURIComponent(escape(latin));
  } catch {
    throw new InvalidData("not valid UTF-8");
  }
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (typeof data === "string") return utf8Encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new TypeError(`expected a string or bytes, got ${typeof data}`);
}

// ---------------------------------------------------------------- errors

/**
 * Why a receive or a send could not go on (`connection-error`). Catch the
 * subclasses: `CloseRequest` and `ConnectionClosed` are how a connection
 * ends (`isClosed`), `InvalidArgument` and `InvalidData` leave it usable.
 */
export class ConnectionError extends Error {
  /** Whether the connection has ended (the peer's close, or gone). */
  get isClosed() {
    return false;
  }
}

/**
 * The peer sent a close frame (`CloseRequest` in Haskell's websockets).
 * The host has already answered it. `code` 1005 means the frame carried
 * no code.
 */
export class CloseRequest extends ConnectionError {
  constructor(code, reason = "") {
    super(reason ? `the peer closed the connection (${code} "${reason}")` : `the peer closed the connection (${code})`);
    this.name = "CloseRequest";
    /** The peer's status code (RFC 6455 section 7.4). */
    this.code = code;
    /** The peer's reason, possibly empty. */
    this.reason = reason;
  }
  get isClosed() {
    return true;
  }
}

/**
 * The connection is gone: the peer dropped it, the host closed it for a
 * protocol violation or a timeout, or it was already closed.
 */
export class ConnectionClosed extends ConnectionError {
  constructor() {
    super("the connection is closed");
    this.name = "ConnectionClosed";
  }
  get isClosed() {
    return true;
  }
}

/**
 * The call broke a protocol rule (a close code that may not be sent, a
 * reason over 123 bytes, a ping over 125 bytes, a message over the size
 * limit...). Nothing was sent; the connection is still usable.
 */
export class InvalidArgument extends ConnectionError {
  constructor(why) {
    super(`invalid argument: ${why}`);
    this.name = "InvalidArgument";
  }
}

/**
 * A received message could not be converted as asked (binary data that is
 * not UTF-8, JSON that does not parse). Raised by the SDK, not the host;
 * the connection is still usable.
 */
export class InvalidData extends ConnectionError {
  constructor(why) {
    super(`invalid data: ${why}`);
    this.name = "InvalidData";
  }
}

/**
 * Why `accept` or `reject` failed. `kind` is the WIT case:
 * `subprotocol-not-offered`, `invalid-header`, `invalid-status`,
 * `already-answered` or `connection-closed`; `detail` its text, if any.
 */
export class HandshakeError extends Error {
  constructor(kind, detail) {
    super(detail === undefined ? `handshake failed: ${kind}` : `handshake failed: ${kind}: ${detail}`);
    this.name = "HandshakeError";
    this.kind = kind;
    this.detail = detail;
  }
  /** The client went away before the answer: a normal end. */
  get isClosed() {
    return this.kind === "connection-closed";
  }
}

// The bindings throw an Error whose `payload` is the WIT error variant.
function payloadOf(error) {
  const payload = error && typeof error === "object" && "payload" in error ? error.payload : error;
  return payload && typeof payload === "object" && typeof payload.tag === "string" ? payload : null;
}

/** A `connection-error` variant (`{tag, val}`) as an SDK exception. */
export function connectionErrorFrom(payload) {
  switch (payload.tag) {
    case "close-request":
      return new CloseRequest(payload.val.code, payload.val.reason);
    case "connection-closed":
      return new ConnectionClosed();
    case "invalid-argument":
      return new InvalidArgument(payload.val);
    default:
      return new ConnectionError(`unknown connection error ${payload.tag}`);
  }
}

function connectionCall(call) {
  try {
    return call();
  } catch (error) {
    const payload = payloadOf(error);
    throw payload ? connectionErrorFrom(payload) : error;
  }
}

function handshakeCall(call) {
  try {
    return call();
  } catch (error) {
    const payload = payloadOf(error);
    throw payload ? new HandshakeError(payload.tag, payload.val) : error;
  }
}

// -------------------------------------------------------------- messages

/**
 * A complete WebSocket message: `kind` is `"text"` (`data` a string),
 * `"binary"` (`data` a Uint8Array) or `"pong"` (a pong's payload, received
 * only with `receivePongs`; sending one sends an unsolicited pong).
 */
export class Message {
  constructor(kind, data) {
    this.kind = kind;
    this.data = data;
  }
  /** A text message. */
  static text(text) {
    return new Message("text", String(text));
  }
  /** A binary message (from a Uint8Array, ArrayBuffer, view or string). */
  static binary(bytes) {
    return new Message("binary", toBytes(bytes));
  }
  /** A pong (at most 125 bytes). */
  static pong(bytes = new Uint8Array(0)) {
    return new Message("pong", toBytes(bytes));
  }
  /** A message of the bindings (`{tag, val}`). */
  static fromRaw(raw) {
    return new Message(raw.tag, raw.val);
  }
  get isText() {
    return this.kind === "text";
  }
  get isBinary() {
    return this.kind === "binary";
  }
  get isPong() {
    return this.kind === "pong";
  }
  /** The text of a text message; binary data decoded as UTF-8 (`InvalidData` if it is not). */
  text() {
    return typeof this.data === "string" ? this.data : utf8Decode(this.data);
  }
  /** The payload as bytes, whatever the kind. */
  bytes() {
    return toBytes(this.data);
  }
  /** The payload parsed as JSON (`InvalidData` if it does not parse). */
  json() {
    const text = this.text();
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new InvalidData(`invalid JSON: ${error.message}`);
    }
  }
  /** The message for the bindings (`{tag, val}`). */
  toRaw() {
    return { tag: this.kind, val: this.kind === "text" ? this.data : toBytes(this.data) };
  }
}

/** A string is text, bytes are binary, a Message or `{tag, val}` itself. */
function messageToRaw(message) {
  if (message instanceof Message) return message.toRaw();
  if (typeof message === "string") return { tag: "text", val: message };
  if (message && typeof message === "object" && typeof message.tag === "string") return message;
  return { tag: "binary", val: toBytes(message) };
}

// --------------------------------------------------------------- request

function percentDecode(text) {
  const plus = text.replace(/\+/g, " ");
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus;
  }
}

/** The client's opening handshake (`pendingRequest`). */
export class Request {
  constructor(raw) {
    /** The request target: path and query, e.g. `/chat?room=1`. */
    this.target = raw.path;
    /** Every header (`{name, value: Uint8Array}`), in the order received. */
    this.headers = raw.headers;
    /** Subprotocols offered, in the client's order of preference. */
    this.subprotocols = raw.subprotocols;
    /** Extension names offered (e.g. `permessage-deflate`). */
    this.extensions = raw.extensions;
    /** The peer's address as `ip:port`. */
    this.remoteAddress = raw.remoteAddress;
  }
  /** The path without the query. */
  get path() {
    const at = this.target.indexOf("?");
    return at < 0 ? this.target : this.target.slice(0, at);
  }
  /** The raw query after `?`, or null. */
  get query() {
    const at = this.target.indexOf("?");
    return at < 0 ? null : this.target.slice(at + 1);
  }
  /** The query's `[name, value]` pairs, percent-decoded (`+` is a space), in order. */
  queryPairs() {
    return (this.query ?? "")
      .split("&")
      .filter((pair) => pair !== "")
      .map((pair) => {
        const at = pair.indexOf("=");
        return at < 0 ? [percentDecode(pair), ""] : [percentDecode(pair.slice(0, at)), percentDecode(pair.slice(at + 1))];
      });
  }
  /** The first value of query parameter `name`, percent-decoded, or null. */
  queryParam(name) {
    const pair = this.queryPairs().find(([n]) => n === name);
    return pair ? pair[1] : null;
  }
  /** The raw bytes of every value of header `name` (case-insensitive). */
  headerValues(name) {
    const lower = name.toLowerCase();
    return this.headers.filter((h) => h.name.toLowerCase() === lower).map((h) => h.value);
  }
  /** The first value of header `name` as text (UTF-8), or null if absent or not UTF-8. */
  header(name) {
    const [value] = this.headerValues(name);
    if (value === undefined) return null;
    try {
      return utf8Decode(value);
    } catch {
      return null;
    }
  }
  /** Whether the client offered subprotocol `name`. */
  offersSubprotocol(name) {
    return this.subprotocols.includes(name);
  }
}

// ------------------------------------------------------------- handshake

function headersToRaw(headers) {
  if (!headers) return [];
  const entries =
    headers instanceof Map ? [...headers] : Array.isArray(headers) ? headers : Object.entries(headers);
  return entries.map((entry) =>
    Array.isArray(entry)
      ? { name: String(entry[0]), value: toBytes(entry[1]) }
      : { name: String(entry.name), value: toBytes(entry.value) },
  );
}

/** A client waiting for the answer to its opening handshake (`PendingConnection`). */
export class PendingConnection {
  constructor(raw) {
    this.raw = raw;
    this.cachedRequest = null;
  }
  /** The parsed request (`pendingRequest`). */
  request() {
    this.cachedRequest ??= new Request(this.raw.request());
    return this.cachedRequest;
  }
  /**
   * Send `101 Switching Protocols` and open the connection (`acceptRequestWith`).
   * Options, all optional: `subprotocol` (one the client offered), `headers`
   * (object, Map or `[name, value]` pairs), `compression` (default true),
   * `receivePongs` (default false), `maxMessageSize` (bytes; only tightens
   * the host's limit). Throws `HandshakeError`.
   */
  accept(options = {}) {
    const raw = {
      subprotocol: options.subprotocol ?? undefined,
      headers: headersToRaw(options.headers),
      compression: options.compression ?? true,
      receivePongs: options.receivePongs ?? false,
      maxMessageSize: options.maxMessageSize == null ? undefined : BigInt(options.maxMessageSize),
    };
    return new Connection(handshakeCall(() => this.raw.accept(raw)));
  }
  /**
   * Send an HTTP error response and close (`rejectRequestWith`). Either a
   * body (string or bytes; status 400) or options: `status` (400-599,
   * default 400), `reason` (default: the standard phrase), `headers`,
   * `body`. Throws `HandshakeError`.
   */
  reject(bodyOrOptions = {}) {
    const options =
      typeof bodyOrOptions === "string" || bodyOrOptions instanceof Uint8Array ? { body: bodyOrOptions } : bodyOrOptions;
    const raw = {
      status: options.status ?? 400,
      reason: options.reason ?? "",
      headers: headersToRaw(options.headers),
      body: toBytes(options.body ?? ""),
    };
    handshakeCall(() => this.raw.reject(raw));
  }
}

// ------------------------------------------------------------ connection

/** Topic delivery: straight to the client's socket (the default, the fast path) or to this guest's `nextEvent`. */
export const Delivery = Object.freeze({ Socket: "socket", Guest: "guest" });

// Topics and events arrived in wsbox:websocket@0.1.1; a component built
// against 0.1.0 (the QuickJS flavour) has no such methods.
function since011(raw, method) {
  if (typeof raw[method] !== "function") {
    throw new Error(
      `${method} needs wsbox:websocket@0.1.1 (topics and events), which this component was not built against ` +
        "(the QuickJS flavour is built against 0.1.0: see the SDK's README)",
    );
  }
  return raw;
}

/** An open WebSocket connection (`Connection`). The host handles control frames. */
export class Connection {
  constructor(raw) {
    this.raw = raw;
  }
  /** The subprotocol agreed in the handshake, or null. */
  get subprotocol() {
    return this.raw.subprotocol() ?? null;
  }
  /** The negotiated `Sec-WebSocket-Extensions` value, or null. */
  get extensions() {
    return this.raw.extensions() ?? null;
  }
  /**
   * Wait for the next message (`receiveDataMessage`). Throws `CloseRequest`
   * when the peer closes, `ConnectionClosed` when it is gone. Blocks the
   * whole JS engine until a message arrives.
   */
  receive() {
    return Message.fromRaw(connectionCall(() => this.raw.receive()));
  }
  /**
   * Wait for the next message, then return it with the messages already
   * received behind it, in order: never empty; at most 64 messages, and
   * 64 KiB unless the first alone is larger. Answer a batch with one
   * `sendAll` to handle a burst in two host calls instead of two per
   * message. Throws as `receive` does, on the call after the messages in
   * front of the close. (Built against 0.1.0, the QuickJS flavour, it
   * returns one message: `[receive()]`.)
   */
  receiveAll() {
    if (typeof this.raw.receiveAll !== "function") return [this.receive()];
    return connectionCall(() => this.raw.receiveAll()).map((raw) => Message.fromRaw(raw));
  }
  /** The next text or binary message (pongs skipped). */
  receiveData() {
    for (;;) {
      const message = this.receive();
      if (!message.isPong) return message;
    }
  }
  /** The next text or binary message as text (`InvalidData` if binary and not UTF-8). */
  receiveText() {
    return this.receiveData().text();
  }
  /** The next text or binary message as bytes. */
  receiveBytes() {
    return this.receiveData().bytes();
  }
  /** The next text or binary message parsed as JSON (`InvalidData` if it does not parse). */
  receiveJson() {
    return this.receiveData().json();
  }
  /** Send one message: a `Message`, a string (text) or bytes (binary). Waits while the socket is full. */
  send(message) {
    connectionCall(() => this.raw.send(messageToRaw(message)));
  }
  /** Send a text message. */
  sendText(text) {
    this.send(Message.text(text));
  }
  /** Send a binary message. */
  sendBinary(bytes) {
    this.send(Message.binary(bytes));
  }
  /** Send `value` as JSON text. */
  sendJson(value) {
    this.sendText(JSON.stringify(value));
  }
  /** Send several messages in one write (`sendDataMessages`). */
  sendAll(messages) {
    const raw = Array.from(messages, messageToRaw);
    connectionCall(() => this.raw.sendAll(raw));
  }
  /**
   * Start the closing handshake (`sendCloseCode`; default 1000, no reason).
   * Then keep receiving until `CloseRequest` or `ConnectionClosed`.
   */
  close(code = 1000, reason = "") {
    connectionCall(() => this.raw.close(code, reason));
  }
  /** Send a ping (at most 125 bytes); its pong is not awaited. */
  ping(payload = new Uint8Array(0)) {
    connectionCall(() => this.raw.ping(toBytes(payload)));
  }
  /** Send an unsolicited pong (a heartbeat), at most 125 bytes. */
  pong(payload = new Uint8Array(0)) {
    this.send(Message.pong(payload));
  }

  // Topics and events (wsbox:websocket@0.1.1).

  /** This connection's id (a bigint: with a broker ids exceed 2^53). */
  get id() {
    return BigInt(since011(this.raw, "id").id());
  }
  /** Subscribe to `topic` (1-256 bytes, exact match); `delivery` "socket" (default) or "guest". */
  subscribe(topic, delivery = Delivery.Socket) {
    connectionCall(() => since011(this.raw, "subscribe").subscribe(topic, delivery));
  }
  /** Unsubscribe from `topic`; false if it was not subscribed. */
  unsubscribe(topic) {
    return connectionCall(() => since011(this.raw, "unsubscribe").unsubscribe(topic));
  }
  /**
   * Publish `message` (string, bytes or Message) to every other subscriber
   * of `topic` (and this one with `{includeSelf: true}`). Never waits;
   * returns how many subscribers of this host it was queued for.
   */
  publish(topic, message, options = {}) {
    const raw = messageToRaw(message);
    const publishOptions = { includeSelf: options.includeSelf ?? false };
    return connectionCall(() => since011(this.raw, "publish").publish(topic, raw, publishOptions));
  }
  /** How many connections of this host subscribe to `topic`. */
  subscriberCount(topic) {
    return connectionCall(() => since011(this.raw, "subscriberCount").subscriberCount(topic));
  }
  /**
   * The next event without waiting, or null: `{type: "message", message}`
   * or `{type: "topic", topic, message, publisher}`. Throws like `receive`
   * when the connection ends.
   */
  pollEvent() {
    const event = since011(this.raw, "nextEvent").nextEvent();
    if (event == null) return null;
    switch (event.tag) {
      case "message":
        return { type: "message", message: Message.fromRaw(event.val) };
      case "topic":
        return {
          type: "topic",
          topic: event.val.topic,
          message: Message.fromRaw(event.val.message),
          publisher: BigInt(event.val.publisher),
        };
      case "closed":
        throw connectionErrorFrom(event.val);
      default:
        throw new ConnectionError(`unknown event ${event.tag}`);
    }
  }
  /**
   * Wait for the first of a client message, a delivered topic message and,
   * if `timeoutMs` is given, the timeout (`{type: "timeout"}`). Throws like
   * `receive` when the connection ends. Blocks the whole JS engine while it
   * waits (wasi:io/poll).
   */
  nextEvent(timeoutMs) {
    const now = this.pollEvent();
    if (now) return now;
    const ready = since011(this.raw, "eventsReady").eventsReady();
    const deadline =
      timeoutMs == null ? null : monotonicClock.subscribeDuration(BigInt(Math.max(0, Math.round(timeoutMs * 1e6))));
    for (;;) {
      if (deadline) {
        const woken = wasiPoll.poll([ready, deadline]);
        if (!Array.from(woken).includes(0)) return { type: "timeout" };
      } else {
        ready.block();
      }
      const event = this.pollEvent();
      if (event) return event;
    }
  }
  /** The raw `wasi:io/poll` pollable that is ready when `pollEvent` has something. */
  eventsReady() {
    return since011(this.raw, "eventsReady").eventsReady();
  }
}

// ------------------------------------------------------------------- log

function logAt(level) {
  return (...parts) => rawLog.log(level, parts.map((p) => (typeof p === "string" ? p : String(p))).join(" "));
}

/** Lines into the host's log, tagged with the connection. */
export const log = Object.freeze({
  trace: logAt("trace"),
  debug: logAt("debug"),
  info: logAt("info"),
  warn: logAt("warn"),
  error: logAt("error"),
});

// --------------------------------------------------------------- handler

function finish(error) {
  if (error && error.isClosed === true) return; // the normal end of a connection
  // SpiderMonkey's `stack` leaves out the message: give both, on one line.
  const where = error && typeof error.stack === "string" ? error.stack.split("\n")[0] : "";
  log.error(`handler failed: ${error}${where ? ` (at ${where})` : ""}`);
}

/**
 * Wrap `fn(pending: PendingConnection)` as the component's `handle` export:
 * `export const handle = handler((pending) => { ... })`. `fn` may be async.
 * A thrown `CloseRequest`/`ConnectionClosed` (or a `HandshakeError` of a
 * client that went away) ends the connection normally; anything else is
 * logged at error level. Either way the host then ends the connection
 * (1000 unless the guest closed it).
 */
export function handler(fn) {
  return function handle(rawPending) {
    let result;
    try {
      result = fn(new PendingConnection(rawPending));
    } catch (error) {
      finish(error);
      return undefined;
    }
    if (result && typeof result.then === "function") {
      return result.then(
        () => undefined,
        (error) => finish(error),
      );
    }
    return undefined;
  };
}

/** The raw bindings' resource classes, for code that mixes the SDK with them. */
export const bindings = websocket;
