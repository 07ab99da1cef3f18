#!/usr/bin/env python3
"""permessage-deflate interop client built on the Python `websockets` library.

Usage: websockets_client.py URL MODE

MODE is what the client offers:
  default                    websockets' own default offer (compression="deflate")
  client_no_context_takeover ClientPerMessageDeflateFactory(client_no_context_takeover=True)
  server_no_context_takeover ClientPerMessageDeflateFactory(server_no_context_takeover=True)
  client_max_window_bits=N   ClientPerMessageDeflateFactory(client_max_window_bits=N)
  server_max_window_bits=N   ClientPerMessageDeflateFactory(server_max_window_bits=N)
  none                       no compression offered (compression=None)

Sends text and binary messages of 10 B, 10 KiB and 1 MiB, each twice (so that
context takeover is exercised), to an echo server and checks every echo is
exactly the message. For each echo it records whether the server's frame had
RSV1 set (i.e. was compressed), seen by wrapping the negotiated extension's
decoder, and the payload bytes of the echo's frames as they came off the wire.

Prints one JSON object on stdout:
  {"library": "websockets X.Y", "response_extensions": "...",
   "negotiated": "PerMessageDeflate(...)" | null,
   "echoes": [{"kind": "text", "size": 10, "round": 0, "ok": true,
               "rsv1": false, "sent_rsv1": true, "wire_size": 10}, ...],
   "errors": [...]}
and exits 1 if any echo differs (or anything else failed), 0 otherwise.
"""

import asyncio
import json
import random
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

SIZES = [10, 10 * 1024, 1024 * 1024]
ROUNDS = 2


def text_message(size: int, seed: int) -> str:
    """Compressible JSON-like text of exactly `size` UTF-8 bytes, with some
    multi-byte characters."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "état", "Grüße", "日本語", "ok", "42"]
    parts = []
    length = 0
    i = 0
    while length < size:
        chunk = '{"id":%d,"name":"%s","tags":["%s","%s"],"value":%d},' % (
            i,
            rng.choice(words),
            rng.choice(words),
            rng.choice(words),
            rng.randrange(100000),
        )
        parts.append(chunk)
        length += len(chunk.encode())
        i += 1
    data = "".join(parts).encode()[:size]
    # Cut at a character boundary, then pad with ASCII to the exact size.
    text = data.decode("utf-8", errors="ignore")
    text += "x" * (size - len(text.encode()))
    assert len(text.encode()) == size
    return text


def binary_message(size: int, seed: int) -> bytes:
    """Compressible binary: runs of a few pseudo-random byte patterns."""
    rng = random.Random(seed)
    patterns = [bytes(rng.randrange(256) for _ in range(rng.randrange(4, 64))) for _ in range(16)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(patterns)
        out.append(rng.randrange(256))
    return bytes(out[:size])


def extensions_for(mode: str):
    """(extensions, compression) arguments of connect() for `mode`."""
    if mode == "default":
        return None, "deflate"
    if mode == "none":
        return None, None
    if mode == "client_no_context_takeover":
        return [ClientPerMessageDeflateFactory(client_no_context_takeover=True)], None
    if mode == "server_no_context_takeover":
        return [ClientPerMessageDeflateFactory(server_no_context_takeover=True)], None
    if mode.startswith("client_max_window_bits="):
        bits = int(mode.split("=", 1)[1])
        return [ClientPerMessageDeflateFactory(client_max_window_bits=bits)], None
    if mode.startswith("server_max_window_bits="):
        bits = int(mode.split("=", 1)[1])
        return [ClientPerMessageDeflateFactory(server_max_window_bits=bits)], None
    raise SystemExit(f"unknown mode {mode!r}")


async def run(url: str, mode: str) -> dict:
    extensions, compression = extensions_for(mode)
    result = {
        "library": f"websockets {websockets.__version__}",
        "mode": mode,
        "response_extensions": None,
        "negotiated": None,
        "echoes": [],
        "errors": [],
    }
    async with connect(
        url,
        extensions=extensions,
        compression=compression,
        max_size=None,
        open_timeout=30,
        close_timeout=10,
        ping_interval=None,
    ) as ws:
        result["response_extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        negotiated = list(ws.protocol.extensions)
        if negotiated:
            result["negotiated"] = repr(negotiated[0])

        # Record RSV1 of every incoming data frame before the extension
        # decodes it, and of every outgoing one after it encodes it.
        received_rsv1 = []
        received_bytes = [0]
        sent_rsv1 = []
        for ext in negotiated:
            original_decode = ext.decode
            original_encode = ext.encode

            def decode(frame, *, max_size=None, _orig=original_decode):
                if frame.opcode.value in (1, 2):
                    received_rsv1.append(bool(frame.rsv1))
                if frame.opcode.value in (0, 1, 2):
                    received_bytes[0] += len(frame.data)
                return _orig(frame, max_size=max_size)

            def encode(frame, _orig=original_encode):
                out = _orig(frame)
                if out.opcode.value in (1, 2):
                    sent_rsv1.append(bool(out.rsv1))
                return out

            ext.decode = decode
            ext.encode = encode

        seed = 0
        for kind in ("text", "binary"):
            for size in SIZES:
                seed += 1
                message = text_message(size, seed) if kind == "text" else binary_message(size, seed)
                for rnd in range(ROUNDS):
                    received_rsv1.clear()
                    received_bytes[0] = 0
                    sent_rsv1.clear()
                    await ws.send(message)
                    echo = await asyncio.wait_for(ws.recv(), timeout=60)
                    ok = type(echo) is type(message) and echo == message
                    entry = {
                        "kind": kind,
                        "size": size,
                        "round": rnd,
                        "ok": ok,
                        "rsv1": received_rsv1[0] if received_rsv1 else False,
                        "sent_rsv1": sent_rsv1[0] if sent_rsv1 else False,
                        # Payload bytes of the echo's frames as received
                        # (compressed size); null without an extension.
                        "wire_size": received_bytes[0] if negotiated else None,
                    }
                    result["echoes"].append(entry)
                    if not ok:
                        got = len(echo) if isinstance(echo, (str, bytes)) else echo
                        result["errors"].append(
                            f"{kind} {size} B round {rnd}: echo differs "
                            f"(got {type(echo).__name__} of length {got})"
                        )
        await ws.close()
    return result


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    url, mode = sys.argv[1], sys.argv[2]
    try:
        result = asyncio.run(run(url, mode))
    except Exception as exc:  # report, as JSON, what went wrong
        print(json.dumps({"mode": mode, "errors": [f"{type(exc).__name__}: {exc}"]}))
        return 1
    print(json.dumps(result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
