"""permessage-deflate (RFC 7692): negotiation answers read off the 101, Python `websockets` with
compression="deflate" and each parameter set (sizes 16 B to 1 MiB, whole and fragmented, both directions),
and raw frames for the rules: RSV1 where it may not be, corrupt streams, invalid UTF-8 inside a compressed
message, and a decompression bomb that must close with 1009 without growing the server's memory."""

import asyncio
import random
import sys
import zlib

from weir_harness import Results, Server, closed_by_peer, expect, rss_kib
from ws_frames import FrameReader, client_frame as frame, open_websocket as handshake

try:
    import websockets
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
except ImportError:  # pragma: no cover - the CI installs python3-websockets
    print("python3-websockets is not installed (scripts/install-deps.sh installs it)")
    print("0 passed, 1 failed")
    sys.exit(1)

R = Results()
SIZES = [16, 64, 125, 126, 1000, 4096, 16384, 65535, 65536, 131072, 1024 * 1024]
TAIL = b"\x00\x00\xff\xff"


def compress(data, bits=15, final=False):
    c = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return out if final else out[:-4]


def extensions_of(headers):
    return headers.get("sec-websocket-extensions", [])


# ---- negotiation --------------------------------------------------------------------------------------

def answer(srv, offer, path="/deflate"):
    s, status, headers, _ = handshake(srv, path, offer)
    s.close()
    expect(status == 101, f"status {status} for offer {offer!r}")
    ext = extensions_of(headers)
    expect(len(ext) <= 1, ext)
    return ext[0] if ext else None


def negotiation(srv):
    cases = [
        ("permessage-deflate", "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits=15"),
        ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ("permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
         "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"),
        ('permessage-deflate; server_max_window_bits="11"', "permessage-deflate; server_max_window_bits=11"),
        # Invalid offers are declined, and the next acceptable one is taken.
        ("permessage-deflate; server_max_window_bits=8", None),  # zlib cannot compress with 256 bytes
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=09", None),
        ("permessage-deflate; client_max_window_bits=7", None),
        ("permessage-deflate; server_no_context_takeover=1", None),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        ("permessage-deflate; unknown_parameter", None),
        ("permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover"),
        ("x-webkit-deflate-frame, permessage-deflate; bogus, permessage-deflate; server_max_window_bits=12",
         "permessage-deflate; server_max_window_bits=12"),
        (["foo; bar", "permessage-deflate; client_max_window_bits"], "permessage-deflate; client_max_window_bits=15"),
        ("permessage-deflate; ;", None),  # a syntax error ends the field
        ("x-other", None),
    ]
    for offer, expected in cases:
        got = answer(srv, offer)
        expect(got == expected, f"offer {offer!r}: answered {got!r}, expected {expected!r}")
    # The server's own limits narrow the answer but never widen the offer.
    expect(answer(srv, "permessage-deflate; client_max_window_bits", "/deflate-narrow")
           == "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9", "narrow settings")
    expect(answer(srv, "permessage-deflate; client_max_window_bits=8", "/deflate-narrow")
           == "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8", "narrow, client 8")
    expect(answer(srv, "permessage-deflate", "/deflate-narrow")
           == "permessage-deflate; server_max_window_bits=9", "no client_max_window_bits offered: none answered")
    expect(answer(srv, "permessage-deflate", "/deflate-no-context")
           == "permessage-deflate; server_no_context_takeover; client_no_context_takeover", "no context")
    # Off, or not offered: no extension.
    expect(answer(srv, "permessage-deflate", "/plain") is None, "deflate disabled")
    expect(answer(srv, None) is None, "nothing offered")


def forged_header(srv):
    """weir::headers refuses the field to a stage: the request fails with 500 and no session starts."""
    s, status, headers, rest = handshake(srv, "/forged", "permessage-deflate")
    expect(status == 500, status)
    expect(extensions_of(headers) == [], f"a stage forged {extensions_of(headers)}")
    s.close()


# ---- Python websockets, each parameter set ------------------------------------------------------------

VARIANTS = {
    "default offer": dict(),
    "client_no_context_takeover": dict(client_no_context_takeover=True),
    "server_no_context_takeover": dict(server_no_context_takeover=True),
    "server_max_window_bits=9": dict(server_max_window_bits=9),
    "client_max_window_bits=9": dict(client_max_window_bits=9),
    "all four": dict(server_no_context_takeover=True, client_no_context_takeover=True, server_max_window_bits=10,
                     client_max_window_bits=11),
}


