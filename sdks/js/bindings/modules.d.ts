// The component's imports as ES modules, as componentize-js exposes them
// to a guest (`import { log } from "wsbox:websocket/log@0.1.2"`). Written
// by hand over the files `jco types` generates next to it.
declare module "wsbox:websocket/websocket@0.1.2" {
  export * from "wsbox-guest/bindings/interfaces/wsbox-websocket-websocket.js";
}
declare module "wsbox:websocket/types@0.1.2" {
  export * from "wsbox-guest/bindings/interfaces/wsbox-websocket-types.js";
}
declare module "wsbox:websocket/log@0.1.2" {
  export * from "wsbox-guest/bindings/interfaces/wsbox-websocket-log.js";
}
declare module "wasi:io/poll@0.2.12" {
  export * from "wsbox-guest/bindings/interfaces/wasi-io-poll.js";
}
declare module "wasi:clocks/monotonic-clock@0.2.12" {
  export * from "wsbox-guest/bindings/interfaces/wasi-clocks-monotonic-clock.js";
}
