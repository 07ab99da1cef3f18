#!/usr/bin/env python3
"""permessage-deflate interop client built on the Python `websockets` library.

Usage: websockets_client.py URL COMBINATIONS

COMBINATIONS is a JSON list; each item is one connection to make, in order:
  {"compression": "deflate", "large": false}
      websockets' own default offer (connect(compression="deflate"))
  {"compression": null, "large": false}
      no compression offered (connect(compression=None))
  {"offers": [{"server_no_context_takeover": bool,
               "client_no_context_takeover": bool,
               "server_max_window_bits": null | 8..15,
               "client_max_window_bits": null | true | 9..15}, ...],
   "large": false}
      one ClientPerMessageDeflateFactory per item of "offers", in that order
      (several make several offers; websockets takes the first that accepts
      the server's answer)

On each connection the client sends text and binary messages of 10 B and
10 KiB (and 1 MiB if "large" is true), each twice (so that context takeover
is exercised), to an echo server and checks every echo is exactly the
message. For each echo it records whether the server's first frame had RSV1
set (i.e. was compressed) and whether its own had, seen by wrapping the
negotiated extension's decoder and encoder, and the payload bytes of the
echo's frames as they came off the wire.

Prints one JSON object on stdout:
  {"library": "websockets X.Y",
   "combinations": [{"offered": "..." | null, "response_extensions": "..." | null,
                     "negotiated": "PerMessageDeflate(...)" | null,
                     "echoes": [{"kind": "text", "size": 10, "round": 0, "ok": true,
                                 "rsv1": false, "sent_rsv1": true, "wire_size": 10}, ...],
                     "errors": [...]}, ...]}
with one item per combination, in order. A combination that fails (e.g. the
client refuses the server's answer) records why in its "errors" and the
client goes on with the next one. Exits 1 if any combination has errors, 2
on bad usage, 0 otherwise.
"""

import asyncio
import json
import random
import sys

import websockets
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    enable_client_permessage_deflate,
)
from websockets.headers import build_extension

SIZES = [10, 10 * 1024]
LARGE_SIZES = SIZES + [1024 * 1024]
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


MESSAGES = {}


def message(kind: str, size: int):
    """The message of `kind` and `size`; the same object on every connection
    (made once: the 1 MiB ones take a moment)."""
    key = (kind, size)
    if key not in MESSAGES:
        seed = ["text", "binary"].index(kind) * 10 + LARGE_SIZES.index(size) + 1
        MESSAGES[key] = text_message(size, seed) if kind == "text" else binary_message(size, seed)
    return MESSAGES[key]


class RecordingFactory(ClientPerMessageDeflateFactory):
    """A ClientPerMessageDeflateFactory that records the server's
    permessage-deflate answer before judging it, so that the answer is known
    even when websockets refuses it and the handshake fails."""

    def __init__(self, answers: list, **kwargs):
        super().__init__(**kwargs)
        self.answers = answers

    def process_response_params(self, params, accepted_extensions):
        answer = build_extension([(self.name, list(params))])
        if answer not in self.answers:
            self.answers.append(answer)
        return super().process_response_params(params, accepted_extensions)


def connect_arguments(combination: dict, answers: list):
    """(extensions, compression, factories) for connect(): `factories` are the
    extension factories the client offers, in order."""
    if "offers" in combination:
        factories = [RecordingFactory(answers, **offer) for offer in combination["offers"]]
        return factories, None, factories
    compression = combination.get("compression")
    if compression == "deflate":
        # What connect() does itself with compression="deflate".
        return None, "deflate", enable_client_permessage_deflate(None)
    if compression is None:
        return None, None, []
    raise ValueError(f"unknown combination {combination!r}")


async def run_combination(url: str, combination: dict) -> dict:
    """Connect once with `combination`'s offer and exchange the messages."""
    answers = []
    result = {
        "offered": None,
        "response_extensions": None,
        "negotiated": None,
        "echoes": [],
        "errors": [],
    }
    try:
        extensions, compression, factories = connect_arguments(combination, answers)
    except ValueError as exc:  # the library refuses the configuration
        result["errors"].append(f"configuration refused: {exc}")
        return result
    if factories:
        # What the client sends; replaced by the request's header once open.
        result["offered"] = build_extension(
            [(f.name, list(f.get_request_params())) for f in factories]
        )
    try:
        async with connect(
            url,
            extensions=extensions,
            compression=compression,
            max_size=None,
            open_timeout=30,
            close_timeout=10,
            ping_interval=None,
        ) as ws:
            result["offered"] = ws.request.headers.get("Sec-WebSocket-Extensions")
            result["response_extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
            await exchange(ws, combination.get("large", False), result)
            await ws.close()
    except Exception as exc:  # report, per combination, what went wrong
        if result["response_extensions"] is None and answers:
            result["response_extensions"] = answers[0]
        result["errors"].append(f"{type(exc).__name__}: {exc}")
    return result


async def exchange(ws, large: bool, result: dict) -> None:
    """Send every message twice on `ws` and record each echo in `result`."""
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

    for kind in ("text", "binary"):
        for size in LARGE_SIZES if large else SIZES:
            sent = message(kind, size)
            for rnd in range(ROUNDS):
                received_rsv1.clear()
                received_bytes[0] = 0
                sent_rsv1.clear()
                await ws.send(sent)
                echo = await asyncio.wait_for(ws.recv(), timeout=60)
                ok = type(echo) is type(sent) and echo == sent
                result["echoes"].append(
                    {
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
                )
                if not ok:
                    got = len(echo) if isinstance(echo, (str, bytes)) else echo
                    result["errors"].append(
                        f"{kind} {size} B round {rnd}: echo differs "
                        f"(got {type(echo).__name__} of length {got})"
                    )


async def run(url: str, combinations: list) -> list:
    return [await run_combination(url, combination) for combination in combinations]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    url, combinations = sys.argv[1], json.loads(sys.argv[2])
    results = asyncio.run(run(url, combinations))
    print(json.dumps({"library": f"websockets {websockets.__version__}", "combinations": results}))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
