// permessage-deflate interop client built on Node's `ws` library.
//
// Usage: WS_NODE_MODULES=DIR node ws_client.mjs URL COMBINATIONS
//
// DIR is a folder whose node_modules/ holds `ws` (ESM import resolution does
// not follow NODE_PATH, so the script loads it through createRequire).
//
// COMBINATIONS is a JSON list; each item is one connection to make, in order:
//   {"perMessageDeflate": false | true | {...options}, "large": false}
// where the value is passed to `new WebSocket(url, {perMessageDeflate})` as
// it is: `false` offers nothing, `true` is ws's default (threshold 1024), an
// object sets serverNoContextTakeover, clientNoContextTakeover,
// serverMaxWindowBits, clientMaxWindowBits, threshold, ... (a key left out is
// `undefined`, which for clientMaxWindowBits offers the bare parameter).
//
// On each connection the client sends text and binary messages of 10 B and
// 10 KiB (and 1 MiB if "large" is true), each twice, to an echo server and
// checks every echo is exactly the message. For each echo it records whether
// the server's echo was compressed (RSV1: ws inflated it) and whether the
// client's message was (ws deflated it), seen by wrapping the negotiated
// extension's decompress and compress, and the bytes the socket read and
// wrote meanwhile (the socket is made by this script through
// `createConnection`).
//
// Prints one JSON object on stdout:
//   {"library": "ws X.Y.Z",
//    "combinations": [{"offered": "..." | null, "response_extensions": "..." | null,
//                      "extensions": "...",
//                      "echoes": [{"kind", "size", "round", "ok", "rsv1", "sent_rsv1",
//                                  "wire_read", "wire_written"}],
//                      "errors": [...]}, ...]}
// with one item per combination, in order. A combination that fails records
// why in its "errors" and the client goes on with the next one. Exits 1 if
// any combination has errors, 2 on bad usage, 0 otherwise.

import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const [url, combinationsJson] = process.argv.slice(2);
if (!url || !combinationsJson) {
  console.error('usage: WS_NODE_MODULES=DIR node ws_client.mjs URL COMBINATIONS');
  process.exit(2);
}
const dir = process.env.WS_NODE_MODULES;
if (!dir) {
  console.error('WS_NODE_MODULES is not set');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(dir), 'package.json'));
const WebSocket = require('ws');
const wsVersion = require('ws/package.json').version;

const SIZES = [10, 10 * 1024];
const LARGE_SIZES = [...SIZES, 1024 * 1024];
const ROUNDS = 2;
const EXTENSION = 'permessage-deflate';

// A small deterministic PRNG (mulberry32).
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Compressible JSON-like text of exactly `size` UTF-8 bytes.
function textMessage(size, seed) {
  const r = rng(seed);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'état', 'Grüße', '日本語', 'ok', '42'];
  const pick = () => words[Math.floor(r() * words.length)];
  const parts = [];
  for (let i = 0, len = 0; len < size; i++) {
    const part = `{"id":${i},"name":"${pick()}","tags":["${pick()}","${pick()}"],"value":${Math.floor(r() * 100000)}},`;
    parts.push(part);
    len += Buffer.byteLength(part);
  }
  // Cut at a character boundary, then pad with ASCII to the exact size.
  let buf = Buffer.from(parts.join('')).subarray(0, size);
  let text = buf.toString('utf8');
  while (Buffer.byteLength(text) > size || text.endsWith('\ufffd')) text = text.slice(0, -1);
  text += 'x'.repeat(size - Buffer.byteLength(text));
  if (Buffer.byteLength(text) !== size) throw new Error('text size');
  return text;
}

// Compressible binary: runs of a few pseudo-random byte patterns.
function binaryMessage(size, seed) {
  const r = rng(seed);
  const patterns = [];
  for (let p = 0; p < 16; p++) {
    const len = 4 + Math.floor(r() * 60);
    patterns.push(Buffer.from(Array.from({ length: len }, () => Math.floor(r() * 256))));
  }
  const out = Buffer.alloc(size);
  let at = 0;
  while (at < size) {
    const p = patterns[Math.floor(r() * patterns.length)];
    at += p.copy(out, at);
    if (at < size) out[at++] = Math.floor(r() * 256);
  }
  return out;
}

// The message of `kind` and `size`, made once (the 1 MiB ones take a moment).
const messages = new Map();
function message(kind, size) {
  const key = `${kind} ${size}`;
  if (!messages.has(key)) {
    const seed = (kind === 'text' ? 0 : 10) + LARGE_SIZES.indexOf(size) + 1;
    messages.set(key, kind === 'text' ? textMessage(size, seed) : binaryMessage(size, seed));
  }
  return messages.get(key);
}

