// permessage-deflate interop client built on Node's `ws` library.
//
// Usage: WS_NODE_MODULES=DIR node ws_client.mjs URL MODE
//
// DIR is a folder whose node_modules/ holds `ws` (ESM import resolution does
// not follow NODE_PATH, so the script loads it through createRequire).
//
// MODE is what the client offers (perMessageDeflate options; the threshold
// is always 0 so that the client compresses every message):
//   default                      perMessageDeflate: {}  (ws offers `client_max_window_bits`)
//   client_no_context_takeover   clientNoContextTakeover: true
//   server_no_context_takeover   serverNoContextTakeover: true
//   client_max_window_bits=N     clientMaxWindowBits: N
//   server_max_window_bits=N     serverMaxWindowBits: N
//   none                         perMessageDeflate: false
//
// Sends text and binary messages of 10 B, 10 KiB and 1 MiB, each twice, to an
// echo server and checks every echo is exactly the message. For each echo it
// records the bytes the socket read and wrote meanwhile (the socket is made by
// this script through `createConnection`), which shows whether the frames were
// compressed.
//
// Prints one JSON object on stdout:
//   {"library": "ws X.Y.Z", "response_extensions": "...", "extensions": "...",
//    "echoes": [{"kind", "size", "round", "ok", "wire_read", "wire_written"}],
//    "errors": [...]}
// and exits 1 if any echo differs (or anything else failed), 0 otherwise.

import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const [url, mode] = process.argv.slice(2);
if (!url || !mode) {
  console.error('usage: WS_NODE_MODULES=DIR node ws_client.mjs URL MODE');
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

const SIZES = [10, 10 * 1024, 1024 * 1024];
const ROUNDS = 2;

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

function options(mode) {
  const base = { threshold: 0 };
  if (mode === 'none') return false;
  if (mode === 'default') return base;
  if (mode === 'client_no_context_takeover') return { ...base, clientNoContextTakeover: true };
  if (mode === 'server_no_context_takeover') return { ...base, serverNoContextTakeover: true };
  const m = /^(client|server)_max_window_bits=(\d+)$/.exec(mode);
  if (m) {
    const key = m[1] === 'client' ? 'clientMaxWindowBits' : 'serverMaxWindowBits';
    return { ...base, [key]: Number(m[2]) };
  }
  throw new Error(`unknown mode ${mode}`);
}

const result = {
  library: `ws ${wsVersion}`,
  mode,
  response_extensions: null,
  extensions: null,
  echoes: [],
  errors: [],
};

function finish(code) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}

let socket;
const ws = new WebSocket(url, {
  perMessageDeflate: options(mode),
  maxPayload: 64 * 1024 * 1024,
  handshakeTimeout: 30000,
  createConnection: (opts) => {
    socket = net.connect(opts);
    return socket;
  },
});

ws.on('upgrade', (res) => {
  result.response_extensions = res.headers['sec-websocket-extensions'] ?? null;
});
ws.on('error', (err) => {
  result.errors.push(`error: ${err.message}`);
  finish(1);
});

// Messages arrive one at a time: a queue of waiters.
const waiters = [];
ws.on('message', (data, isBinary) => {
  const w = waiters.shift();
  if (w) w({ data, isBinary });
});
const nextMessage = () =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for an echo')), 60000);
    waiters.push((m) => {
      clearTimeout(timer);
      resolve(m);
    });
  });

ws.on('open', async () => {
  try {
    result.extensions = ws.extensions;
    let seed = 0;
    for (const kind of ['text', 'binary']) {
      for (const size of SIZES) {
        seed += 1;
        const message = kind === 'text' ? textMessage(size, seed) : binaryMessage(size, seed);
        for (let round = 0; round < ROUNDS; round++) {
          const read0 = socket.bytesRead;
          const written0 = socket.bytesWritten;
          const echo = nextMessage();
          ws.send(message, { binary: kind === 'binary' });
          const { data, isBinary } = await echo;
          const ok =
            isBinary === (kind === 'binary') &&
            (kind === 'binary'
              ? Buffer.compare(data, message) === 0
              : data.toString('utf8') === message);
          result.echoes.push({
            kind,
            size,
            round,
            ok,
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
    ws.close(1000);
    ws.on('close', () => finish(result.errors.length ? 1 : 0));
  } catch (err) {
    result.errors.push(`${err.name}: ${err.message}`);
    finish(1);
  }
});
