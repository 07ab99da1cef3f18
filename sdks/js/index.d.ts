// Types of wsbox-guest (index.js). The raw bindings' types, generated from
// wit/websocket.wit by `jco types`, are in bindings/ (see README.md).

/// <reference path="./bindings/modules.d.ts" />

import type * as raw from "./bindings/interfaces/wsbox-websocket-websocket.js";
import type { Pollable } from "./bindings/interfaces/wasi-io-poll.js";

/** UTF-8 bytes of a string. */
export function utf8Encode(text: string): Uint8Array;
/** The string of UTF-8 bytes; throws `InvalidData` if they are not UTF-8. */
export function utf8Decode(bytes: Uint8Array): string;

/** What `send`, `sendAll` and `publish` take: a string is text, bytes are binary. */
export type Sendable = Message | string | Uint8Array | ArrayBuffer | ArrayBufferView | raw.Message;

/** Header values: text (sent as UTF-8) or raw bytes. */
export type HeaderValue = string | Uint8Array;
/** Extra headers: an object, a Map, or `[name, value]` pairs (names may repeat). */
export type Headers =
  | Record<string, HeaderValue>
  | Map<string, HeaderValue>
  | Array<[string, HeaderValue] | { name: string; value: HeaderValue }>;

/** Why a receive or a send could not go on (`connection-error`). */
export class ConnectionError extends Error {
  /** Whether the connection has ended (`CloseRequest` or `ConnectionClosed`). */
  readonly isClosed: boolean;
}
/** The peer sent a close frame; the host has already answered it. */
export class CloseRequest extends ConnectionError {
  constructor(code: number, reason?: string);
  /** The peer's status code; 1005 when its close frame carried none. */
  readonly code: number;
  /** The peer's reason, possibly empty. */
  readonly reason: string;
  readonly isClosed: true;
}
/** The connection is gone (dropped, closed by the host, or already closed). */
export class ConnectionClosed extends ConnectionError {
  readonly isClosed: true;
}
/** A call broke a protocol rule; nothing was sent, the connection is still usable. */
export class InvalidArgument extends ConnectionError {
  constructor(why: string);
}
/** A received message could not be converted as asked; the connection is still usable. */
export class InvalidData extends ConnectionError {
  constructor(why: string);
}
/** Why `accept` or `reject` failed. */
export class HandshakeError extends Error {
  constructor(kind: HandshakeError["kind"], detail?: string);
  readonly kind:
    | "subprotocol-not-offered"
    | "invalid-header"
    | "invalid-status"
    | "already-answered"
    | "connection-closed";
  readonly detail: string | undefined;
  /** The client went away before the answer (a normal end). */
  readonly isClosed: boolean;
}
/** A `connection-error` variant of the bindings as an SDK exception. */
export function connectionErrorFrom(payload: import("./bindings/interfaces/wsbox-websocket-types.js").ConnectionError): ConnectionError;

/** A complete WebSocket message. */
export class Message {
  constructor(kind: "text", data: string);
  constructor(kind: "binary" | "pong", data: Uint8Array);
  static text(text: string): Message;
  static binary(bytes: Uint8Array | ArrayBuffer | ArrayBufferView | string): Message;
  static pong(bytes?: Uint8Array | ArrayBuffer | ArrayBufferView | string): Message;
  static fromRaw(raw: raw.Message): Message;
  readonly kind: "text" | "binary" | "pong";
  /** A string for text, a Uint8Array otherwise. */
  readonly data: string | Uint8Array;
  readonly isText: boolean;
  readonly isBinary: boolean;
  readonly isPong: boolean;
  /** The text; binary data decoded as UTF-8 (`InvalidData` if it is not). */
  text(): string;
  /** The payload as bytes. */
  bytes(): Uint8Array;
  /** The payload parsed as JSON (`InvalidData` if it does not parse). */
  json(): unknown;
  toRaw(): raw.Message;
}

/** The client's opening handshake. */
export class Request {
  /** Path and query, e.g. `/chat?room=1`. */
  readonly target: string;
  readonly headers: Array<{ name: string; value: Uint8Array }>;
  readonly subprotocols: string[];
  readonly extensions: string[];
  /** `ip:port`. */
  readonly remoteAddress: string;
  /** The path without the query. */
  readonly path: string;
  /** The raw query after `?`, or null. */
  readonly query: string | null;
  /** `[name, value]` pairs, percent-decoded, in order. */
  queryPairs(): Array<[string, string]>;
  /** The first value of a query parameter, percent-decoded, or null. */
  queryParam(name: string): string | null;
  /** Every value of a header (case-insensitive), as bytes. */
  headerValues(name: string): Uint8Array[];
  /** The first value of a header as UTF-8 text, or null. */
  header(name: string): string | null;
  offersSubprotocol(name: string): boolean;
}

