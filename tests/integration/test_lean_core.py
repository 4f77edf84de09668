"""The lean connection core: every timeout fires on the loop's deadline sweep within its granularity, shutdown
ends on time with thousands of idle connections, many heads split across reads are answered at once, and an
upgrade that follows pipelined bytes works."""

import resource
import signal
import socket
import time

from weir_harness import Results, Server, closed_by_peer, expect, header, read_response

R = Results()
H = b"Host: localhost\r\n"
# The sweep wakes at most 50 ms late; the rest is scheduling and loopback on a busy machine.
SLACK = 0.6


def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\n" + H + extra + b"\r\n"


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def seconds_until_answer_or_close(s, give_up=10):
    """Waits for the server to send something or close; returns (bytes, seconds)."""
    start = time.monotonic()
    s.settimeout(give_up)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data, time.monotonic() - start


with Server("core_test_server", "--header-timeout-ms", "700", "--body-timeout-ms", "900",
            "--idle-timeout-ms", "1100", "--write-timeout-ms", "800", "--max-body", "100000") as srv:

    def header_timeout_on_time():
        with srv.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\n")
            data, took = seconds_until_answer_or_close(s)
        expect(data.startswith(b"HTTP/1.1 408"), f"408 for a stalled head, got {data[:40]!r}")
        expect(0.7 <= took < 0.7 + SLACK, f"header_timeout is 0.7 s, the 408 came after {took:.2f} s")
    R.check("the header timeout answers 408 within its granularity", header_timeout_on_time)

    def body_timeout_on_time():
        with srv.connect() as s:
            s.sendall(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc")
            data, took = seconds_until_answer_or_close(s)
        expect(data.startswith(b"HTTP/1.1 408"), f"408 for a stalled body, got {data[:40]!r}")
        expect(0.9 <= took < 0.9 + SLACK, f"body_timeout is 0.9 s, the 408 came after {took:.2f} s")
    R.check("the body timeout answers 408 within its granularity", body_timeout_on_time)

    def idle_timeout_on_time():
        with srv.connect() as s:
            s.sendall(get(b"/"))
            expect(read_response(s)[0] == 200, "200")
            t0 = time.monotonic()
            expect(closed_by_peer(s, timeout=10), "closed after the idle timeout")
            took = time.monotonic() - t0
        expect(1.1 - 0.05 <= took < 1.1 + SLACK, f"idle_timeout is 1.1 s, closed after {took:.2f} s")
    R.check("the idle timeout closes a keep-alive connection within its granularity", idle_timeout_on_time)

    def idle_timeout_of_a_fresh_connection():
        with srv.connect() as s:
            t0 = time.monotonic()
            expect(closed_by_peer(s, timeout=10), "closed after the idle timeout")
            took = time.monotonic() - t0
        expect(1.1 - 0.05 <= took < 1.1 + SLACK, f"idle_timeout is 1.1 s, closed after {took:.2f} s")
    R.check("a connection that never sends is closed after the idle timeout", idle_timeout_of_a_fresh_connection)

    def stalled_reader(pad):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((srv.host, srv.port))
        s.sendall(get(b"/padded-stream?pad=" + str(pad).encode()))
        return s

    def drain(s, limit):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.settimeout(5)
        got = 0
        try:
            while got < limit:
                chunk = s.recv(1 << 20)
                if not chunk:
                    return got, True
                got += len(chunk)
        except (ConnectionResetError, socket.timeout):
            return got, True
        return got, False

    def write_timeout_on_time():
        pad = 8_000_000
        # Read before the write timeout: the head arrives whole and the stream goes on.
        s = stalled_reader(pad)
        time.sleep(0.4)
        got, closed = drain(s, pad)
        s.close()
        expect(got >= pad and not closed, f"before write_timeout (0.8 s) the write goes on: {got} bytes")
        # Read after it: the server gave up on the write and closed.
        s = stalled_reader(pad)
        time.sleep(0.8 + SLACK)
        got, closed = drain(s, 2 * pad)
        s.close()
        expect(closed and got < pad, f"after write_timeout (0.8 s) the connection is closed: {got} bytes")
    R.check("the write timeout closes a connection whose peer does not read, within its granularity",
            write_timeout_on_time)

    def pipelined_upgrade():
        with srv.connect() as s:
            s.sendall(get(b"/hello/first") + get(b"/padded-stream?pad=3"))
            st, hs, body, rest = read_response(s)
            expect(st == 200 and body == b"Hello, first!", f"the GET is answered first: {st} {body!r}")
            s.settimeout(5)
            data = rest
            while b"data: 2\n" not in data:
                chunk = s.recv(4096)
                expect(chunk, f"the stream goes on: {data[:200]!r}")
                data += chunk
            expect(data.startswith(b"HTTP/1.1 200"), f"then the stream's head: {data[:40]!r}")
            expect(b"text/event-stream" in data.lower(), "an event stream")
            expect(b"data: 0\n" in data and b"data: 1\n" in data, f"events in order: {data[-80:]!r}")
    R.check("an upgrade that follows a pipelined GET in the same write is answered in order and streams",
            pipelined_upgrade)


def split_heads(threads, plain=False):
    with Server("core_test_server", "--threads", str(threads), *(("--plain", "1") if plain else ())) as srv:
        def many_split_heads():
            n = 200
            socks = [srv.connect(timeout=20) for _ in range(n)]
            heads = [get(b"/hello/" + str(i).encode(), b"X-Filler: " + b"f" * 200 + b"\r\n") for i in range(n)]
            for start, end in ((0, 17), (17, 90), (90, None)):  # three writes per head, so three reads
                for s, h in zip(socks, heads):
                    s.sendall(h[start:end])
                time.sleep(0.05)
            bad = []
            for i, s in enumerate(socks):
                r = read_response(s)
                if r is None or r[0] != 200 or r[2] != f"Hello, {i}!".encode():
                    bad.append(i)
                s.close()
            expect(not bad, f"{len(bad)} of {n} answered wrongly: {bad[:10]}")
        what = ", fast path" if plain else ""
        R.check(f"200 connections whose heads are split across reads are all answered ({threads} threads{what})",
                many_split_heads)


split_heads(1)
split_heads(4)
split_heads(4, plain=True)  # the first read finds part of a head: the connection hands over to its coroutine


fds = raise_fd_limit()
with Server("core_test_server", "--shutdown-timeout-ms", "2000", "--idle-timeout-ms", "60000",
            "--max-connections", "20000") as srv:

    def shutdown_with_many_idle():
        n = 10_000
        if fds < n + 200:
            print(f"     skipped: {fds} file descriptors", flush=True)
            return
        socks = []
        for i in range(n):
            s = srv.connect(timeout=30)
            if i % 2 == 0:  # half idle after a request, half never sent anything
                s.sendall(get(b"/"))
            socks.append(s)
        for s in socks[::2]:
            expect(read_response(s)[0] == 200, "200")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        rc = srv.proc.wait(timeout=30)
        took = time.monotonic() - t0
        print(f"     shutdown with {n} idle connections took {took:.2f} s", flush=True)
        for s in socks:
            s.close()
        expect(rc == 0, f"exit status {rc}")
        expect(took < 2.0 + 1.5, f"shutdown_timeout is 2 s, shutdown took {took:.2f} s")
    R.check("shutdown with 10,000 idle connections finishes within shutdown_timeout", shutdown_with_many_idle)

R.finish()
