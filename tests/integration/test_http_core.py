"""The HTTP/1.1 server core against real clients: curl and raw sockets, on loopback.

With WEIR_CORE_PLAIN=1 (test_http_core_plain.py) the same checks run against `core_test_server --plain 1`: an
application whose replies are all plain responses, served on the connection's fast path without a coroutine
while requests arrive whole. The checks that need a coroutine handler or an upgrade are left out there."""

import concurrent.futures
import os
import resource
import signal
import socket
import subprocess
import threading
import time

from weir_harness import Results, Server, closed_by_peer, expect, header, read_response, request, rss_mb

R = Results()
H = b"Host: localhost\r\n"
PLAIN = os.environ.get("WEIR_CORE_PLAIN") == "1"


def core_server(*args):
    return Server("core_test_server", *args, *(("--plain", "1") if PLAIN else ()))


def check_async(name, fn):
    """A check that needs the coroutine routes (/slow, /padded-stream): not on the plain server."""
    if not PLAIN:
        R.check(name, fn)


def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\n" + H + extra + b"\r\n"


def expect_status(server, raw, code, closes=True):
    with server.connect() as s:
        s.sendall(raw)
        r = read_response(s)
        expect(r is not None, "no response")
        expect(r[0] == code, f"status {r[0]} != {code}")
        if closes:
            expect(header(r[1], "connection") == "close", "error response must say Connection: close")
            expect(closed_by_peer(s), "connection should be closed after the error")
        return r


