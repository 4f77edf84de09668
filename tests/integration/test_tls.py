"""HTTPS, SSE and WSS through the chat example's TLS transport, driven by curl, `openssl s_client`, Python's ssl
module and Python websockets: versions, ALPN, SNI, plain HTTP and garbage on the TLS port, clients that never
finish a handshake, certificate reload (and a failed one), and shutdown over TLS. Certificates are made at
test time (tls_certs.py)."""

import asyncio
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from tls_certs import TestPKI
from weir_harness import read_until, Results, Server, closed_by_peer, expect, header

import websockets

R = Results()
tmp = tempfile.mkdtemp(prefix="weir-tls-")
pki = TestPKI(tmp)
first_cert, first_key, first_serial = pki.issue("first")
other_cert, other_key, other_serial = pki.issue("other", hosts=("other.test",), ips=())
live_cert, live_key = os.path.join(tmp, "live.pem"), os.path.join(tmp, "live.key")
shutil.copy(first_cert, live_cert)
shutil.copy(first_key, live_key)


def client_context():
    return ssl.create_default_context(cafile=pki.ca)


def tls_connect(srv, server_name="localhost", timeout=10):
    raw = socket.create_connection((srv.host, srv.port), timeout=timeout)
    return client_context().wrap_socket(raw, server_hostname=server_name)


def curl(srv, path, *args):
    """curl over HTTPS to https://localhost:PORT, trusting the test CA; returns (status, headers, body)."""
    r = subprocess.run(["curl", "-sS", "-i", "--max-time", "10", "--cacert", pki.ca, "--resolve",
                        f"localhost:{srv.port}:127.0.0.1", *args, f"https://localhost:{srv.port}{path}"],
                       capture_output=True)
    expect(r.returncode == 0, f"curl failed: {r.stderr.decode()}")
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hs = [(n.strip().lower(), v.strip()) for n, v in (l.split(":", 1) for l in lines[1:] if ":" in l)]
    return int(lines[0].split()[1]), hs, body


def s_client(srv, *args):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-CAfile", pki.ca, *args],
                       input=b"", capture_output=True, timeout=15)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")


def served_serial(srv, server_name="localhost"):
    _, out = s_client(srv, "-servername", server_name)
    r = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=out.encode(), capture_output=True)
    return r.stdout.decode().strip().removeprefix("serial=")


