"""The chat example's contract, driven with raw sockets, curl and Python websockets; and behind Debian's
nginx as a reverse proxy with a default proxy configuration."""

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from weir_harness import read_until, Results, Server, closed_by_peer, expect, header, read_response

import websockets

R = Results()
GOOD = "http://good.example"


def http(srv, method, path, body=b"", headers=()):
    with srv.connect() as s:
        extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n".encode() + extra +
                  (b"Content-Length: %d\r\n" % len(body) if body or method == "POST" else b"") + b"\r\n" + body)
        st, hs, b, _ = read_response(s, head_only=method == "HEAD")
        return st, hs, b


def open_events(srv, path="/events", headers=()):
    s = srv.connect(timeout=20)
    extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n".encode() + extra + b"\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hs = [(n.strip().lower(), v.strip()) for n, v in (l.split(":", 1) for l in lines[1:])]
    return s, int(lines[0].split()[1]), hs, rest


def common_headers(hs, what):
    expect(header(hs, "x-request-id"), f"{what}: X-Request-Id")
    expect(header(hs, "x-content-type-options") == "nosniff", f"{what}: nosniff")
    expect(header(hs, "x-frame-options") == "DENY", f"{what}: DENY")
    expect(header(hs, "referrer-policy") == "no-referrer", f"{what}: no-referrer")


with Server("chat", "--allow-origin", GOOD, "--heartbeat-ms", "300") as srv:

    def page():
        st, hs, body = http(srv, "GET", "/")
        expect(st == 200 and b"EventSource" in body and b"WebSocket" in body, st)
        common_headers(hs, "page")
    R.check("GET / serves the page with the request id and security headers", page)

    def sse_head_and_message():
        s, st, hs, rest = open_events(srv, headers=[("Origin", GOOD)])
        expect(st == 200 and header(hs, "content-type").startswith("text/event-stream"), hs)
        common_headers(hs, "SSE head")
        expect(header(hs, "access-control-allow-origin") == GOOD, "CORS on the SSE head")
        expect(header(hs, "access-control-allow-credentials") == "true", hs)
        expect("origin" in header(hs, "vary").lower(), hs)
        st2, hs2, b2 = http(srv, "POST", "/messages", "two\nlines ✓".encode(), [("Content-Type", "text/plain")])
        expect(st2 == 202, st2)
        buf = read_until(s, rest, "✓".encode())
        text = buf.decode()
        expect("event: message\n" in text and "data: two\ndata: lines ✓\n" in text, text)
        expect("id: " in text, text)
        s.close()
    R.check("a POSTed message reaches /events with id, event: message and one data line per line", sse_head_and_message)

    def heartbeat():
        s, st, hs, rest = open_events(srv)
        buf = read_until(s, rest, b":\n\n", timeout=10)
        expect(b":\n\n" in buf, buf)
        s.close()
    R.check("the event stream sends heartbeat comments", heartbeat)

    def replay():
        ids = []
        for i in range(3):
            st, hs, b = http(srv, "POST", "/messages", f"replay {i}".encode())
            expect(st == 202, st)
        s, st, hs, rest = open_events(srv)
        s.close()
        # Find the id of "replay 0" by reading a fresh stream with Last-Event-ID 0 (everything buffered).
        s, st, hs, rest = open_events(srv, headers=[("Last-Event-ID", "0")])
        buf = read_until(s, rest, b"replay 2")
        s.close()
        events = [e for e in buf.decode().split("\n\n") if "replay" in e]
        first_id = int([l for l in events[0].split("\n") if l.startswith("id: ")][0][4:])
        s, st, hs, rest = open_events(srv, headers=[("Last-Event-ID", str(first_id))])
        buf = read_until(s, rest, b"replay 2")
        s.close()
        expect(b"replay 0" not in buf and b"replay 1" in buf, buf)
    R.check("Last-Event-ID replays the buffered messages with a greater id", replay)

    def post_errors():
        st, hs, b = http(srv, "POST", "/messages", b"bad \xff\xfe utf-8")
        expect(st == 400, st)
        st, hs, b = http(srv, "POST", "/messages", b"x" * (64 * 1024 + 1))
        expect(st == 413, st)
        st, hs, b = http(srv, "POST", "/messages", "é".encode() * (32 * 1024))
        expect(st == 202, f"exactly 64 KiB is accepted: {st}")
    R.check("POST /messages: invalid UTF-8 is 400, over 64 KiB is 413, 64 KiB is accepted", post_errors)

    def preflight():
        st, hs, b = http(srv, "OPTIONS", "/messages", headers=[
            ("Origin", GOOD), ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "authorization, content-type")])
        expect(st == 204, st)
        expect(header(hs, "access-control-allow-origin") == GOOD, hs)
        expect(header(hs, "access-control-allow-credentials") == "true", hs)
        methods = header(hs, "access-control-allow-methods")
        expect("GET" in methods and "POST" in methods, methods)
        allowed = header(hs, "access-control-allow-headers").lower()
        for h in ("authorization", "content-type", "last-event-id"):
            expect(h in allowed, allowed)
    R.check("a preflight from a listed origin gets 204 allowing GET, POST and the chat's headers", preflight)

    def foreign_origin_gets_no_cors():
        st, hs, b = http(srv, "POST", "/messages", b"from evil", [("Origin", "http://evil.example")])
        expect(header(hs, "access-control-allow-origin") is None, hs)
        st, hs, b = http(srv, "OPTIONS", "/messages", headers=[
            ("Origin", "http://evil.example"), ("Access-Control-Request-Method", "POST")])
        expect(header(hs, "access-control-allow-origin") is None, hs)
    R.check("an origin that is not listed gets no CORS headers", foreign_origin_gets_no_cors)

    async def ws_roundtrip(url):
        async with websockets.connect(url + "/ws") as a, websockets.connect(url + "/ws", origin=GOOD) as b:
            await asyncio.sleep(0.1)
            await a.send("over the websocket")
            got_a = await asyncio.wait_for(a.recv(), 10)
            got_b = await asyncio.wait_for(b.recv(), 10)
            expect(got_a == "over the websocket" and got_b == got_a, (got_a, got_b))
            s, st, hs, rest = open_events(srv)
            await asyncio.sleep(0.1)
            st2, hs2, body = http(srv, "POST", "/messages", b"posted for all")
            expect(await asyncio.wait_for(a.recv(), 10) == "posted for all", "POST reaches WebSocket subscribers")
            expect(await asyncio.wait_for(b.recv(), 10) == "posted for all", "...all of them")
            read_until(s, rest, b"posted for all")
            s.close()

    R.check("a WebSocket message is published to every subscriber, the sender included",
            lambda: asyncio.run(ws_roundtrip(srv.url.replace("http://", "ws://"))))

    def ws_101_headers_and_origin():
        def handshake(origin=None):
            with srv.connect() as s:
                key = base64.b64encode(os.urandom(16))
                s.sendall(f"GET /ws HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n".encode() +
                          b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Key: " + key + b"\r\n" +
                          (f"Origin: {origin}\r\n".encode() if origin else b"") + b"\r\n")
                st, hs, b, rest = read_response(s, head_only=True)
                return st, hs
        st, hs = handshake(GOOD)
        expect(st == 101, st)
        common_headers(hs, "101")
        expect(header(hs, "access-control-allow-origin") == GOOD, "CORS headers on the 101 too")
        expect(handshake("http://evil.example")[0] == 403, "a foreign Origin is refused")
        expect(handshake(f"http://{srv.host}:{srv.port}")[0] == 101, "the server's own origin is allowed")
        expect(handshake(None)[0] == 101, "no Origin (not a browser) is allowed")
    R.check("the 101 carries the request id, security and CORS headers; a foreign Origin gets 403",
            ws_101_headers_and_origin)

    async def shutdown(url):
        ws = await websockets.connect(url + "/ws")
        s, st, hs, rest = open_events(srv)
        srv.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed:
            pass
        expect(ws.close_code == 1001, f"close code {ws.close_code}")
        expect(closed_by_peer(s), "the event stream ends")
        expect(srv.proc.wait(timeout=15) == 0, "exit status 0")

    R.check("SIGTERM closes WebSockets with 1001, ends event streams and exits 0",
            lambda: asyncio.run(shutdown(srv.url.replace("http://", "ws://"))))


