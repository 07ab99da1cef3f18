/** @module Interface wsbox:websocket/websocket@0.1.2 **/
export type Request = import('./wsbox-websocket-types.js').Request;
export type Message = import('./wsbox-websocket-types.js').Message;
export type CloseFrame = import('./wsbox-websocket-types.js').CloseFrame;
export type ConnectionError = import('./wsbox-websocket-types.js').ConnectionError;
export type AcceptOptions = import('./wsbox-websocket-types.js').AcceptOptions;
export type RejectOptions = import('./wsbox-websocket-types.js').RejectOptions;
export type HandshakeError = import('./wsbox-websocket-types.js').HandshakeError;
export type Delivery = import('./wsbox-websocket-types.js').Delivery;
export type PublishOptions = import('./wsbox-websocket-types.js').PublishOptions;
export type TopicMessage = import('./wsbox-websocket-types.js').TopicMessage;
export type Event = import('./wsbox-websocket-types.js').Event;
export type Pollable = import('./wasi-io-poll.js').Pollable;

export class Connection {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  /**
  * The subprotocol agreed in the handshake, if any.
  */
  subprotocol(): string | undefined;
  /**
  * The `Sec-WebSocket-Extensions` value the host answered with
  * (e.g. `permessage-deflate`), if any extension was negotiated.
  */
  extensions(): string | undefined;
  /**
  * Wait for the next data message (`receiveDataMessage`). Suspends
  * this guest until one arrives; never blocks a host thread.
  */
  receive(): Message;
  /**
  * Wait as `receive` does, then return that message together with
  * the messages already received behind it, in order: at most 64
  * messages, and at most 64 KiB of payload unless the first message
  * alone is larger. A guest that answers a batch with one `send-all`
  * handles a burst in two host calls instead of two per message. The
  * close (or error) comes, as from `receive`, on the call after the
  * messages in front of it; the list is never empty.
  */
  receiveAll(): Array<Message>;
  /**
  * Send one message (`sendTextData` / `sendBinaryData`). Waits while
  * the socket cannot take more (backpressure).
  */
  send(message: Message): void;
  /**
  * Send several messages in one write (`sendDataMessages`).
  */
  sendAll(messages: Array<Message>): void;
  /**
  * Start the closing handshake (`sendCloseCode`). Keep calling
  * `receive` until it returns `close-request` (the peer's answer) or
  * `connection-closed`; the host drops the TCP connection if the
  * peer does not answer within its close timeout.
  */
  close(code: number, reason: string): void;
  /**
  * Send a ping (`sendPing`); its pong is not awaited. At most 125
  * bytes of payload.
  */
  ping(payload: Uint8Array): void;
  /**
  * This connection's id: opaque, unique among the connections of one
  * host run. Apps use it to address a connection, e.g. through a
  * topic of its own, and it is the `publisher` of its publishes.
  * With a broker (`--broker`), ids carry a random per-run host
  * prefix in their high bits, so they also differ across the hosts
  * sharing topics (they are then large numbers: above 2^53, keep
  * them as strings in JSON).
  */
  id(): bigint;
  /**
  * Subscribe this connection to `topic` (UTF-8, 1 to 256 bytes,
  * matched exactly). Subscribing again changes the delivery.
  * Topics are the host's: connections on every guest version share
  * them, across hot swaps.
  */
  subscribe(topic: string, delivery: Delivery): void;
  /**
  * Unsubscribe from `topic`; `false` if it was not subscribed.
  */
  unsubscribe(topic: string): boolean;
  /**
  * Publish `message` (text or binary; not pong) to every subscriber
  * of `topic` but this connection (unless `include-self`). Never
  * waits: a subscriber whose outgoing queue is over the host's
  * backpressure limit misses the message (counted and logged), or
  * is closed with 1008 if the host is configured so. Returns how
  * many subscribers of this host it was queued for. With a broker,
  * the message also goes to the other hosts' subscribers, in order
  * per publisher; they are not counted.
  */
  publish(topic: string, message: Message, options: PublishOptions): number;
  /**
  * How many connections of this host are subscribed to `topic`.
  * With a broker too this is the local count: connections on other
  * hosts sharing the topic are not counted.
  */
  subscriberCount(topic: string): number;
  /**
  * A pollable (`wasi:io/poll`) that is ready when `next-event` has
  * something to return. Poll it together with a
  * `wasi:clocks/monotonic-clock` deadline to wait for the first of a
  * client message, a delivered topic message and a timeout.
  */
  eventsReady(): Pollable;
  /**
  * The next event, without waiting: `none` when there is none yet.
  */
  nextEvent(): Event | undefined;
}

export class PendingConnection {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  /**
  * The parsed request (`pendingRequest`).
  */
  request(): Request;
  /**
  * Send `101 Switching Protocols` and open the connection
  * (`acceptRequestWith`).
  */
  accept(options: AcceptOptions): Connection;
  /**
  * Send an HTTP error response and close (`rejectRequestWith`).
  */
  reject(options: RejectOptions): void;
}
