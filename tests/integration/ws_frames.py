"""A raw WebSocket client for tests that need exact bytes on the wire (RFC 6455): the opening handshake,
masked client frames, and a reader of the server's frames."""

import base64
import os
import struct


def open_websocket(srv, path="/echo", extensions=None, origin=None, host="localhost", extra=b""):
    """Opens a WebSocket on `path`, offering `extensions` (a string, a list of fields, or None); `extra` bytes
    follow the request at once. Returns (socket, status, headers as lower name -> list of values, bytes read
    after the head)."""
    s = srv.connect()
    key = base64.b64encode(os.urandom(16))
    fields = extensions if isinstance(extensions, list) else ([extensions] if extensions else [])
    req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n")
    if origin:
        req += b"Origin: " + origin.encode() + b"\r\n"
    for f in fields:
        req += b"Sec-WebSocket-Extensions: " + f.encode() + b"\r\n"
    s.sendall(req + b"\r\n" + extra)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return s, int(lines[0].split(" ")[1]), headers, rest


def client_frame(opcode, payload=b"", fin=True, rsv1=False):
    """One frame as a client sends it: masked with a random key."""
    mask = os.urandom(4)
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return head + mask + (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class FrameReader:
    """Reads the server's frames from a socket, starting with bytes already read."""

    def __init__(self, sock, leftover=b""):
        self.s, self.buf = sock, leftover

    def need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(fin, rsv1, opcode, payload) of the next frame; a masked server frame raises AssertionError."""
        b0, b1 = self.need(2)
        if b1 & 0x80:
            raise AssertionError("a server frame is masked")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.need(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.need(8))[0]
        return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, self.need(n)

    def until_close(self):
        """Reads frames up to the server's Close; its payload."""
        while True:
            _, _, op, payload = self.frame()
            if op == 0x8:
                return payload

    def close_code(self):
        """Reads frames up to the server's Close; its code (1005 when it has none)."""
        payload = self.until_close()
        return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
