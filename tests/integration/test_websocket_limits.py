"""WebSocket bounds against peers that misbehave: ping floods and clients that never read keep the server's
memory within its byte budgets and meet the write deadline; a server-initiated close still sees the peer's
Close behind a full inbox; a cut close reason ends on a character boundary; a foreign Origin is refused by
default. Memory is the server's RSS from /proc (skipped under sanitizers, whose quarantine holds freed
memory)."""

import os
import socket
import struct
import time

from weir_harness import Results, Server, expect, rss_kib
from ws_frames import FrameReader, client_frame as frame, open_websocket

R = Results()
SANITIZED = any(k in os.environ for k in ("ASAN_OPTIONS", "TSAN_OPTIONS"))


def closed_within(sock, seconds):
    """True if the peer ends the connection (FIN or reset) within `seconds`, draining what it sent."""
    sock.settimeout(seconds)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if not sock.recv(1 << 20):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def flood(srv, sock, chunk, seconds):
    """Sends `chunk` over and over for `seconds` without reading; returns (peak RSS growth KiB, bytes sent,
    whether the server ended the connection)."""
    base = rss_kib(srv.proc.pid)
    peak, sent, ended = base, 0, False
    sock.settimeout(0.5)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sock.sendall(chunk)
            sent += len(chunk)
        except socket.timeout:
            pass  # the server stopped reading: backpressure
        except (ConnectionResetError, BrokenPipeError):
            ended = True
            break
        peak = max(peak, rss_kib(srv.proc.pid))
    peak = max(peak, rss_kib(srv.proc.pid))
    return peak - base, sent, ended


def still_served(srv):
    s, status, _, rest = open_websocket(srv)
    expect(status == 101, status)
    s.sendall(frame(0x1, b"still served"))
    op, payload = FrameReader(s, rest).frame()[2:]
    expect((op, payload) == (0x1, b"still served"), (op, payload))
    s.close()


with Server("websocket_test_server") as srv:

    def ping_flood():
        s, status, _, _ = open_websocket(srv, "/quick")  # idle_timeout (and so the write deadline) 1 s
        expect(status == 101, status)
        pings = frame(0x9, b"p" * 125) * 2000
        growth, sent, ended = flood(srv, s, pings, 6)
        print(f"  ping flood: {sent / 2**20:.0f} MiB of pings sent, server RSS grew {growth / 1024:.1f} MiB")
        if not SANITIZED:
            expect(growth < 8 * 1024, f"server RSS grew {growth} KiB under a ping flood (budget 8 MiB)")
        expect(ended or closed_within(s, 10), "a client that pings and never reads is closed at the write deadline")
        s.close()
        still_served(srv)
    R.check("a client that floods pings and never reads keeps the server's memory flat, is closed at the write "
            "deadline, and others are still served", ping_flood)

    def echo_never_read():
        s, status, _, _ = open_websocket(srv, "/echo")  # max_message_size 16 MiB, default byte budgets
        expect(status == 101, status)
        growth, sent, ended = flood(srv, s, frame(0x2, b"m" * (1 << 20)), 6)
        print(f"  echo, never read: {sent / 2**20:.0f} MiB sent, server RSS grew {growth / 1024:.1f} MiB")
        if not SANITIZED:
            expect(growth < 32 * 1024, f"server RSS grew {growth} KiB for a client that never reads (budget 32 MiB)")
        s.close()
        still_served(srv)
    R.check("an echo session whose client never reads stops reading at its byte budgets: the server's memory "
            "stays bounded", echo_never_read)

    def write_deadline():
        s, status, _, _ = open_websocket(srv, "/quick")
        expect(status == 101, status)
        start = time.monotonic()
        growth, sent, ended = flood(srv, s, frame(0x2, b"w" * 65536) * 8, 4)
        expect(ended or closed_within(s, 10), "the echo's writes stalled past the 1 s write deadline: closed")
        print(f"  write deadline: closed after {time.monotonic() - start:.1f} s")
        s.close()
    R.check("a client that sends and never reads is closed at the write deadline", write_deadline)

    def cross_thread_overrun():
        s, status, _, rest = open_websocket(srv, "/thread-flood")
        expect(status == 101, status)
        time.sleep(1)  # read nothing while the other thread sends
        s.settimeout(10)
        f, data_bytes = FrameReader(s, rest), 0
        while True:
            _, _, op, payload = f.frame()
            if op == 0x8:
                break
            data_bytes += len(payload)
        expect(payload[:2] == struct.pack("!H", 1008), f"close {payload[:2]!r} after {data_bytes} bytes")
        expect(data_bytes < 12 * 2**20, f"{data_bytes} bytes arrived before the close")
        s.close()
    R.check("a sender on another thread that overruns the send budget closes the session with 1008",
            cross_thread_overrun)

    def close_behind_full_inbox():
        s, status, _, rest = open_websocket(srv, "/hold-then-close")
        expect(status == 101, status)
        s.sendall(frame(0x1, b"x" * 100) * 300)  # far more than the inbox holds; the handler reads nothing
        f = FrameReader(s, rest)
        payload = f.until_close()
        expect(payload[:2] == struct.pack("!H", 1000), payload)
        s.sendall(frame(0x8, payload[:2]))
        start = time.monotonic()
        expect(closed_within(s, 4), "the server saw our Close behind its full inbox and ended the connection")
        took = time.monotonic() - start
        expect(took < 2, f"the connection ended {took:.1f} s after our Close (close_timeout is 5 s)")
        s.close()
    R.check("after a server-initiated close, the peer's Close is read even when the inbox is full",
            close_behind_full_inbox)

    def reason_cut_on_boundary():
        s, status, _, rest = open_websocket(srv, "/long-reason")
        expect(status == 101, status)
        payload = FrameReader(s, rest).until_close()
        reason = payload[2:]
        expect(reason == b"a" * 122, f"reason of {len(reason)} bytes: {reason[-4:]!r}")
        reason.decode("utf-8")
        s.close()
    R.check("a close reason longer than 123 bytes is cut at a character boundary", reason_cut_on_boundary)

    def origin_by_default():
        for origin, host, want in (("http://evil.example", "localhost", 403),
                                   ("http://localhost", "localhost", 101),
                                   (f"http://127.0.0.1:{srv.port}", f"127.0.0.1:{srv.port}", 101),
                                   (None, "localhost", 101)):
            s, status, _, _ = open_websocket(srv, "/echo", origin=origin, host=host)
            expect(status == want, f"Origin {origin} with Host {host}: {status}, expected {want}")
            s.close()
    R.check("by default a foreign Origin gets 403; the server's own origin and no Origin get 101", origin_by_default)

R.finish()