with core_server("--header-timeout-ms", "1500", "--idle-timeout-ms", "3000",
            "--max-body", "4096", "--max-header-bytes", "2048", "--max-request-line", "256",
            "--max-header-count", "20", "--shutdown-timeout-ms", "5000") as srv:

    def curl_get():
        out = subprocess.run(["curl", "-sS", "-i", srv.url + "/"], capture_output=True, text=True, check=True).stdout
        expect(out.startswith("HTTP/1.1 200"), out)
        expect("Hello, World!" in out, out)
        expect("date:" in out.lower(), "Date header missing")
    R.check("curl gets 200 with a Date header", curl_get)

    def curl_post_chunked():
        out = subprocess.run(["curl", "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", "abc" * 100,
                              srv.url + "/echo"], capture_output=True, text=True, check=True).stdout
        expect(out == "abc" * 100, out[:80])
    R.check("a chunked request body arrives decoded (curl)", curl_post_chunked)

    def curl_expect_continue():
        out = subprocess.run(["curl", "-sS", "-v", "-H", "Expect: 100-continue", "--data-binary", "x" * 2000,
                              srv.url + "/echo"], capture_output=True, text=True, check=True)
        expect(out.stdout == "x" * 2000, "body echoed")
        expect("100 Continue" in out.stderr, "server sent 100 Continue")
    R.check("Expect: 100-continue gets a 100 before the body is sent (curl)", curl_expect_continue)

    def head_has_no_body():
        with srv.connect() as s:
            s.sendall(b"HEAD / HTTP/1.1\r\n" + H + b"\r\n" + get(b"/"))
            st, hs, body, rest = read_response(s, head_only=True)
            expect(st == 200 and header(hs, "content-length") == "13", f"{st} {hs}")
            s.settimeout(5)
            # The next response must start right where the HEAD response's head ended.
            buf = rest
            while b"Hello, World!" not in buf:
                buf += s.recv(4096)
            expect(buf.startswith(b"HTTP/1.1 200"), f"HEAD response carried a body: {buf[:40]!r}")
    R.check("HEAD gets the GET route's headers and no body", head_has_no_body)

    def no_content():
        st, hs, body = request(srv, get(b"/no-content"))
        expect(st == 204 and header(hs, "content-length") is None and body == b"", f"{st} {hs}")
    R.check("204 carries neither body nor Content-Length", no_content)

    def keep_alive():
        with srv.connect() as s:
            for i in range(5):
                s.sendall(get(b"/hello/" + str(i).encode()))
                st, hs, body, _ = read_response(s)
                expect(body == f"Hello, {i}!".encode(), body)
    R.check("HTTP/1.1 keeps the connection alive by default", keep_alive)

    def http10_closes():
        with srv.connect() as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            st, hs, body, _ = read_response(s)
            expect(st == 200, st)
            expect(closed_by_peer(s), "HTTP/1.0 without keep-alive must close")
    R.check("HTTP/1.0 without keep-alive is closed after the response", http10_closes)

    def http10_keep_alive():
        with srv.connect() as s:
            for _ in range(2):
                s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                st, hs, body, _ = read_response(s)
                expect(header(hs, "connection") == "keep-alive", hs)
    R.check("HTTP/1.0 with Connection: keep-alive stays open", http10_keep_alive)

    def connection_close():
        with srv.connect() as s:
            s.sendall(get(b"/", b"Connection: close\r\n"))
            st, hs, body, _ = read_response(s)
            expect(header(hs, "connection") == "close", hs)
            expect(closed_by_peer(s), "closed")
    R.check("Connection: close is honoured", connection_close)

    def pipelining():
        with srv.connect() as s:
            s.sendall(b"".join(get(b"/hello/" + str(i).encode()) for i in range(16)))
            s.settimeout(10)
            data = b""
            while data.count(b"HTTP/1.1 200") < 16 or not data.endswith(b"Hello, 15!"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            bodies = [int(x.split(b"!")[0]) for x in data.split(b"Hello, ")[1:]]
            expect(bodies == list(range(16)), f"order {bodies}")
    R.check("16 pipelined requests are answered in order", pipelining)

    def pipelined_post_then_get():
        with srv.connect() as s:
            s.sendall(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello" + get(b"/"))
            st, hs, body, rest = read_response(s)
            expect(body == b"hello", body)
    R.check("a pipelined request after a body is parsed from the right byte", pipelined_post_then_get)

    def exception_is_500_and_connection_survives():
        with srv.connect() as s:
            s.sendall(get(b"/throw"))
            st, hs, body, _ = read_response(s)
            expect(st == 500, st)
            s.sendall(get(b"/"))
            st, hs, body, _ = read_response(s)
            expect(st == 200, st)
    R.check("a throwing handler gives 500 and the connection keeps serving", exception_is_500_and_connection_survives)

    def tamper_is_500():
        st, hs, body = request(srv, get(b"/tamper"))
        expect(st == 500, f"setting Content-Length in a handler must fail clearly, got {st}")
    R.check("a handler that sets Content-Length gets a clear 500", tamper_is_500)

    def not_found_and_405():
        st, hs, body = request(srv, get(b"/nowhere"))
        expect(st == 404, st)
        st, hs, body = request(srv, b"DELETE / HTTP/1.1\r\n" + H + b"\r\n")
        expect(st == 405 and "GET" in header(hs, "allow"), f"{st} {hs}")
    R.check("unknown path is 404, wrong method is 405 with Allow", not_found_and_405)

    bad = [
        ("a missing Host on HTTP/1.1 is 400", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two Host fields are 400", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("Content-Length with Transfer-Encoding is 400",
         b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("differing Content-Length values are 400",
         b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        ("a malformed Content-Length is 400", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
        ("chunked that is not the last coding is 400",
         b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n", 400),
        ("an unknown transfer coding before chunked is 501",
         b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("a transfer coding other than chunked as the last is 400",
         b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
        ("a chunk size that overflows is 400",
         b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n", 400),
        ("obs-fold is 400", b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n", 400),
        ("whitespace before the colon is 400", b"GET / HTTP/1.1\r\n" + H + b"X-A : 1\r\n\r\n", 400),
        ("a bare CR is 400", b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r2\r\n\r\n", 400),
        ("an invalid method token is 400", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
        ("an unsupported version is 505", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
        ("a request line over the limit is 414", b"GET /" + b"a" * 400 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
        ("a head over the limit is 431", b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 3000 + b"\r\n\r\n", 431),
        ("too many header fields is 431",
         b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: 1\r\n" % i for i in range(30)) + b"\r\n", 431),
        ("a body over the limit is 413 before it is sent",
         b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 100000\r\n\r\n", 413),
        ("a chunked body over the limit is 413",
         b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + b"800\r\n" + b"a" * 2048 + b"\r\n"
         + b"800\r\n" + b"a" * 2048 + b"\r\n" + b"800\r\n" + b"a" * 2048 + b"\r\n0\r\n\r\n", 413),
    ]
    for name, raw, code in bad:
        R.check(name, lambda raw=raw, code=code: expect_status(srv, raw, code))

    def server_survives_bad_input():
        st, hs, body = request(srv, get(b"/"))
        expect(st == 200, st)
    R.check("after every bad request the server still serves others", server_survives_bad_input)

    def slowloris():
        victim = srv.connect()
        victim.sendall(b"GET / HTTP/1.1\r\n")  # and never finish the head
        # Others are served while it dawdles.
        st, hs, body = request(srv, get(b"/"))
        expect(st == 200, st)
        victim.settimeout(15)
        data = b""
        try:
            while True:
                chunk = victim.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        expect(data.startswith(b"HTTP/1.1 408"), f"a stalled head gets 408 then close, got {data[:40]!r}")
        victim.close()
    R.check("a head that stalls past the header timeout gets 408 and is closed (slowloris)", slowloris)

    def idle_closed():
        with srv.connect() as s:
            s.sendall(get(b"/"))
            read_response(s)
            expect(closed_by_peer(s, timeout=15), "idle keep-alive connection closed after the idle timeout")
    R.check("an idle keep-alive connection is closed after the idle timeout", idle_closed)

    def many_connections():
        def one(i):
            with srv.connect(timeout=20) as s:
                s.sendall(get(b"/hello/" + str(i).encode()))
                st, hs, body, _ = read_response(s)
                return body == f"Hello, {i}!".encode()
        socks = [srv.connect(timeout=20) for _ in range(300)]  # held open while others are served
        with concurrent.futures.ThreadPoolExecutor(32) as ex:
            results = list(ex.map(one, range(500)))
        for s in socks:
            s.close()
        expect(all(results), f"{results.count(False)} failures")
    R.check("500 requests on separate connections while 300 idle connections are held", many_connections)

    def graceful_shutdown():
        s = srv.connect(timeout=20)
        s.sendall(get(b"/slow?ms=1500"))
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        st, hs, body, _ = read_response(s)
        expect(st == 200 and body == b"slept", f"in-flight request finished: {st} {body}")
        expect(header(hs, "connection") == "close", "shutdown closes after the response")
        rc = srv.proc.wait(timeout=20)
        expect(rc == 0, f"exit status {rc}")
    check_async("SIGTERM lets an in-flight request finish, then exits 0", graceful_shutdown)



def measures_rss(pid):
    """False under sanitizers: they keep freed memory in quarantine, so RSS says nothing there."""
    if any(k in os.environ for k in ("ASAN_OPTIONS", "TSAN_OPTIONS")):
        return False
    with open(f"/proc/{pid}/maps") as f:
        return not any(lib in f.read() for lib in ("libasan", "libtsan"))
CHUNKED_POST = b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"


def dribble(sock, data, interval, give_up):
    """Sends data one byte every `interval` seconds until the server answers; returns (reply, seconds)."""
    start = time.monotonic()
    sock.setblocking(False)
    got = b""
    for b in data:
        try:
            sock.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            break
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    return got, time.monotonic() - start
                got += chunk
            except BlockingIOError:
                pass
            except ConnectionResetError:
                return got, time.monotonic() - start
            if got:
                return got, time.monotonic() - start
            time.sleep(0.02)
        if time.monotonic() - start > give_up:
            break
    return got, time.monotonic() - start


with core_server("--header-timeout-ms", "1000", "--body-timeout-ms", "1000",
            "--idle-timeout-ms", "20000", "--max-body", "2000000", "--shutdown-timeout-ms", "500") as srv:

    def head_dribble():
        with srv.connect() as s:
            got, took = dribble(s, get(b"/hello/slow-loris"), 0.3, give_up=8)
        expect(got.startswith(b"HTTP/1.1 408"), f"a head dribbled 1 byte per 0.3 s gets 408, got {got[:40]!r}")
        expect(took < 2.5, f"within header_timeout (1 s) of its first byte, not {took:.1f} s")
    R.check("header_timeout bounds the whole head: a head dribbled a byte at a time gets 408 on time",
            head_dribble)

    def body_dribble():
        with srv.connect() as s:
            s.sendall(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 40\r\n\r\n")
            got, took = dribble(s, b"x" * 40, 0.3, give_up=8)
        expect(got.startswith(b"HTTP/1.1 408"), f"a body dribbled 1 byte per 0.3 s gets 408, got {got[:40]!r}")
        expect(took < 2.5, f"within body_timeout (1 s) of the head, not {took:.1f} s")
    R.check("body_timeout bounds the whole body: a body dribbled a byte at a time gets 408 on time", body_dribble)

    def chunked_dribble():
        with srv.connect() as s:
            s.sendall(CHUNKED_POST)
            got, took = dribble(s, b"1\r\nx\r\n" * 10, 0.2, give_up=8)
        expect(got.startswith(b"HTTP/1.1 408"), f"a chunked body dribbled gets 408, got {got[:40]!r}")
        expect(took < 2.5, f"within body_timeout (1 s) of the head, not {took:.1f} s")
    R.check("body_timeout bounds a chunked body too", chunked_dribble)

    def many_chunk_extensions():
        body = b"".join(b"1;e=" + b"x" * 3000 + b"\r\nx\r\n" for _ in range(50)) + b"0\r\n\r\n"
        with srv.connect() as s:
            try:
                s.sendall(CHUNKED_POST + body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = read_response(s)
        expect(r is not None and r[0] == 400, f"status {r and r[0]}")
    R.check("chunk extensions past 4 KiB in total per request get 400, however short each line is",
            many_chunk_extensions)

    def disconnect_cancels_handler():
        with srv.connect() as s:
            s.sendall(get(b"/cancelled"))
            before = int(read_response(s)[2])
        s = srv.connect()
        s.sendall(get(b"/slow?ms=4000"))
        time.sleep(0.3)
        s.close()
        time.sleep(0.5)
        with srv.connect() as s:
            s.sendall(get(b"/cancelled"))
            after = int(read_response(s)[2])
        expect(after == before + 1, f"the handler's wait was cancelled when its client left: {before} -> {after}")
    check_async("a client that disconnects while a coroutine handler waits cancels the handler's wait",
            disconnect_cancels_handler)

    def shutdown_cancels_slow_handler():
        s = srv.connect(timeout=20)
        s.sendall(get(b"/slow?ms=20000"))
        time.sleep(0.3)
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        r = read_response(s)
        try:
            rc = srv.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        expect(rc == 0, f"exit status {rc}")
        expect(took < 0.5 + 1.5, f"exited {took:.1f} s after SIGTERM with shutdown_timeout 0.5 s")
        expect(r is not None and r[0] == 503, f"the cancelled request is answered 503: {r and r[0]}")
    check_async("shutdown_timeout cancels a handler still waiting: 503, and the process exits on time",
            shutdown_cancels_slow_handler)


# Memory: the default body timeout, so that a slow (sanitized) build still gets the bodies through. Descriptors
# for many idle connections (the server inherits the raised limit).
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(_hard, 16384), _hard))
with core_server("--idle-timeout-ms", "20000", "--max-body", "2000000") as srv:

    def raw_chunks_not_kept():
        n_conns, chunks = 20, 200_000  # each: 1.2 MB of raw chunked framing for a 200 KB body
        base = rss_mb(srv.proc.pid)
        socks = [srv.connect(timeout=30) for _ in range(n_conns)]
        piece = b"1\r\nx\r\n" * chunks
        for s in socks:
            s.sendall(CHUNKED_POST + piece)
        time.sleep(0.5)
        grown = rss_mb(srv.proc.pid) - base
        for s in socks:
            s.sendall(b"0\r\n\r\n")
            st, _, body, _ = read_response(s)
            expect(st == 200 and body == b"x" * chunks, f"{st} {len(body)}")
            s.close()
        print(f"     RSS grew {grown:.1f} MB for {n_conns} chunked uploads in progress "
              f"({n_conns * 1.2:.0f} MB raw, {n_conns * 0.2:.0f} MB decoded)", flush=True)
        if measures_rss(srv.proc.pid):
            expect(grown < 15, f"the raw framing is dropped as it is decoded: RSS grew {grown:.1f} MB")
    R.check("a chunked body is decoded as it arrives: the connection keeps no raw framing (RSS)",
            raw_chunks_not_kept)

    def idle_after_chunked_upload():
        n_conns, size = 60, 1_000_000
        base = rss_mb(srv.proc.pid)
        socks = []
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(size // len(chunk)))
        for _ in range(n_conns):
            s = srv.connect(timeout=30)
            s.sendall(CHUNKED_POST + body + b"0\r\n\r\n")
            st, hs, echoed, _ = read_response(s)
            expect(st == 200 and len(echoed) == len(chunk) * (size // len(chunk)), f"{st} {len(echoed)}")
            socks.append(s)  # idle keep-alive from here on
        time.sleep(0.3)
        grown = rss_mb(srv.proc.pid) - base
        print(f"     RSS grew {grown:.1f} MB with {n_conns} idle connections after ~1 MB chunked uploads",
              flush=True)
        for s in socks:
            s.close()
        if measures_rss(srv.proc.pid):
            expect(grown < 20, f"idle connections keep no request body: RSS grew {grown:.1f} MB")
    R.check("idle keep-alive connections do not keep their last chunked body (RSS)", idle_after_chunked_upload)

    def idle_connection_holds_no_read_buffer():
        n_conns = 2000
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * n_conns + 100:
            print("     skipped: not enough file descriptors", flush=True)
            return
        for _ in range(20):  # warm up: the loop's spare buffers and the allocator's arenas
            with srv.connect() as s:
                s.sendall(get(b"/"))
                read_response(s)
        time.sleep(0.2)
        base = rss_mb(srv.proc.pid)
        socks = []
        for _ in range(n_conns):
            s = srv.connect(timeout=30)
            s.sendall(get(b"/"))
            expect(read_response(s)[0] == 200, "200")
            socks.append(s)
        time.sleep(0.3)
        per_conn = (rss_mb(srv.proc.pid) - base) * 1024 * 1024 / n_conns
        print(f"     {per_conn:.0f} bytes of RSS per idle keep-alive connection ({n_conns} connections)", flush=True)
        for s in socks:
            s.close()
        if measures_rss(srv.proc.pid):
            # Measured here: 7.8 KB with a 4 KiB read buffer each, 3.8 KB without, 2.5 KB without a timer and
            # watchdog coroutine per connection, about 1 KB with no coroutine while idle.
            expect(per_conn < 2000, f"an idle connection holds no buffer and no coroutine: {per_conn:.0f} bytes each")
    R.check("an idle keep-alive connection holds no read buffer (RSS per connection)",
            idle_connection_holds_no_read_buffer)



with core_server("--shutdown-timeout-ms", "4000") as srv:

    def upgrade_blocked_on_head_hears_shutdown():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect((srv.host, srv.port))
        s.sendall(get(b"/padded-stream?pad=8000000"))
        time.sleep(0.5)  # the server is now blocked writing the 8 MB head
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        data = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        took = time.monotonic() - t0
        s.close()
        expect(data.startswith(b"HTTP/1.1 200"), f"the stream's head arrived: {bytes(data[:20])!r}")
        expect(took < 2.5, f"the stream ended on shutdown, not at shutdown_timeout (4 s): {took:.1f} s")
        rc = srv.proc.wait(timeout=10)
        expect(rc == 0, f"exit status {rc}")
    check_async("an upgrade whose head write is blocked when shutdown begins still hears the shutdown",
            upgrade_blocked_on_head_hears_shutdown)

R.finish()
