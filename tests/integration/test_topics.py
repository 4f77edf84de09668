"""Topics with real clients: SSE streams (raw sockets) and WebSocket sessions (Python websockets) subscribed to
the same topic on a four-thread server; publishers on several threads; every subscriber gets every event
exactly once, and all of them in the same order (SSE ids increasing); churn while publishing; resumes that
replay, and resumes that must start with a `reset` event; a WebSocket client that stops reading under the
drop_oldest policy keeps its connection, loses the oldest held events and gets the newest."""

import asyncio
import base64
import concurrent.futures
import os
import re
import socket
import struct
import time

import websockets

from weir_harness import Results, Server, expect, read_response

R = Results()
SSE_SUBSCRIBERS = 600
WS_SUBSCRIBERS = 600
POSTERS = 4
PER_POSTER = 25
TOTAL = POSTERS * PER_POSTER


def post(srv, topic, text, n=1):
    with srv.connect() as s:
        body = text.encode()
        s.sendall(b"POST /publish?topic=%s&n=%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % (topic.encode(), n, len(body)) + body)
        st, hs, b, _ = read_response(s)
        expect(st == 202, st)
        return int(b)


def subscribers(srv):
    with srv.connect() as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, b, _ = read_response(s)
        return int(b)


def wait_for_subscribers(srv, n, timeout=30):
    deadline = time.monotonic() + timeout
    while subscribers(srv) != n and time.monotonic() < deadline:
        time.sleep(0.05)
    return subscribers(srv)


async def open_sse(srv, path):
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    await writer.drain()
    return reader, writer


def events_of(buf):
    """(id or None, event type, data) of each event in an SSE body."""
    out = []
    body = buf.split(b"\r\n\r\n", 1)[1].decode() if b"\r\n\r\n" in buf else ""
    for block in body.split("\n\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
        if fields:
            out.append((fields.get("id"), fields.get("event", "message"), fields.get("data", "")))
    return out


async def fan_out(srv):
    ws_url = srv.url.replace("http://", "ws://") + "/ws?topics=a"
    sse = [await open_sse(srv, "/events?topics=a") for _ in range(SSE_SUBSCRIBERS)]
    sockets = []
    for _ in range(WS_SUBSCRIBERS):
        ws = await websockets.connect(ws_url, max_queue=None)
        expect(await ws.recv() == "ready", "the session joined")
        sockets.append(ws)
    expect(await asyncio.to_thread(wait_for_subscribers, srv, SSE_SUBSCRIBERS + WS_SUBSCRIBERS)
           == SSE_SUBSCRIBERS + WS_SUBSCRIBERS, "everyone subscribed")

    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(POSTERS) as pool:
        jobs = [loop.run_in_executor(pool, lambda p=p: [post(srv, "a", f"poster {p} message {m}") for m in range(PER_POSTER)])
                for p in range(POSTERS)]
        await asyncio.gather(*jobs)

    async def read_sse(reader):
        buf = b""
        while buf.count(b"data: poster") < TOTAL:
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            if not chunk:
                break
            buf += chunk
        return events_of(buf)

    async def read_ws(ws):
        return [await asyncio.wait_for(ws.recv(), 30) for _ in range(TOTAL)]

    sse_results = await asyncio.gather(*(read_sse(r) for r, _ in sse))
    ws_results = await asyncio.gather(*(read_ws(w) for w in sockets))
    reference = [data for _, _, data in sse_results[0]]
    expect(len(reference) == TOTAL and len(set(reference)) == TOTAL, f"{len(reference)} events")
    for events in sse_results:
        ids = [int(i) for i, _, _ in events]
        expect(ids == sorted(ids) and len(set(ids)) == TOTAL, f"ids in order, no duplicates: {ids[:5]}..")
        expect([d for _, _, d in events] == reference, "every SSE subscriber saw the same order")
    for got in ws_results:
        expect(got == reference, "every WebSocket subscriber saw the SSE subscribers' order")
    for _, w in sse:
        w.close()
    for ws in sockets:
        await ws.close()
    expect(await asyncio.to_thread(wait_for_subscribers, srv, 0) == 0, "everyone left")


async def churn(srv):
    """Subscribers of both kinds come and go while events are published; the steady ones miss nothing."""
    ws_url = srv.url.replace("http://", "ws://") + "/ws?topics=b"
    steady_sse = [await open_sse(srv, "/events?topics=b") for _ in range(20)]
    steady_ws = []
    for _ in range(20):
        ws = await websockets.connect(ws_url, max_queue=None)
        await ws.recv()
        steady_ws.append(ws)
    expect(await asyncio.to_thread(wait_for_subscribers, srv, 40) == 40, "steady subscribers in")
    stop = False

    async def come_and_go():
        while not stop:
            r, w = await open_sse(srv, "/events?topics=b")
            ws = await websockets.connect(ws_url)
            await asyncio.sleep(0.005)
            w.close()
            await ws.close()

    churners = [asyncio.create_task(come_and_go()) for _ in range(8)]
    n = 200
    await asyncio.to_thread(lambda: [post(srv, "b", f"churn {i}") for i in range(n)])
    stop = True
    await asyncio.gather(*churners)

    for reader, w in steady_sse:
        buf = b""
        while buf.count(b"data: churn") < n:
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            expect(chunk, "a steady stream ended")
            buf += chunk
        expect([d for _, _, d in events_of(buf)] == [f"churn {i}" for i in range(n)], "a steady stream missed nothing")
        w.close()
    for ws in steady_ws:
        got = [await asyncio.wait_for(ws.recv(), 30) for _ in range(n)]
        expect(got == [f"churn {i}" for i in range(n)], "a steady session missed nothing")
        await ws.close()
    expect(await asyncio.to_thread(wait_for_subscribers, srv, 0) == 0, "churned subscribers all left")


def read_events(s, buf, count, timeout=10):
    s.settimeout(timeout)
    while len(events_of(buf)) < count:
        chunk = s.recv(65536)
        expect(chunk, f"the stream ended after {events_of(buf)}")
        buf += chunk
    return buf


def resume(srv):
    ids = [post(srv, "a", f"r{i}") for i in range(5)]
    s = srv.connect()
    s.sendall(b"GET /events?topics=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %d\r\n\r\n" % ids[1])
    events = events_of(read_events(s, b"", 3))
    expect(events == [(str(i), "message", f"r{k + 2}") for k, i in enumerate(ids[2:])], events)
    s.close()


def resume_too_old(srv):
    first = post(srv, "a", "old")
    post(srv, "a", "filler", n=60)  # the topic keeps 50
    last = post(srv, "a", "newest")
    s = srv.connect()
    s.sendall(b"GET /events?topics=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %d\r\n\r\n" % first)
    events = events_of(read_events(s, b"", 51))
    expect(events[0] == (None, "reset", ""), f"reset first, without an id: {events[0]}")
    expect([int(i) for i, _, _ in events[1:]] == list(range(last - 49, last + 1)), "then the 50 kept events")
    s.close()


def resume_unknown_id(srv):
    s = srv.connect()
    s.sendall(b"GET /events?topics=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 999999999\r\n\r\n")
    buf = read_events(s, b"", 1)
    live = post(srv, "a", "live")
    events = events_of(read_events(s, buf, 2))
    expect(events == [(None, "reset", ""), (str(live), "message", "live")], events)
    s.close()


def held_post(srv, topic, text, n):
    with srv.connect() as s:
        body = text.encode()
        s.sendall(b"POST /held/publish?topic=%s&n=%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % (topic.encode(), n, len(body)) + body)
        st, hs, b, _ = read_response(s)
        expect(st == 202, st)
        return int(b)


def held_subscribers(srv):
    with srv.connect() as s:
        s.sendall(b"GET /held/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        return int(read_response(s)[2])


class RawWebSocket:
    """A WebSocket client on a plain socket with a small receive buffer, so that not reading soon fills the
    server's side: nothing is read unless the test asks."""

    def __init__(self, srv, path):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect((srv.host, srv.port))
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            expect(chunk, "closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        expect(head.startswith(b"HTTP/1.1 101"), head)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            expect(chunk, "the server closed the connection")
            self.buf += chunk

    def recv(self):
        """The next message's opcode and payload."""
        self._need(2)
        n, off = self.buf[1] & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        opcode, payload = self.buf[0] & 0x0F, self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return opcode, payload

    def send_text(self, text):
        data = text.encode()
        mask = os.urandom(4)
        head = struct.pack("!BB", 0x81, 0x80 | len(data)) if len(data) < 126 else \
            struct.pack("!BBH", 0x81, 0x80 | 126, len(data))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def drop_oldest_for_a_client_that_stops_reading(srv):
    ws = RawWebSocket(srv, "/held/ws?topics=h")
    expect(ws.recv() == (1, b"ready"), "the session joined")
    expect(held_subscribers(srv) == 1, "one held subscriber")
    # 2,000 events of 4 KB while the client reads nothing: far more than the socket buffers, the session's 64 KiB
    # send queue and the 64 KiB held back.
    filler = "x" * 4000
    first = held_post(srv, "h", filler, 1)
    for _ in range(9):
        held_post(srv, "h", filler, 200)
    last = held_post(srv, "h", filler, 199)
    time.sleep(0.3)
    expect(held_subscribers(srv) == 1, "the slow client is still subscribed")
    got = []
    while not got or got[-1] < last:
        opcode, payload = ws.recv()
        expect(opcode == 1, f"a text message, not opcode {opcode}")
        got.append(int(payload.split(b" ", 1)[0]))
    expect(got == sorted(set(got)), "in order, each once")
    expect(got[0] == first, f"the first events went out before the queue filled: {got[:3]}")
    expect(got[-1] == last, "the newest event arrived")
    expect(len(got) < last - first + 1, "events were dropped")
    # What was held back is always the newest events: the last gap is followed by at least what 64 KiB holds
    # of 4 KB events, up to the newest.
    gaps = [i for i in range(1, len(got)) if got[i] != got[i - 1] + 1]
    expect(gaps and len(got) - gaps[-1] >= 10, f"the newest events after the last gap: {got[gaps[-1]:]}")
    # The connection is kept: it still answers.
    ws.send_text("still here")
    expect(ws.recv() == (1, b"echo still here"), "the session still answers")
    ws.sock.close()
    deadline = time.monotonic() + 10
    while held_subscribers(srv) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(held_subscribers(srv) == 0, "the client left")


with Server("topics_test_server", "--threads", "4") as srv:
    R.check(f"{SSE_SUBSCRIBERS} SSE and {WS_SUBSCRIBERS} WebSocket subscribers on 4 threads each get all {TOTAL} "
            "events from 4 concurrent publishers, once, in one order", lambda: asyncio.run(fan_out(srv)))
    R.check("subscribers of both kinds churning while events are published: the steady ones miss nothing and "
            "everyone leaves", lambda: asyncio.run(churn(srv)))
    R.check("Last-Event-ID within the kept history replays exactly the missed events", lambda: resume(srv))
    R.check("Last-Event-ID older than the kept history gets one reset event (no id), then what is kept",
            lambda: resume_too_old(srv))
    R.check("a Last-Event-ID this server never gave gets a reset event, then live events",
            lambda: resume_unknown_id(srv))
    R.check("drop_oldest: a WebSocket client that stops reading keeps its connection, loses the oldest held "
            "events and gets the newest once it reads again",
            lambda: drop_oldest_for_a_client_that_stops_reading(srv))
    R.check("the server exits 0", lambda: expect(srv.stop() == 0, "exit status"))

R.finish()
