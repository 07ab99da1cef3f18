// world wsbox:websocket/handler@0.1.2
export type PendingConnection = import('./interfaces/wsbox-websocket-websocket.js').PendingConnection;
export type * as WasiClocksMonotonicClock0212 from './interfaces/wasi-clocks-monotonic-clock.js'; // import wasi:clocks/monotonic-clock@0.2.12
export type * as WasiIoPoll0212 from './interfaces/wasi-io-poll.js'; // import wasi:io/poll@0.2.12
export type * as WsboxWebsocketLog012 from './interfaces/wsbox-websocket-log.js'; // import wsbox:websocket/log@0.1.2
export type * as WsboxWebsocketTypes012 from './interfaces/wsbox-websocket-types.js'; // import wsbox:websocket/types@0.1.2
export type * as WsboxWebsocketWebsocket012 from './interfaces/wsbox-websocket-websocket.js'; // import wsbox:websocket/websocket@0.1.2
/**
* Handle one connection from its opening handshake to its end. Called
* once per guest instance; the connection is closed when it returns
* (with 1000 if the guest had not closed it, 1011 if it trapped).
*/
export function handle(pending: PendingConnection): void;