def open_events(srv):
    s = tls_connect(srv, timeout=20)
    s.sendall(f"GET /events HTTP/1.1\r\nHost: localhost:{srv.port}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        expect(chunk, "the event stream closed before its head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    expect(head.startswith(b"HTTP/1.1 200"), f"event stream head: {head[:80]!r}")
    return s, rest


def post(srv, text):
    status, _, _ = curl(srv, "/messages", "-X", "POST", "--data-binary", text)
    expect(status == 202, f"POST /messages: {status}")


def stderr_line(srv, needle, timeout=10):
    """Waits for a line containing `needle` on the server's stderr."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([srv.proc.stderr], [], [], 0.2)
        if ready:
            line = srv.proc.stderr.readline()
            if needle in line:
                return line
    raise AssertionError(f"no line with {needle!r} on the server's stderr")


def client_hello():
    """The first flight of a real TLS client (Python's ssl), without sending it anywhere."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


args = ("--tls-cert", live_cert, "--tls-key", live_key, "--tls-cert", other_cert, "--tls-key", other_key,
        "--header-timeout-ms", "3000", "--heartbeat-ms", "500", "--threads", "2")
with Server("chat", *args) as srv:
    def announces_https():
        expect(srv.scheme == "https", f"announced {srv.url}")

    def page():
        status, hs, body = curl(srv, "/")
        expect(status == 200, f"status {status}")
        expect(b"<!doctype html>" in body.lower(), "the chat page")
        expect(header(hs, "strict-transport-security") == "max-age=31536000", "HSTS on an answer over TLS")
        expect(header(hs, "x-content-type-options") == "nosniff", "the other security headers too")

    def stream_and_post():
        s, buf = open_events(srv)
        with s:
            post(srv, "over tls")
            buf = read_until(s, buf, b"data: over tls\n")

    def versions_and_alpn():
        rc, out = s_client(srv, "-tls1_3", "-servername", "localhost", "-alpn", "h2,http/1.1")
        expect(rc == 0 and "TLSv1.3" in out and "ALPN protocol: http/1.1" in out, f"TLS 1.3 + ALPN: {out[-600:]}")
        expect("Verify return code: 0 (ok)" in out, "the chain verifies against the test CA")
        rc, out = s_client(srv, "-tls1_2", "-servername", "localhost")
        expect(rc == 0 and "Protocol  : TLSv1.2" in out, f"TLS 1.2: {out[-600:]}")
        rc, out = s_client(srv, "-tls1_1", "-servername", "localhost", "-cipher", "DEFAULT@SECLEVEL=0")
        expect(rc != 0 and "Cipher is (NONE)" in out, f"TLS 1.1 must be refused: {out[-600:]}")

    def alpn_without_http11():
        rc, out = s_client(srv, "-servername", "localhost", "-alpn", "h2")
        expect(rc != 0 and "no application protocol" in out, f"ALPN h2 only: {out[-600:]}")

    def sni():
        expect(served_serial(srv, "other.test") == other_serial, "other.test gets its own certificate")
        expect(served_serial(srv, "localhost") == first_serial, "localhost gets the default")
        _, out = s_client(srv, "-noservername")
        r = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=out.encode(), capture_output=True)
        expect(r.stdout.decode().strip() == f"serial={first_serial}", "no server name: the default certificate")
        with tls_connect(srv, server_name="other.test") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
            expect(read_until(s, b"", b"\r\n\r\n").startswith(b"HTTP/1.1 200"), "served under the other name")

    def wss():
        async def go():
            async with websockets.connect(f"wss://localhost:{srv.port}/ws", ssl=client_context(),
                                          open_timeout=10) as ws:
                await ws.send("hello over wss")
                got = await asyncio.wait_for(ws.recv(), 10)
                expect(got == "hello over wss", f"echoed through the room: {got!r}")
                # Large messages cross many TLS records both ways.
                big = "x" * 60000
                await ws.send(big)
                got = await asyncio.wait_for(ws.recv(), 10)
                expect(got == big, "a 60 KB message round trip")
        asyncio.run(go())

    def plain_http_on_tls_port():
        with srv.connect() as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: localhost:{srv.port}\r\n\r\n".encode())
            data = b""
            s.settimeout(5)
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            expect(data.startswith(b"HTTP/1.1 400 "), f"answer: {data[:60]!r}")
            expect(b"HTTPS" in data, "the body says the port speaks HTTPS")
        status, _, _ = curl(srv, "/")
        expect(status == 200, "still serving over TLS")

    def garbage():
        for junk in (b"\x00\x01\x02garbage\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\xff\xff" + b"\x00" * 64):
            with srv.connect() as s:
                s.sendall(junk)
                expect(closed_by_peer(s, timeout=5), f"closed after {junk[:6]!r}")
        status, _, _ = curl(srv, "/")
        expect(status == 200, "still serving")

    def stalled_handshakes():
        hello = client_hello()
        expect(len(hello) > 100, "a ClientHello")
        silent = [srv.connect() for _ in range(200)]
        halfway = []
        for _ in range(50):
            s = srv.connect()
            s.sendall(hello[: len(hello) // 2])
            halfway.append(s)
        try:
            t = time.monotonic()
            status, _, _ = curl(srv, "/")
            took = time.monotonic() - t
            expect(status == 200 and took < 2.0, f"a new client served in {took:.2f} s beside 250 stalled ones")
            # The handshake is bounded by the header timeout (3 s here): all of them are dropped.
            time.sleep(4)
            still_open = 0
            for s in silent + halfway:
                if not closed_by_peer(s, timeout=0.5):
                    still_open += 1
            expect(still_open == 0, f"{still_open} stalled handshakes still open after the header timeout")
        finally:
            for s in silent + halfway:
                s.close()

    def reload():
        s, buf = open_events(srv)
        with s:
            expect(int(s.getpeercert()["serialNumber"], 16) == int(first_serial, 16), "the stream's certificate")
            new_cert, new_key, new_serial = pki.issue("renewed")
            shutil.copy(new_cert, live_cert)
            shutil.copy(new_key, live_key)
            srv.proc.send_signal(signal.SIGHUP)
            stderr_line(srv, "reloaded")
            expect(served_serial(srv) == new_serial, "a new connection sees the renewed certificate")
            post(srv, "after reload")
            buf = read_until(s, buf, b"data: after reload\n")
        # A reload that fails (a key that is not PEM) keeps the renewed certificate and says why.
        with open(live_key, "w") as f:
            f.write("not a key\n")
        srv.proc.send_signal(signal.SIGHUP)
        line = stderr_line(srv, "reload failed")
        expect("private key" in line, f"the error names the key: {line.strip()}")
        expect(served_serial(srv) == new_serial, "the certificate in use stays")
        status, _, _ = curl(srv, "/")
        expect(status == 200, "still serving")

    def shutdown_over_tls():
        s, buf = open_events(srv)

        async def go():
            async with websockets.connect(f"wss://localhost:{srv.port}/ws", ssl=client_context()) as ws:
                rc = await asyncio.get_running_loop().run_in_executor(None, srv.stop)
                expect(rc == 0, f"exit status {rc}")
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed as e:
                    return e.rcvd.code if e.rcvd else None
            return None

        code = asyncio.run(go())
        expect(code == 1001, f"the WSS session was closed with {code}, not 1001")
        s.settimeout(10)
        rest = b""
        while True:
            chunk = s.recv(65536)  # b"" on close_notify; an unexpected EOF would raise
            if not chunk:
                break
            rest += chunk
        s.close()

    R.check("the chat announces https:// when it serves TLS", announces_https)
    R.check("curl over HTTPS gets the page, with Strict-Transport-Security", page)
    R.check("a message POSTed with curl reaches an event stream over TLS", stream_and_post)
    R.check("TLS 1.3 and 1.2 are accepted, 1.1 is refused, ALPN selects http/1.1", versions_and_alpn)
    R.check("a client whose ALPN offers only h2 is refused (no_application_protocol)", alpn_without_http11)
    R.check("SNI picks the certificate for the name asked; no name gets the default", sni)
    R.check("Python websockets sends and receives chat messages over WSS", wss)
    R.check("a plain HTTP request to the TLS port gets 400 saying so, and TLS clients are still served",
            plain_http_on_tls_port)
    R.check("garbage on the TLS port is closed and nothing crashes", garbage)
    R.check("250 connections that never finish a handshake do not delay a new client and are dropped at the "
            "header timeout", stalled_handshakes)
    R.check("SIGHUP reloads the certificate for new connections while an open stream keeps receiving; a failed "
            "reload keeps it", reload)
    R.check("SIGTERM over TLS: the WSS session gets 1001, the event stream ends with close_notify, exit 0",
            shutdown_over_tls)

with Server("chat") as plain:
    def no_hsts_over_plain_http():
        with plain.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(4096)
            expect(b"strict-transport-security" not in data.lower(), "HSTS must not go over plain HTTP")

    R.check("Strict-Transport-Security is not sent over plain HTTP", no_hsts_over_plain_http)

# The HTTP core over TLS, both ways a connection serves: the fast path (a synchronous application of plain
# responses) and the coroutine (an application with a coroutine stage).
for plain in (True, False):
    extra = ("--plain", "1") if plain else ()
    how = "fast path" if plain else "coroutine"
    with Server("core_test_server", "--tls-cert", first_cert, "--tls-key", first_key, "--max-body", "4000000",
                *extra) as core:
        def pipelined_over_tls():
            with tls_connect(core) as s:
                s.sendall(b"".join(b"GET /hello/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i for i in range(32)))
                data = b""
                s.settimeout(10)
                while data.count(b"HTTP/1.1 200") < 32 or not data.endswith(b"Hello, 31!"):
                    chunk = s.recv(65536)
                    expect(chunk, f"closed after {data.count(b'HTTP/1.1 200')} answers")
                    data += chunk
                bodies = [int(x) for x in __import__("re").findall(rb"Hello, (\d+)!", data)]
                expect(bodies == list(range(32)), f"answers in order: {bodies[:8]}...")

        def large_echo_to_slow_reader():
            body = os.urandom(3_000_000)
            with tls_connect(core, timeout=30) as s:
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                time.sleep(1.0)  # the server's socket fills: encrypted bytes wait in its backlog
                data = b""
                while b"\r\n\r\n" not in data:
                    data += s.recv(65536)
                head, rest = data.split(b"\r\n\r\n", 1)
                while len(rest) < len(body):
                    chunk = s.recv(1 << 20)
                    expect(chunk, f"closed after {len(rest)} of {len(body)} bytes")
                    rest += chunk
                expect(rest == body, "the echo is byte-exact")
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                expect(b"Hello, World!" in read_until(s, b"", b"Hello, World!"), "the connection goes on")

        R.check(f"32 pipelined requests in one TLS write are answered in order ({how})", pipelined_over_tls)
        R.check(f"a 3 MB response to a reader that waits arrives byte-exact over TLS ({how})",
                large_echo_to_slow_reader)

shutil.rmtree(tmp, ignore_errors=True)
R.finish()