def payload(size, binary, seed):
    rnd = random.Random(seed)
    words = ["weir", "deflate", "websocket", "frame", "héllo", "wörld", "💬", "0123456789"]
    if binary:
        # Half repetitive, half random: compressible and incompressible stretches.
        half = size // 2
        block = bytes(rnd.getrandbits(8) for _ in range(64))
        return (block * (half // 64 + 1))[:half] + rnd.randbytes(size - half)
    text = " ".join(rnd.choice(words) for _ in range(size // 4 + 1)).encode()
    return text[:size].decode("utf-8", "ignore")


async def round_trips(url, path, params, fragmented):
    factory = ClientPerMessageDeflateFactory(**params)
    async with websockets.connect(url + path, extensions=[factory], compression=None, max_size=None) as ws:
        expect(ws.response_headers.get("Sec-WebSocket-Extensions", "").startswith("permessage-deflate"),
               ws.response_headers.get("Sec-WebSocket-Extensions"))
        for i, size in enumerate(SIZES):
            for binary in (False, True):
                data = payload(size, binary, i)
                if fragmented:
                    step = max(1, len(data) // 5)
                    await ws.send([data[k:k + step] for k in range(0, len(data), step)])
                else:
                    await ws.send(data)
                got = await ws.recv()
                expect(got == data, f"{path} {params}: {size} bytes {'binary' if binary else 'text'} came back changed")


def python_clients(url):
    for path in ("/deflate", "/deflate-no-context", "/deflate-narrow"):
        for name, params in VARIANTS.items():
            for fragmented in (False, True):
                asyncio.run(round_trips(url, path, params, fragmented))


async def compression_default(url):
    """compression="deflate" (the library's default offer) against the echo that reports the agreement."""
    async with websockets.connect(url + "/report", compression="deflate") as ws:
        expect(await ws.recv() == "deflate=1", "agreed")
        await ws.send("x" * 10000)
        expect(await ws.recv() == "x" * 10000, "echo")
    async with websockets.connect(url + "/report", compression=None) as ws:
        expect(await ws.recv() == "deflate=0", "not offered, not agreed")
        await ws.send("plain")
        expect(await ws.recv() == "plain", "echo")


# ---- raw frames -----------------------------------------------------------------------------------------

def server_compresses(srv):
    """The server's frames: RSV1 on the first frame of messages at or over the threshold, payload without
    the tail, and with context takeover the second identical message is much smaller."""
    s, status, headers, rest = handshake(srv, "/deflate-threshold", "permessage-deflate")
    r = FrameReader(s, rest)
    text = payload(3000, False, 7).encode()
    s.sendall(frame(1, text))
    fin, rsv1, op, first = r.frame()
    expect(fin and rsv1 and op == 1, (fin, rsv1, op))
    d = zlib.decompressobj(-15)
    expect(d.decompress(first + TAIL) == text, "inflates with the tail appended")
    s.sendall(frame(1, text))
    fin, rsv1, op, second = r.frame()
    expect(rsv1 and len(second) < len(first) // 4, f"context takeover: {len(second)} vs {len(first)} bytes")
    expect(d.decompress(second + TAIL) == text, "second message in the same context")
    s.sendall(frame(1, b"short"))
    fin, rsv1, op, small = r.frame()
    expect(not rsv1 and small == b"short", "under the threshold: uncompressed")
    s.close()


def client_context_takeover(srv):
    """The client compresses several messages in one context, some fragmented, one ending in a final block,
    one uncompressed in between."""
    s, status, headers, rest = handshake(srv, "/deflate", "permessage-deflate")
    r = FrameReader(s, rest)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    d = zlib.decompressobj(-15)  # the server keeps its context too
    msgs = [b"hello context " * 50, b"hello context " * 60, "ünïcödé ".encode() * 40]
    for m in msgs:
        data = (c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        third = len(data) // 3
        s.sendall(frame(1, data[:third], fin=False, rsv1=True) + frame(9, b"ping in between") +
                  frame(0, data[third:2 * third], fin=False) + frame(0, data[2 * third:]))
        while True:
            fin, rsv1, op, got = r.frame()
            if op == 1:
                break
        expect(d.decompress(got + TAIL) == m, "echo")
    s.sendall(frame(2, b"\x01\x02 uncompressed"))
    fin, rsv1, op, got = r.frame()
    expect(op == 2 and rsv1 and d.decompress(got + TAIL) == b"\x01\x02 uncompressed", "uncompressed binary")
    s.sendall(frame(1, compress(b"final block " * 20, final=True), rsv1=True))
    fin, rsv1, op, got = r.frame()
    expect(d.decompress(got + TAIL) == b"final block " * 20, "BFINAL message")
    s.sendall(frame(1, compress(b"after the final block " * 20), rsv1=True))
    fin, rsv1, op, got = r.frame()
    expect(d.decompress(got + TAIL) == b"after the final block " * 20, "next stream")
    s.sendall(frame(1, compress(b""), rsv1=True))
    fin, rsv1, op, got = r.frame()
    expect(op == 1 and d.decompress(got + TAIL) == b"", "empty compressed message")
    s.close()


def closes_with(srv, path, offer, frames, code):
    s, status, headers, rest = handshake(srv, path, offer)
    expect(status == 101, status)
    s.sendall(b"".join(frames))
    got = FrameReader(s, rest).close_code()
    expect(got == code, f"closed with {got}, expected {code}")
    s.close()


def rule_violations(srv):
    good = compress(b"hello " * 30)
    closes_with(srv, "/plain", "permessage-deflate", [frame(1, good, rsv1=True)], 1002)  # not negotiated
    closes_with(srv, "/deflate", None, [frame(1, good, rsv1=True)], 1002)  # not offered
    closes_with(srv, "/deflate", "permessage-deflate", [frame(9, b"x", rsv1=True)], 1002)  # ping
    closes_with(srv, "/deflate", "permessage-deflate",
                [frame(1, good[:5], fin=False, rsv1=True), frame(0, good[5:], rsv1=True)], 1002)  # continuation
    closes_with(srv, "/deflate", "permessage-deflate", [frame(1, b"\xff\xfe\xfd garbage", rsv1=True)], 1007)
    closes_with(srv, "/deflate", "permessage-deflate", [frame(1, compress(b"ok \xff\xfe not utf-8"), rsv1=True)],
                1007)
    closes_with(srv, "/deflate", "permessage-deflate",
                [frame(1, compress(b"done", final=True) + b"\x01\x02", rsv1=True)], 1007)  # bytes after BFINAL
    # The server keeps serving others.
    s, status, headers, rest = handshake(srv, "/deflate", "permessage-deflate")
    s.sendall(frame(1, compress(b"still here"), rsv1=True))
    expect(zlib.decompressobj(-15).decompress(FrameReader(s, rest).frame()[3] + TAIL) == b"still here", "alive")
    s.close()


def bomb_frames(total):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    data = b"".join(c.compress(zeros) for _ in range(total >> 20)) + c.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


def bombs(srv):
    """Ten sessions each send a 200 KiB frame that inflates to 200 MiB (the limit is 1 MiB): each is closed
    with 1009 after at most the limit was inflated, and the server's memory stays small."""
    bomb = bomb_frames(200 << 20)
    expect(len(bomb) < 1024 * 1024, len(bomb))
    before = rss_kib(srv.proc.pid)
    socks = []
    for _ in range(10):
        s, status, headers, rest = handshake(srv, "/deflate-limit", "permessage-deflate")
        s.sendall(frame(2, bomb, rsv1=True))
        socks.append((s, rest))
    for s, rest in socks:
        code = FrameReader(s, rest).close_code()
        expect(code == 1009, f"bomb closed with {code}")
        s.close()
    grown = rss_kib(srv.proc.pid) - before
    expect(grown < 40 * 1024, f"server RSS grew {grown} KiB")
    # Fragmented: the message is bounded across its fragments too.
    s, status, headers, rest = handshake(srv, "/deflate-limit", "permessage-deflate")
    half = len(bomb) // 2
    s.sendall(frame(1, bomb[:half], fin=False, rsv1=True) + frame(0, bomb[half:]))
    expect(FrameReader(s, rest).close_code() == 1009, "fragmented bomb")
    s.close()
    # Just under the limit inflates whole.
    s, status, headers, rest = handshake(srv, "/deflate-limit", "permessage-deflate")
    s.sendall(frame(2, compress(bytes(1024 * 1024)), rsv1=True))
    fin, rsv1, op, got = FrameReader(s, rest).frame()
    expect(zlib.decompressobj(-15).decompress(got + TAIL) == bytes(1024 * 1024), "1 MiB at a 1 MiB limit")
    s.close()


with Server("websocket_deflate_server") as srv:
    url = srv.url.replace("http://", "ws://")
    R.check("negotiation: each parameter, several offers, invalid offers declined, never more than offered",
            lambda: negotiation(srv))
    R.check("a stage cannot forge Sec-WebSocket-Extensions in the 101", lambda: forged_header(srv))
    R.check("websockets compression='deflate' is agreed; without an offer nothing is", lambda: asyncio.run(
        compression_default(url)))
    R.check("websockets with each parameter set, 16 B to 1 MiB, text and binary, whole and fragmented, "
            "on context, no-context and narrow-window servers", lambda: python_clients(url))
    R.check("server messages: RSV1, no tail, context takeover shrinks repeats, threshold sends small ones plain",
            lambda: server_compresses(srv))
    R.check("client context takeover across fragmented messages with a ping between fragments, BFINAL, empty",
            lambda: client_context_takeover(srv))
    R.check("RSV1 without the extension, on a ping or a continuation: 1002; corrupt stream or bad UTF-8: 1007",
            lambda: rule_violations(srv))
    R.check("decompression bombs close with 1009 without inflating whole; server RSS stays small",
            lambda: bombs(srv))

R.finish()
