/** @module Interface wsbox:websocket/types@0.1.2 **/
/**
 * One HTTP header. Names are compared case-insensitively by the host;
 * values are raw bytes because HTTP does not promise they are UTF-8.
 */
export interface Header {
  /**
   * The header name as the client sent it (for responses: a valid
   * HTTP token).
   */
  name: string,
  /**
   * The header value, without surrounding whitespace.
   */
  value: Uint8Array,
}
/**
 * The client's opening handshake request, as the host parsed and
 * validated it (`pendingRequest` in the seed).
 */
export interface Request {
  /**
   * The request target: path and query, e.g. `/chat?room=1`.
   */
  path: string,
  /**
   * Every header of the request, in the order received.
   */
  headers: Array<Header>,
  /**
   * Subprotocols offered in `Sec-WebSocket-Protocol`, in the client's
   * order of preference.
   */
  subprotocols: Array<string>,
  /**
   * Names of the extensions offered in `Sec-WebSocket-Extensions`
   * (e.g. `permessage-deflate`), in the client's order.
   */
  extensions: Array<string>,
  /**
   * The peer's address as `ip:port`.
   */
  remoteAddress: string,
}
/**
 * A complete WebSocket data message (`DataMessage` in the seed).
 */
export type Message = MessageText | MessageBinary | MessagePong;
/**
 * A text message: always valid UTF-8 (the host checks it).
 */
export interface MessageText {
  tag: 'text',
  val: string,
}
/**
 * A binary message.
 */
export interface MessageBinary {
  tag: 'binary',
  val: Uint8Array,
}
/**
 * A pong control frame's payload. `receive` returns it only when the
 * guest asked for pongs at accept time (`onPong` in the seed);
 * `send` of a pong sends an unsolicited pong (a heartbeat, RFC 6455
 * section 5.5.3). At most 125 bytes.
 */
export interface MessagePong {
  tag: 'pong',
  val: Uint8Array,
}
/**
 * A close frame's code and reason.
 */
export interface CloseFrame {
  /**
   * The status code (RFC 6455 section 7.4), e.g. 1000 for a normal
   * closure. 1005 stands for a close frame that carried no code.
   */
  code: number,
  /**
   * The UTF-8 reason, possibly empty.
   */
  reason: string,
}
/**
 * Why `receive` (or a send) could not go on.
 */
export type ConnectionError = ConnectionErrorCloseRequest | ConnectionErrorConnectionClosed | ConnectionErrorInvalidArgument;
/**
 * The peer sent a close frame (`CloseRequest` in the seed). The
 * host has already answered it; the connection is closed once
 * `handle` returns.
 */
export interface ConnectionErrorCloseRequest {
  tag: 'close-request',
  val: CloseFrame,
}
/**
 * The connection is gone: the TCP connection dropped, the host
 * closed it for a protocol violation, or it was already closed
 * (`ConnectionClosed` in the seed).
 */
export interface ConnectionErrorConnectionClosed {
  tag: 'connection-closed',
}
/**
 * The call's arguments break a protocol rule, e.g. a close code that
 * may not be sent, a reason over 123 bytes, a ping payload over 125
 * bytes, or a message over the negotiated size limit. Nothing was
 * sent; the connection is still usable.
 */
export interface ConnectionErrorInvalidArgument {
  tag: 'invalid-argument',
  val: string,
}
/**
 * How a topic's messages reach a subscribed connection.
 * # Variants
 * 
 * ## `"socket"`
 * 
 * The host writes every message published to the topic straight to
 * this connection's socket, framed (and compressed) once per
 * publish, without waking the guest. The fast path.
 * ## `"guest"`
 * 
 * The host queues every message published to the topic for the
 * guest, which takes them from `connection.next-event` (with the
 * topic and the publisher) to filter, transform or keep state.
 */
export type Delivery = 'socket' | 'guest';
/**
 * Options of `connection.publish`.
 */
export interface PublishOptions {
  /**
   * Deliver to the publishing connection too, if it is subscribed.
   */
  includeSelf: boolean,
}
/**
 * A message published to a topic, delivered to a guest that subscribed
 * with `delivery::guest`.
 */
export interface TopicMessage {
  /**
   * The topic it was published to.
   */
  topic: string,
  /**
   * The message (text or binary).
   */
  message: Message,
  /**
   * The publishing connection's id (`connection.id`).
   */
  publisher: bigint,
}
/**
 * Something that happened on a connection, in the order it happened.
 */
export type Event = EventMessage | EventTopic | EventClosed;
/**
 * A message from the client (what `receive` returns).
 */
export interface EventMessage {
  tag: 'message',
  val: Message,
}
/**
 * A message published to a topic this guest subscribed to with
 * `delivery::guest`.
 */
export interface EventTopic {
  tag: 'topic',
  val: TopicMessage,
}
/**
 * The connection is ending: the close request (the peer's, or the
 * host's on shutdown or idle timeout) once, then
 * `connection-closed`.
 */
export interface EventClosed {
  tag: 'closed',
  val: ConnectionError,
}
/**
 * How to accept a pending connection (`AcceptRequest` in the seed).
 */
export interface AcceptOptions {
  /**
   * The subprotocol to answer with; it must be one the client offered.
   */
  subprotocol?: string,
  /**
   * Extra headers for the `101 Switching Protocols` response. Headers
   * the handshake itself sets (`Upgrade`, `Connection`,
   * `Sec-WebSocket-*`) are refused.
   */
  headers: Array<Header>,
  /**
   * Allow permessage-deflate on this connection if the client offered
   * it and the host has it enabled. `false` turns compression off for
   * this connection only.
   */
  compression: boolean,
  /**
   * Deliver pong frames to `receive` as `message::pong`.
   */
  receivePongs: boolean,
  /**
   * Tighten the host's limit on one message's size (bytes, after
   * decompression). The host's own limit still applies if lower.
   */
  maxMessageSize?: bigint,
}
/**
 * How to reject a pending connection (`RejectRequest` in the seed).
 */
export interface RejectOptions {
  /**
   * The HTTP status, 400-599.
   */
  status: number,
  /**
   * The reason phrase, e.g. `Unauthorized`. Empty means the standard
   * phrase for the status.
   */
  reason: string,
  /**
   * Extra response headers. `Content-Length` is set by the host.
   */
  headers: Array<Header>,
  /**
   * The response body.
   */
  body: Uint8Array,
}
/**
 * Why `accept` or `reject` failed.
 */
export type HandshakeError = HandshakeErrorSubprotocolNotOffered | HandshakeErrorInvalidHeader | HandshakeErrorInvalidStatus | HandshakeErrorAlreadyAnswered | HandshakeErrorConnectionClosed;
/**
 * The chosen subprotocol was not among those the client offered.
 */
export interface HandshakeErrorSubprotocolNotOffered {
  tag: 'subprotocol-not-offered',
  val: string,
}
/**
 * A header name or value is not valid HTTP, or is one the host
 * controls.
 */
export interface HandshakeErrorInvalidHeader {
  tag: 'invalid-header',
  val: string,
}
/**
 * The status is outside 400-599 or the reason phrase is not valid.
 */
export interface HandshakeErrorInvalidStatus {
  tag: 'invalid-status',
  val: string,
}
/**
 * `accept` or `reject` was already called on this connection.
 */
export interface HandshakeErrorAlreadyAnswered {
  tag: 'already-answered',
}
/**
 * The client went away before the response could be sent.
 */
export interface HandshakeErrorConnectionClosed {
  tag: 'connection-closed',
}