/** How to accept; every field is optional. */
export interface AcceptOptions {
  /** One the client offered. Default: none. */
  subprotocol?: string;
  /** Extra `101` response headers. Default: none. */
  headers?: Headers;
  /** Allow permessage-deflate if offered and enabled on the host. Default: true. */
  compression?: boolean;
  /** Deliver pongs to `receive` as `Message` of kind `pong`. Default: false. */
  receivePongs?: boolean;
  /** Tighten the host's message size limit (bytes). Default: the host's. */
  maxMessageSize?: number | bigint;
}

/** How to reject; every field is optional. */
export interface RejectOptions {
  /** 400-599. Default: 400. */
  status?: number;
  /** Default: the standard phrase for the status. */
  reason?: string;
  headers?: Headers;
  /** Default: empty. */
  body?: string | Uint8Array;
}

/** A client waiting for the answer to its opening handshake. */
export class PendingConnection {
  constructor(raw: raw.PendingConnection);
  readonly raw: raw.PendingConnection;
  request(): Request;
  /** Throws `HandshakeError`. */
  accept(options?: AcceptOptions): Connection;
  /** A body (status 400) or options. Throws `HandshakeError`. */
  reject(bodyOrOptions?: string | Uint8Array | RejectOptions): void;
}

/** How a topic's messages reach this connection. */
export type Delivery = "socket" | "guest";
export const Delivery: { readonly Socket: "socket"; readonly Guest: "guest" };

/** What `nextEvent` and `pollEvent` return. */
export type Event =
  | { type: "message"; message: Message }
  | { type: "topic"; topic: string; message: Message; publisher: bigint }
  | { type: "timeout" };

/** An open WebSocket connection. Every method blocks the JS engine while it waits. */
export class Connection {
  constructor(raw: raw.Connection);
  readonly raw: raw.Connection;
  readonly subprotocol: string | null;
  readonly extensions: string | null;
  /** Throws `CloseRequest` or `ConnectionClosed` when the connection ends. */
  receive(): Message;
  /**
   * The next message and the messages already received behind it, in order
   * (never empty; at most 64 messages, and 64 KiB unless the first alone is
   * larger). One `sendAll` of the batch answers a burst in two host calls.
   */
  receiveAll(): Message[];
  /** Pongs skipped. */
  receiveData(): Message;
  receiveText(): string;
  receiveBytes(): Uint8Array;
  receiveJson(): unknown;
  send(message: Sendable): void;
  sendText(text: string): void;
  sendBinary(bytes: Uint8Array | ArrayBuffer | ArrayBufferView): void;
  sendJson(value: unknown): void;
  /** One write. */
  sendAll(messages: Iterable<Sendable>): void;
  /** Default 1000, no reason; then keep receiving until the peer's close. */
  close(code?: number, reason?: string): void;
  ping(payload?: Uint8Array | string): void;
  pong(payload?: Uint8Array | string): void;
  /** Unique among one host run's connections (with a broker, above 2^53). */
  readonly id: bigint;
  subscribe(topic: string, delivery?: Delivery): void;
  unsubscribe(topic: string): boolean;
  /** Returns how many of this host's subscribers it was queued for. */
  publish(topic: string, message: Sendable, options?: { includeSelf?: boolean }): number;
  subscriberCount(topic: string): number;
  /** The next event without waiting, or null. */
  pollEvent(): Event | null;
  /** Waits for a client message, a delivered topic message or `timeoutMs`. */
  nextEvent(timeoutMs?: number | null): Event;
  eventsReady(): Pollable;
}

/** Lines into the host's log, tagged with the connection. */
export const log: {
  readonly trace: (...parts: unknown[]) => void;
  readonly debug: (...parts: unknown[]) => void;
  readonly info: (...parts: unknown[]) => void;
  readonly warn: (...parts: unknown[]) => void;
  readonly error: (...parts: unknown[]) => void;
};

/**
 * Wraps a handler as the component's `handle` export:
 * `export const handle = handler((pending) => { ... })`.
 */
export function handler(
  fn: (pending: PendingConnection) => void | Promise<void>,
): (pending: raw.PendingConnection) => void | Promise<void>;

/** The raw bindings' module `wsbox:websocket/websocket@0.1.2`. */
export const bindings: typeof raw;
