// Stands in for wasi:io/poll and wasi:clocks/monotonic-clock in the QuickJS
// flavour, which is built against wsbox:websocket@0.1.0 (componentize-qjs
// 0.4.5 cannot build against 0.1.1: see README.md). Topics and events need
// 0.1.1, so what would use these says so.
function unavailable() {
  throw new Error(
    "topics and events (wsbox:websocket@0.1.1) are not available in the QuickJS flavour; build with StarlingMonkey",
  );
}
export const poll = unavailable;
export const subscribeDuration = unavailable;