// Open a connection offering `perMessageDeflate`; resolves to the socket and
// WebSocket once open, recording the offer and the answer in `result` even
// when ws refuses the answer (then it rejects).
function open(perMessageDeflate, result) {
  return new Promise((resolve, reject) => {
    let socket;
    const ws = new WebSocket(url, {
      perMessageDeflate,
      maxPayload: 64 * 1024 * 1024,
      handshakeTimeout: 30000,
      createConnection: (opts) => {
        socket = net.connect(opts);
        return socket;
      },
      finishRequest: (req) => {
        result.offered = req.getHeader('Sec-WebSocket-Extensions') ?? null;
        req.end();
      },
    });
    // Emitted before ws judges the answer.
    ws.on('upgrade', (res) => {
      result.response_extensions = res.headers['sec-websocket-extensions'] ?? null;
    });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      resolve({ ws, socket });
    });
  });
}

// Send every message twice on `ws` and record each echo in `result`.
async function exchange(ws, socket, large, result) {
  result.extensions = ws.extensions;
  // Count the messages ws inflates and deflates: it calls the negotiated
  // extension's decompress only for frames with RSV1, and compress only for
  // messages it sends with RSV1. `_extensions` is ws's own (private) record of
  // the negotiated extensions; there is no public one.
  const counts = { inflated: 0, deflated: 0 };
  const deflate = ws._extensions[EXTENSION];
  if (deflate) {
    const { decompress, compress } = deflate;
    deflate.decompress = function (...args) {
      counts.inflated++;
      return decompress.apply(this, args);
    };
    deflate.compress = function (...args) {
      counts.deflated++;
      return compress.apply(this, args);
    };
  }

  // Messages arrive one at a time: a queue of waiters, all failed at once if
  // the connection fails or closes.
  const waiters = [];
  let failure = null;
  const fail = (err) => {
    failure = failure ?? err;
    for (const w of waiters.splice(0)) w.reject(failure);
  };
  ws.on('error', fail);
  ws.on('close', (code, reason) => fail(new Error(`connection closed: ${code} ${reason}`)));
  ws.on('message', (data, isBinary) => {
    const w = waiters.shift();
    if (w) w.resolve({ data, isBinary });
  });
  const nextMessage = () =>
    new Promise((resolve, reject) => {
      if (failure) {
        reject(failure);
        return;
      }
      const timer = setTimeout(() => reject(new Error('timed out waiting for an echo')), 60000);
      waiters.push({
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
    });

  for (const kind of ['text', 'binary']) {
    for (const size of large ? LARGE_SIZES : SIZES) {
      const sent = message(kind, size);
      for (let round = 0; round < ROUNDS; round++) {
        const read0 = socket.bytesRead;
        const written0 = socket.bytesWritten;
        counts.inflated = 0;
        counts.deflated = 0;
        const echo = nextMessage();
        ws.send(sent, { binary: kind === 'binary' });
        const { data, isBinary } = await echo;
        const ok =
          isBinary === (kind === 'binary') &&
          (kind === 'binary' ? Buffer.compare(data, sent) === 0 : data.toString('utf8') === sent);
        result.echoes.push({
          kind,
          size,
          round,
          ok,
          rsv1: counts.inflated > 0,
          sent_rsv1: counts.deflated > 0,
          wire_read: socket.bytesRead - read0,
          wire_written: socket.bytesWritten - written0,
        });
        if (!ok) {
          result.errors.push(
            `${kind} ${size} B round ${round}: echo differs (got ${isBinary ? 'binary' : 'text'} of ${data.length} bytes)`,
          );
        }
      }
    }
  }
  const closed = new Promise((resolve) => ws.once('close', resolve));
  ws.close(1000);
  await closed;
}

async function runCombination(combination) {
  const result = {
    offered: null,
    response_extensions: null,
    extensions: null,
    echoes: [],
    errors: [],
  };
  try {
    const { ws, socket } = await open(combination.perMessageDeflate, result);
    await exchange(ws, socket, combination.large ?? false, result);
  } catch (err) {
    result.errors.push(`${err.name}: ${err.message}`);
  }
  return result;
}

const results = [];
for (const combination of JSON.parse(combinationsJson)) {
  results.push(await runCombination(combination));
}
const report = { library: `ws ${wsVersion}`, combinations: results };
process.stdout.write(JSON.stringify(report) + '\n', () =>
  process.exit(results.some((r) => r.errors.length) ? 1 : 0),
);
