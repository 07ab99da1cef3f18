#!/usr/bin/env python3
"""Regenerates fuzz/seeds/: small, hand-made, meaningful inputs per target.

Run from anywhere: python3 fuzz/gen_seeds.py. The output is deterministic;
commit the result. Selector bytes (the first byte of most targets' inputs)
are described in each fuzz_targets/*.rs header.
"""

import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(opcode, payload, fin=True, rsv1=False, mask=KEY, force64=False):
    """A client frame; force64 uses the (accepted) non-minimal 64-bit length."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    m = 0x80 if mask else 0
    n = len(payload)
    if force64:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    elif n <= 125:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def deflate_messages(messages, no_context_takeover=False):
    """permessage-deflate payloads (sync flush, trailer stripped, RFC 7692)."""
    out = []
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    for m in messages:
        if no_context_takeover:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


def final_block(m):
    """A message ended by a final (BFINAL) block plus the 0x00 of §7.2.3.4."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(m) + c.flush(zlib.Z_FINISH) + b"\x00"


def handshake():
    req = (
        b"GET /chat?room=1 HTTP/1.1\r\n"
        b"Host: example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Origin: http://example.com\r\n"
        b"Sec-WebSocket-Protocol: chat, superchat\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo\r\n"
        b"\r\n"
    )
    sel = b"\x3f"  # 1024-byte header section, 16 headers
    write("handshake", "valid", sel + req)
    write("handshake", "valid_then_frame", sel + req + frame(0x1, b"hi"))
    write("handshake", "absolute_form", sel + req.replace(b"GET /chat?room=1", b"GET ws://example.com/chat"))
    write("handshake", "version_8", sel + req.replace(b"Version: 13", b"Version: 8"))
    write("handshake", "post", sel + req.replace(b"GET ", b"POST "))
    write("handshake", "duplicate_key", sel + req.replace(b"Origin", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin"))
    write("handshake", "partial", sel + req[:100])
    write("handshake", "too_small_limits", b"\x02" + req)  # 128 bytes, 3 headers


def frame_header():
    write("frame_header", "masked_7bit", frame(0x1, b"Hello"))
    write("frame_header", "masked_16bit", frame(0x2, bytes(200))[:20])
    write("frame_header", "masked_64bit", frame(0x2, bytes(70000))[:20])
    write("frame_header", "unmasked_7bit", frame(0x9, b"ping", mask=None))
    write("frame_header", "non_minimal_64bit", frame(0x1, b"abc", force64=True))
    write("frame_header", "msb_set", bytes([0x82, 0xFF, 0x80]) + bytes(7) + KEY)
    write("frame_header", "reserved_bits", bytes([0x7B, 0xFE, 0x01, 0x00]) + KEY)
    write("frame_header", "truncated", bytes([0x81, 0xFF, 0, 0, 0]))


def decoder():
    hello = frame(0x1, b"Hello")
    write("decoder", "text_byte_by_byte", b"\x01" + hello)
    write(
        "decoder",
        "fragmented_with_ping",
        b"\x05"
        + frame(0x1, "κό".encode(), fin=False)
        + frame(0x9, b"are you there")
        + frame(0x0, "σμε".encode(), fin=False)
        + frame(0x0, b"!")
        + frame(0xA, b""),
    )
    write(
        "decoder",
        "length_classes",
        b"\x06"
        + frame(0x2, bytes(range(125)))
        + frame(0x2, bytes(range(126)))
        + frame(0x2, b"x" * 300, force64=True),
    )
    write("decoder", "close_normal", b"\x02" + hello + frame(0x8, struct.pack(">H", 1000) + b"bye") + hello)
    write("decoder", "close_empty", b"\x03" + frame(0x8, b""))
    write("decoder", "close_bad_code", b"\x04" + frame(0x8, struct.pack(">H", 1005)))
    write("decoder", "invalid_utf8_early", b"\x01" + frame(0x1, b"ok\xed\xa0\x80 and more", fin=False))
    write("decoder", "unmasked", b"\x00" + frame(0x1, b"x", mask=None))
    # 256-byte frames, 1 KiB messages: the fifth fragment is one too many.
    write(
        "decoder",
        "tight_limits",
        b"\x27"
        + frame(0x2, b"y" * 250, fin=False)
        + b"".join(frame(0x0, b"z" * 250, fin=False) for _ in range(3))
        + frame(0x0, b"!" * 250),
    )
    # permessage-deflate (bit 3): two messages with context takeover, then a
    # fragmented compressed message.
    a, b = deflate_messages([b"Hello, hello, hello!", b"Hello, hello, hello again!"])
    c = deflate_messages([b'{"type":"message","body":"compressed and fragmented"}'])[0]
    write(
        "decoder",
        "deflate",
        b"\x0d"
        + frame(0x1, a, rsv1=True)
        + frame(0x1, b, rsv1=True)
        + frame(0x1, c[:10], fin=False, rsv1=True)
        + frame(0x9, b"mid")
        + frame(0x0, c[10:]),
    )
    nct = deflate_messages([b"abcabcabc", b"abcabcabc"], no_context_takeover=True)
    write("decoder", "deflate_no_context", b"\x1e" + b"".join(frame(0x2, m, rsv1=True) for m in nct))
    bomb = deflate_messages([bytes(1 << 20)])[0]
    write("decoder", "deflate_bomb", b"\x0e" + frame(0x2, bomb, rsv1=True))


def utf8():
    write("utf8", "ascii", b"\x00hello, world")
    write("utf8", "greek", b"\x01" + "κόσμε".encode())
    write("utf8", "emoji_split", b"\x00" + "a😀b😀".encode())
    write("utf8", "surrogate", b"\x02ok\xed\xa0\x80")
    write("utf8", "overlong", b"\x01\xc0\xaf")
    write("utf8", "truncated", b"\x00abc\xf0\x9f\x98")
    write("utf8", "bad_continuation", b"\x03\xe2\x82A")
    write("utf8", "too_large", b"\x00\xf4\x90\x80\x80")


def close_payload():
    write("close_payload", "empty", b"")
    write("close_payload", "one_byte", b"\x03")
    write("close_payload", "normal", struct.pack(">H", 1000))
    write("close_payload", "normal_reason", struct.pack(">H", 1000) + b"bye")
    write("close_payload", "private_utf8", struct.pack(">H", 4000) + "ça va".encode())
    write("close_payload", "reserved_1005", struct.pack(">H", 1005))
    write("close_payload", "bad_utf8", struct.pack(">H", 1001) + b"\xff")
    write("close_payload", "max_reason", struct.pack(">H", 3000) + "é".encode() * 61 + b"x")


def deflate_offers():
    write("deflate_offers", "plain", b"\x3cpermessage-deflate")
    write("deflate_offers", "client_bits", b"\x00permessage-deflate; client_max_window_bits")
    write(
        "deflate_offers",
        "all_params",
        b"\xfbpermessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        b" server_max_window_bits=10; client_max_window_bits=12",
    )
    write(
        "deflate_offers",
        "quoted_and_fallback",
        b'\x10permessage-deflate; client_max_window_bits="10"; server_max_window_bits=8, permessage-deflate',
    )
    write("deflate_offers", "two_headers", b"\x07x-webkit-deflate-frame, , foo; bar=baz\npermessage-deflate;server_max_window_bits=9")
    write("deflate_offers", "unterminated", b'\x00permessage-deflate; server_max_window_bits="1')
    write("deflate_offers", "duplicate_param", b"\x00permessage-deflate; client_no_context_takeover; client_no_context_takeover")


def inflate():
    a, b = deflate_messages([b"Hello, hello, hello!", b"Hello, hello, hello again!"])
    write("inflate", "two_messages", b"\x04" + a + b"MSG!" + b)
    write("inflate", "empty_message", b"\x02\x00")
    write("inflate", "final_block", b"\x0c" + final_block(b"final block message"))
    bomb = deflate_messages([bytes(1 << 20)])[0]
    write("inflate", "bomb", b"\x06" + bomb)
    write("inflate", "exact_limit", b"\x01" + deflate_messages([b"x"])[0])
    write("inflate", "roundtrip", b"\x30Hello, hello, hello!MSG!Hello again, hello!MSG!MSG!\x00\xff")
    write("inflate", "roundtrip_no_context", b"\xf8abcabcabcabcMSG!abcabcabcabc")


def connection():
    # setup byte, then operations (see fuzz_targets/connection.rs): 13 =
    # accept, 1 = a valid peer frame, 2 = receive, 3 = send, 4 = close,
    # 5 = host close, 6 = time passes, 7 = the writer drains, 9 = the guest
    # ends, 10 = a published message, 11 = a guest delivery, 12 = next event.
    write("connection", "accept_echo_close", bytes([0x00, 13, 1, 0x41, 7, 2, 3, 5, 7, 4, 0, 7, 6, 10, 7]))
    write("connection", "compressed_topics", bytes([0x03, 13, 1, 0x81, 10, 3, 7, 1, 8, 7, 11, 1, 12, 0, 7, 9, 1, 7]))
    write("connection", "timeouts", bytes([0x02, 13, 7, 6, 60, 7, 6, 255, 7, 6, 255, 7, 6, 255, 7]))


def static_path():
    write("static_path", "index", b"\x00/")
    write("static_path", "nested", b"\x00/css/site%20main.css")
    write("static_path", "traversal", b"\x00/%2e%2e/%2E./secret")
    write("static_path", "request", b"\x01GET /docs/?x=1 HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\", W/\"b\"\r\n\r\n")


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    for gen in (handshake, frame_header, decoder, utf8, close_payload, deflate_offers, inflate, connection, static_path):
        gen()