with Server("chat", "--token", "s3cret") as srv:

    def token_required():
        st, hs, b = http(srv, "GET", "/")
        expect(st == 200, "the page stays open")
        for path in ("/events", "/ws"):
            st, hs, b = http(srv, "GET", path)
            expect(st == 401 and header(hs, "www-authenticate").startswith("Bearer"), (path, st, hs))
            expect(header(hs, "content-type") != "text/event-stream; charset=utf-8", "no stream on a 401")
        st, hs, b = http(srv, "POST", "/messages", b"no token")
        expect(st == 401, st)
        st, hs, b = http(srv, "POST", "/messages", b"with token", [("Authorization", "Bearer s3cret")])
        expect(st == 202, st)
        s, st, hs, rest = open_events(srv, "/events?token=s3cret")
        expect(st == 200, st)
        s.close()
        st, hs, b = http(srv, "POST", "/messages", b"wrong", [("Authorization", "Bearer nope")])
        expect(st == 401, st)
    R.check("with --token, /events, /ws and /messages need the token (header or ?token=), else 401", token_required)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


nginx = shutil.which("nginx") or "/usr/sbin/nginx"
if not os.path.exists(nginx):
    R.check("nginx is installed (scripts/install-deps.sh installs nginx-light)", lambda: expect(False, "missing"))
else:
    with Server("chat") as srv:
        def behind_nginx():
            port = free_port()
            with tempfile.TemporaryDirectory() as d:
                conf = os.path.join(d, "nginx.conf")
                with open(conf, "w") as f:
                    f.write(f"""
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://{srv.host}:{srv.port}; }}
  }}
}}
""")
                proc = subprocess.Popen([nginx, "-c", conf, "-p", d], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                try:
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        try:
                            socket.create_connection(("127.0.0.1", port), timeout=1).close()
                            break
                        except OSError:
                            time.sleep(0.05)
                    s = socket.create_connection(("127.0.0.1", port), timeout=20)
                    s.sendall(b"GET /events HTTP/1.1\r\nHost: proxy\r\n\r\n")
                    buf = read_until(s, b"", b"\r\n\r\n")
                    expect(buf.startswith(b"HTTP/1.1 200"), buf[:100])
                    time.sleep(0.2)
                    st, hs, b = http(srv, "POST", "/messages", b"through the proxy")
                    expect(st == 202, st)
                    # A proxy that buffered the stream would hold this small event back indefinitely.
                    buf = read_until(s, buf, b"through the proxy", timeout=10)
                    s.close()
                finally:
                    proc.terminate()
                    proc.wait(timeout=10)
        R.check("behind nginx with a default proxy config, events arrive while the stream is open", behind_nginx)

R.finish()
