"""Shared helpers for the integration tests: start a built program on a free loopback port, talk to it
over raw sockets, and count results in the runner's summary format."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

BIN_DIR = os.environ.get("WEIR_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "examples"))
TEST_BIN_DIR = os.environ.get("WEIR_TEST_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "tests"))


def program(name):
    for d in (BIN_DIR, TEST_BIN_DIR):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not found in {BIN_DIR} or {TEST_BIN_DIR}")


class Server:
    """A running weir program; `with Server("hello") as s:` gives s.host, s.port."""

    def __init__(self, name, *args):
        self.cmd = [program(name), "--port", "0", *args]
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.cmd[0]} exited before listening: {self.proc.stderr.read()}")
            m = re.match(r"listening on (https?)://(\[[^\]]+\]|[^:]+):(\d+)", line)
            if m:
                self.scheme = m.group(1)
                self.host = m.group(2).strip("[]")
                self.port = int(m.group(3))
                self.url = f"{self.scheme}://{m.group(2)}:{self.port}"
                return self
        raise RuntimeError("server did not announce its port")

    def __exit__(self, *exc):
        self.stop()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def connect(self, timeout=10):
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


def read_response(sock, head_only=False):
    """Reads one HTTP/1.1 response; returns (status, headers list of (lower name, value), body bytes).
    Returns None if the peer closed before a response started."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            if not buf:
                return None
            raise ConnectionError(f"closed mid-head: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers.append((name.strip().lower(), value.strip()))
    hmap = dict(headers)
    if head_only or status < 200 or status in (204, 304):
        return status, headers, b"", rest
    if "content-length" in hmap:
        n = int(hmap["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed mid-body")
            rest += chunk
        return status, headers, rest[:n], rest[n:]
    # close-delimited
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest, b""


def read_until(s, buf, needle, timeout=10):
    """Reads from `s` onto `buf` until `needle` is in it; returns it. Raises if the peer closes first."""
    s.settimeout(timeout)
    while needle not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {needle!r}; got {buf[-200:]!r}")
        buf += chunk
    return buf


def rss_kib(pid):
    """The resident memory of process `pid` (VmRSS), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def rss_mb(pid):
    """The resident memory of process `pid` (VmRSS), in MiB."""
    return rss_kib(pid) / 1024


def request(server, raw, timeout=10):
    """Sends raw bytes on a new connection and returns the first response (status, headers, body)."""
    with server.connect(timeout) as s:
        s.sendall(raw)
        r = read_response(s)
        return r[:3] if r else None


def header(headers, name):
    for n, v in headers:
        if n == name.lower():
            return v
    return None


def closed_by_peer(sock, timeout=10):
    """True if the peer closes the connection (EOF or reset) within timeout, after any pending bytes."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class Results:
    """Collects named checks and prints `N passed, M failed`; exits non-zero on any failure."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok   {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and keep going
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed or not self.passed else 0)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)
