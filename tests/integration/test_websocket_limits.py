"""WebSocket bounds against peers that misbehave: ping floods and clients that never read keep the server's
memory within its byte budgets and meet the write deadline; a server-initiated close still sees the peer's
Close behind a full inbox; a cut close reason ends on a character boundary; a foreign Origin is refused by
default. Memory is the server's RSS from /proc (skipped under sanitizers, whose quarantine holds freed
memory)."""

import base64
import os
import socket
import struct
import time

from weir_harness import Results, Server, expect, rss_kib

R = Results()
SANITIZED = any(k in os.environ for k in ("ASAN_OPTIONS", "TSAN_OPTIONS"))


def frame(opcode, payload=b"", fin=True):
    # Masked with an all-zero key (legal, and no XOR to compute for large payloads).
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def handshake(srv, path="/echo", origin=None, host="localhost"):
    s = srv.connect(timeout=10)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" +
              (b"Origin: " + origin.encode() + b"\r\n" if origin else b"") + b"\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return s, int(head.split(b" ")[1]), rest


class Frames:
    def __init__(self, sock, buf=b""):
        self.sock, self.buf = sock, buf

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def next(self):
        self._need(2)
        n, off = self.buf[1] & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        op, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return op, payload

    def until_close(self):
        while True:
            op, payload = self.next()
            if op == 0x8:
                return payload


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
    s, status, rest = handshake(srv)
    expect(status == 101, status)
    s.sendall(frame(0x1, b"still served"))
    op, payload = Frames(s, rest).next()
    expect((op, payload) == (0x1, b"still served"), (op, payload))
    s.close()


with Server("websocket_test_server") as srv:

    def ping_flood():
        s, status, _ = handshake(srv, "/quick")  # idle_timeout (and so the write deadline) 1 s
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
        s, status, _ = handshake(srv, "/echo")  # max_message_size 16 MiB, default byte budgets
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
        s, status, _ = handshake(srv, "/quick")
        expect(status == 101, status)
        start = time.monotonic()
        growth, sent, ended = flood(srv, s, frame(0x2, b"w" * 65536) * 8, 4)
        expect(ended or closed_within(s, 10), "the echo's writes stalled past the 1 s write deadline: closed")
        print(f"  write deadline: closed after {time.monotonic() - start:.1f} s")
        s.close()
    R.check("a client that sends and never reads is closed at the write deadline", write_deadline)

    def cross_thread_overrun():
        s, status, rest = handshake(srv, "/thread-flood")
        expect(status == 101, status)
        time.sleep(1)  # read nothing while the other thread sends
        s.settimeout(10)
        f, data_bytes = Frames(s, rest), 0
        while True:
            op, payload = f.next()
            if op == 0x8:
                break
            data_bytes += len(payload)
        expect(payload[:2] == struct.pack("!H", 1008), f"close {payload[:2]!r} after {data_bytes} bytes")
        expect(data_bytes < 12 * 2**20, f"{data_bytes} bytes arrived before the close")
        s.close()
    R.check("a sender on another thread that overruns the send budget closes the session with 1008",
            cross_thread_overrun)

    def close_behind_full_inbox():
        s, status, rest = handshake(srv, "/hold-then-close")
        expect(status == 101, status)
        s.sendall(frame(0x1, b"x" * 100) * 300)  # far more than the inbox holds; the handler reads nothing
        f = Frames(s, rest)
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
        s, status, rest = handshake(srv, "/long-reason")
        expect(status == 101, status)
        payload = Frames(s, rest).until_close()
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
            s, status, _ = handshake(srv, "/echo", origin, host)
            expect(status == want, f"Origin {origin} with Host {host}: {status}, expected {want}")
            s.close()
    R.check("by default a foreign Origin gets 403; the server's own origin and no Origin get 101", origin_by_default)

R.finish()
