"""RFC 6455 conformance with raw sockets, following the Autobahn TestSuite's categories: framing (1),
ping/pong (2), reserved bits (3), opcodes (4), fragmentation (5), UTF-8 (6), close handling (7) and large
messages with chopped writes (9); plus the handshake and the pending-upgrade head."""

import base64
import hashlib
import os
import socket
import struct
import time

from weir_harness import Results, Server, expect, header, read_response

R = Results()
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Client:
    def __init__(self, srv, path="/echo", extra=b"", first_bytes=b""):
        self.sock = srv.connect(timeout=20)
        self.key = base64.b64encode(os.urandom(16))
        req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: " + self.key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
        self.sock.sendall(req + first_bytes)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = [(n.strip().lower(), v.strip()) for n, v in (l.split(":", 1) for l in lines[1:])]

    def accept_ok(self):
        want = base64.b64encode(hashlib.sha1(self.key + GUID.encode()).digest()).decode()
        return self.status == 101 and header(self.headers, "sec-websocket-accept") == want

    def frame(self, opcode, payload=b"", fin=True, rsv=0, mask=True, length_override=None):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length_override is None else length_override
        if n < 126:
            head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 else _mask(payload, key)
        return head + key + masked

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_chopped(self, data, size):
        for i in range(0, len(data), size):
            self.sock.sendall(data[i:i + size])

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def recv_frame(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        expect(not (b1 & 0x80), "server frames are never masked")
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, bool(b0 & 0x80), payload

    def recv_message(self):
        """Next data message as (opcode, payload), answering nothing; control frames other than close are skipped."""
        while True:
            op, fin, payload = self.recv_frame()
            if op in (0x9, 0xA):
                continue
            return op, payload

    def expect_close(self, code):
        """Reads until a close frame; checks its code (None: no code) and that the TCP connection then ends."""
        while True:
            op, fin, payload = self.recv_frame()
            if op == 0x8:
                break
            if op in (0x1, 0x2, 0x9, 0xA, 0x0):
                continue
        got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        expect(got == code, f"close code {got}, expected {code}")
        expect(got not in (1005, 1006, 1015), "1005, 1006 and 1015 are never sent")
        try:
            self.send(0x8, payload[:2])
        except OSError:
            pass
        self.sock.settimeout(10)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        self.sock.close()

    def echo(self, opcode, payload):
        self.send(opcode, payload)
        op, got = self.recv_message()
        expect(op == opcode and got == payload, f"echo mismatch: op {op}, {len(got)} bytes vs {len(payload)}")

    def close(self):
        self.send(0x8, struct.pack("!H", 1000))
        self.expect_close(1000)


def _mask(payload, key):
    n = len(payload)
    k = int.from_bytes((key * ((n // 4) + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def request_raw(srv, raw):
    with srv.connect() as s:
        s.sendall(raw)
        r = read_response(s)
        return r[:3]


def case(name, fn):
    R.check(name, fn)


with Server("websocket_test_server") as srv:
    # 1. Framing
    for size in (0, 125, 126, 127, 65535, 65536):
        def text_echo(size=size):
            c = Client(srv)
            c.echo(0x1, b"*" * size)
            c.echo(0x2, bytes(range(256)) * (size // 256) + bytes(size % 256))
            c.close()
        case(f"1. text and binary messages of {size} bytes are echoed exactly", text_echo)

    def chopped_small():
        c = Client(srv)
        c.send_chopped(c.frame(0x1, b"Hello, chopped world"), 1)
        op, got = c.recv_message()
        expect(got == b"Hello, chopped world", got)
        c.close()
    case("1. a frame written one byte at a time is reassembled", chopped_small)

    def leftover_bytes():
        probe = Client.__new__(Client)
        frame = Client.frame(probe, 0x1, b"sent with the handshake")
        c = Client(srv, first_bytes=frame)
        expect(c.accept_ok(), c.status)
        op, got = c.recv_message()
        expect(got == b"sent with the handshake", got)
        c.close()
    case("1. frames sent in the same packet as the handshake are not lost", leftover_bytes)

    # 2. Ping/pong
    def ping_pong():
        c = Client(srv)
        c.send(0x9, b"ping payload")
        op, fin, payload = c.recv_frame()
        expect(op == 0xA and payload == b"ping payload", (op, payload))
        c.send(0x9, b"x" * 125)
        op, fin, payload = c.recv_frame()
        expect(op == 0xA and payload == b"x" * 125, op)
        c.send(0xA, b"unsolicited")  # ignored
        for i in range(10):
            c.send(0x9, str(i).encode())
        pongs = [c.recv_frame() for _ in range(10)]
        expect([p[2] for p in pongs] == [str(i).encode() for i in range(10)], pongs)
        c.echo(0x1, b"still alive")
        c.close()
    case("2. a ping is answered by a pong with its payload; unsolicited pongs are ignored", ping_pong)

    def ping_too_long():
        c = Client(srv)
        c.send(0x9, b"x" * 126)
        c.expect_close(1002)
    case("2. a ping with more than 125 bytes is a protocol error (1002)", ping_too_long)

    def ping_fragmented():
        c = Client(srv)
        c.send(0x9, b"frag", fin=False)
        c.expect_close(1002)
    case("2. a fragmented ping is a protocol error (1002)", ping_fragmented)

    # 3. Reserved bits
    for rsv in (1, 2, 3, 4, 5, 6, 7):
        def reserved(rsv=rsv):
            c = Client(srv)
            c.send(0x1, b"rsv", rsv=rsv)
            c.expect_close(1002)
        case(f"3. RSV bits {rsv:03b} without an extension close with 1002", reserved)

    def reserved_on_ping():
        c = Client(srv)
        c.send(0x9, b"", rsv=4)
        c.expect_close(1002)
    case("3. RSV bits on a ping close with 1002", reserved_on_ping)

    # 4. Opcodes
    for opcode in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
        def reserved_opcode(opcode=opcode):
            c = Client(srv)
            c.send(opcode, b"x")
            c.expect_close(1002)
        case(f"4. reserved opcode {opcode:#x} closes with 1002", reserved_opcode)

    # 5. Fragmentation
    def fragments():
        c = Client(srv)
        c.send(0x1, b"frag", fin=False)
        c.send(0x0, b"men", fin=False)
        c.send(0x0, b"ted", fin=True)
        op, got = c.recv_message()
        expect(op == 0x1 and got == b"fragmented", got)
        c.close()
    case("5. a message in three fragments is echoed whole", fragments)

    def fragments_with_ping():
        c = Client(srv)
        c.send(0x1, b"one ", fin=False)
        c.send(0x9, b"between")
        c.send(0x0, b"two", fin=True)
        op, fin, payload = c.recv_frame()
        expect(op == 0xA and payload == b"between", (op, payload))
        op, got = c.recv_message()
        expect(got == b"one two", got)
        c.close()
    case("5. a ping between fragments is answered and the message still arrives", fragments_with_ping)

    def continuation_without_start():
        c = Client(srv)
        c.send(0x0, b"orphan", fin=True)
        c.expect_close(1002)
    case("5. a continuation with no message started closes with 1002", continuation_without_start)

    def new_message_inside_fragmented():
        c = Client(srv)
        c.send(0x1, b"start", fin=False)
        c.send(0x1, b"again", fin=True)
        c.expect_close(1002)
    case("5. a new data frame inside a fragmented message closes with 1002", new_message_inside_fragmented)

    # 6. UTF-8
    valid = ["κόσμε", "Hello-µ@ßöäüàá-UTF-8!!", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff",
             "\ud7ff", "\ue000", "\ufffd", "日本語"]
    def utf8_valid():
        c = Client(srv)
        for s in valid:
            c.echo(0x1, s.encode())
        # a code point split across fragments is fine
        data = "€uro".encode()
        c.send(0x1, data[:1], fin=False)
        c.send(0x0, data[1:2], fin=False)
        c.send(0x0, data[2:], fin=True)
        op, got = c.recv_message()
        expect(got == data, got)
        c.close()
    case("6. valid UTF-8 (the Kuhn boundary cases) is echoed, even split inside a code point", utf8_valid)

    invalid = {
        "an unexpected continuation byte": b"\x80",
        "an overlong '/'": b"\xc0\xaf",
        "an overlong NUL": b"\xe0\x80\x80",
        "a UTF-16 surrogate": b"\xed\xa0\x80",
        "a code point above U+10FFFF": b"\xf4\x90\x80\x80",
        "a 0xF5 lead byte": b"\xf5\x80\x80\x80",
        "0xFE": b"\xfe",
        "a truncated sequence at the end": b"abc\xe2\x82",
        "a lead byte followed by ASCII": b"\xc3(",
    }
    for label, data in invalid.items():
        def utf8_invalid(data=data):
            c = Client(srv)
            c.send(0x1, b"ok " + data)
            c.expect_close(1007)
        case(f"6. {label} in a text message closes with 1007", utf8_invalid)

    def utf8_fail_fast():
        c = Client(srv)
        c.send(0x1, b"good start \xed\xa0\x80 then more", fin=False)
        # The close arrives before the message's last fragment is sent.
        c.expect_close(1007)
    case("6. invalid UTF-8 in a first fragment closes with 1007 before the message ends", utf8_fail_fast)

    # 7. Close handling
    def close_normal():
        c = Client(srv)
        c.send(0x8, struct.pack("!H", 1000) + b"bye")
        c.expect_close(1000)
    case("7. a close with 1000 is answered with 1000 and the TCP connection closes", close_normal)

    def close_empty():
        c = Client(srv)
        c.send(0x8, b"")
        c.expect_close(None)
    case("7. an empty close is answered with an empty close", close_empty)

    def close_one_byte():
        c = Client(srv)
        c.send(0x8, b"\x03")
        c.expect_close(1002)
    case("7. a one-byte close payload closes with 1002", close_one_byte)

    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
        def close_invalid(code=code):
            c = Client(srv)
            c.send(0x8, struct.pack("!H", code))
            c.expect_close(1002)
        case(f"7. close code {code} is invalid and answered with 1002", close_invalid)

    for code in (1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
        def close_valid(code=code):
            c = Client(srv)
            c.send(0x8, struct.pack("!H", code))
            c.expect_close(code)
        case(f"7. close code {code} is echoed", close_valid)

    def close_reason_invalid_utf8():
        c = Client(srv)
        c.send(0x8, struct.pack("!H", 1000) + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")
        c.expect_close(1007)
    case("7. a close reason that is not UTF-8 closes with 1007", close_reason_invalid_utf8)

    def data_after_close_ignored():
        c = Client(srv)
        c.send(0x8, struct.pack("!H", 1000))
        try:
            c.send(0x1, b"too late")
        except OSError:
            pass
        op, fin, payload = c.recv_frame()
        expect(op == 0x8 and struct.unpack("!H", payload[:2])[0] == 1000, (op, payload))
    case("7. data after a close is not echoed", data_after_close_ignored)

    def server_initiated_close():
        c = Client(srv, "/server-closes")
        op, got = c.recv_message()
        expect(got == b"bye", got)
        op, fin, payload = c.recv_frame()
        expect(op == 0x8 and payload == struct.pack("!H", 1000) + b"done", payload)
        c.send(0x8, payload[:2])
        c.sock.settimeout(10)
        expect(c.sock.recv(10) == b"", "TCP closed after the closing handshake")
    case("7. a session that ends sends close 1000 and waits for the reply", server_initiated_close)

    # 9. Large messages and chopped writes
    for size in (1 << 20, 4 << 20):
        def large(size=size):
            c = Client(srv)
            payload = os.urandom(size)
            c.send(0x2, payload)
            op, got = c.recv_message()
            expect(got == payload, "binary echo")
            text = ("ü" * (size // 2)).encode()
            c.send(0x1, text)
            op, got = c.recv_message()
            expect(got == text, "text echo")
            c.close()
        case(f"9. {size >> 20} MiB text and binary messages are echoed", large)

    def chopped_large():
        c = Client(srv)
        payload = ("α" * 40000).encode()
        c.send_chopped(c.frame(0x1, payload), 997)
        op, got = c.recv_message()
        expect(got == payload, "chopped echo")
        c.close()
    case("9. an 80 KB message written in 997-byte pieces is echoed", chopped_large)

    def fragmented_large():
        c = Client(srv)
        chunks = [os.urandom(65536) for _ in range(16)]
        for i, ch in enumerate(chunks):
            c.send(0x2 if i == 0 else 0x0, ch, fin=i == len(chunks) - 1)
        op, got = c.recv_message()
        expect(got == b"".join(chunks), "1 MiB in 16 fragments")
        c.close()
    case("9. a 1 MiB message in 16 fragments is echoed whole", fragmented_large)

    # Limits and malformed frames
    def too_big():
        c = Client(srv, "/small")
        c.send(0x1, b"x" * 2000)
        c.expect_close(1009)
    case("a message over the limit closes with 1009", too_big)

    def too_big_fragments():
        c = Client(srv, "/small")
        c.send(0x1, b"x" * 600, fin=False)
        c.send(0x0, b"x" * 600, fin=True)
        c.expect_close(1009)
    case("fragments that add up over the limit close with 1009", too_big_fragments)

    def unmasked():
        c = Client(srv)
        c.send(0x1, b"not masked", mask=False)
        c.expect_close(1002)
    case("an unmasked client frame closes with 1002", unmasked)

    def msb_length():
        c = Client(srv)
        c.sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 63) + b"\0\0\0\0")
        c.expect_close(1002)
    case("a 64-bit length with the most significant bit set closes with 1002", msb_length)

    # Handshake
    def bad_version():
        st, hs, body = request_raw(srv, b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
        expect(st == 426 and header(hs, "sec-websocket-version") == "13", (st, hs))
    case("another WebSocket version gets 426 with Sec-WebSocket-Version: 13", bad_version)

    def bad_key():
        st, hs, body = request_raw(srv, b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                        b"Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        expect(st == 400, st)
        st, hs, body = request_raw(srv, b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        expect(st == 400, st)
        st, hs, body = request_raw(srv, b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
                                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        expect(st == 400, st)
    case("a bad key, or no Upgrade or Connection token, gets 400", bad_key)

    def accept_key_and_headers():
        c = Client(srv, extra=b"Connection: keep-alive, Upgrade\r\n")
        expect(c.accept_ok(), (c.status, c.headers))
        cookies = [v for n, v in c.headers if n == "set-cookie"]
        expect(len(cookies) == 2, f"both Set-Cookie fields on the 101: {cookies}")
        expect(header(c.headers, "x-request-id") == "ws-request-1", c.headers)
        expect(header(c.headers, "x-frame-options") == "DENY", c.headers)
        expect(header(c.headers, "sec-websocket-protocol") is None, "no subprotocol header when none was asked")
        c.close()
    case("the 101 carries the accept key and every stage's headers (two cookies, request id)", accept_key_and_headers)

    def refused_after_next():
        with srv.connect() as s:
            key = base64.b64encode(os.urandom(16))
            s.sendall(b"GET /refused HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
            st, hs, body, rest = read_response(s)
            expect(st == 403 and header(hs, "upgrade") is None and header(hs, "sec-websocket-accept") is None, (st, hs))
            expect(header(hs, "x-request-id") == "ws-request-1", "stage headers on the refusal too")
            s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
            st, hs, body, rest = read_response(s)
            expect(st == 200, "the connection is still HTTP after the refused upgrade")
    case("a 403 after next never starts the WebSocket session", refused_after_next)

    def subprotocols():
        c = Client(srv, "/proto", b"Sec-WebSocket-Protocol: chat.v0, chat.v1\r\n")
        expect(header(c.headers, "sec-websocket-protocol") == "chat.v1", c.headers)
        op, got = c.recv_message()
        expect(got == b"subprotocol=chat.v1", got)
        c.close()
        c = Client(srv, "/proto", b"Sec-WebSocket-Protocol: chat.v1\r\nSec-WebSocket-Protocol: chat.v2\r\n")
        expect(header(c.headers, "sec-websocket-protocol") == "chat.v2", "the server's preference wins")
        c.close()
        c = Client(srv, "/proto", b"Sec-WebSocket-Protocol: other\r\n")
        expect(c.status == 101 and header(c.headers, "sec-websocket-protocol") is None, "never an empty header")
        c.close()
    case("the subprotocol is one the client offered, the server's first choice, never empty", subprotocols)

    def origin_check():
        c = Client(srv, "/origin", b"Origin: http://evil.example\r\n")
        expect(c.status == 403, c.status)
        c = Client(srv, "/origin", b"Origin: http://good.example\r\n")
        expect(c.status == 101, c.status)
        c.close()
        c = Client(srv, "/origin", b"Origin: http://localhost\r\n")
        expect(c.status == 101, "the server's own origin is allowed")
        c.close()
        c = Client(srv, "/origin")
        expect(c.status == 101, "no Origin (not a browser) is allowed")
        c.close()
    case("the Origin check answers 403 to an origin neither listed nor the server's own", origin_check)

    def idle_ping_and_timeout():
        c = Client(srv, "/quick")
        op, fin, payload = c.recv_frame()
        expect(op == 0x9, f"the server pings a quiet client, got opcode {op}")
        # Answer nothing more: the server gives up after its idle timeout.
        c.sock.settimeout(10)
        start = time.monotonic()
        data = b""
        try:
            while True:
                chunk = c.sock.recv(4096)
                if not chunk:
                    break
        except (ConnectionResetError, socket.timeout):
            pass
        expect(time.monotonic() - start < 9, "the silent client was disconnected")
    case("a quiet client is pinged, and disconnected when it stays silent", idle_ping_and_timeout)

    def pong_keeps_alive():
        c = Client(srv, "/quick")
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            op, fin, payload = c.recv_frame()
            if op == 0x9:
                c.send(0xA, payload)
        c.echo(0x1, b"still here after 2.5 s")
        c.close()
    case("a client that answers pings stays connected past the idle timeout", pong_keeps_alive)


R.finish()
