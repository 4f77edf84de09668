"""Server-Sent Events against curl and raw sockets: the head carries every stage's headers, events are
encoded per the WHATWG spec, refusals send no stream bytes, disconnects end the producer, and a hub reaches
1000 subscribers and replays after Last-Event-ID."""

import os
import selectors
import socket
import subprocess
import time

from weir_harness import Results, Server, closed_by_peer, expect, header, read_response, rss_kib

R = Results()


def parse_events(text):
    """A spec-following SSE parser (WHATWG HTML 9.2.6), enough for these tests."""
    events, data, event, last_id = [], [], "", None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                events.append({"id": last_id, "event": event or "message", "data": "\n".join(data)})
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
    return events


def open_stream(srv, path, extra=b""):
    s = srv.connect()
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n" + extra + b"\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return s, head.decode(), rest


def stat_of(srv, what):
    with srv.connect() as s:
        s.sendall(b"GET /stats?of=%s HTTP/1.1\r\nHost: x\r\n\r\n" % what)
        st, hs, body, _ = read_response(s)
        return int(body)


def stats(srv):
    with srv.connect() as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, body, _ = read_response(s)
        subs, producers = body.decode().split()
        return int(subs), int(producers)


with Server("sse_test_server") as srv:

    def curl_stream():
        out = subprocess.run(["curl", "-sS", "-N", "-i", srv.url + "/events?n=3"], capture_output=True,
                             timeout=20, check=True).stdout.decode()
        head, _, body = out.partition("\r\n\r\n")
        low = head.lower()
        expect("content-type: text/event-stream" in low, head)
        expect("cache-control: no-store" in low, head)
        expect("x-accel-buffering: no" in low, head)
        expect("content-length" not in low, "an event stream never has Content-Length")
        expect(low.count("set-cookie:") == 2, "both cookies of the stage survive on the SSE head")
        expect("x-request-id: test-id-1" in low, head)
        events = parse_events(body)
        expect(len(events) == 3, events)
        expect(events[1] == {"id": "2", "event": "tick", "data": "event 2\nsecond line\nthird"}, events[1])
    R.check("curl reads a stream whose head carries every stage's headers", curl_stream)

    def refused_after_next():
        s = srv.connect()
        s.sendall(b"GET /refused HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, body, rest = read_response(s)
        expect(st == 401, st)
        expect(header(hs, "content-type") != "text/event-stream; charset=utf-8", "no SSE head on a refusal")
        expect(body == b"" and rest == b"", f"no stream bytes: {body!r} {rest!r}")
        # the connection stays usable: the refusal is a plain response
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, body, _ = read_response(s)
        expect(st == 200, st)
        s.close()
    R.check("a 401 after next never starts the SSE stream", refused_after_next)

    def post_stream():
        out = subprocess.run(["curl", "-sS", "-N", "-X", "POST", "--data-binary", "abc", srv.url + "/stream"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        expect([e["data"] for e in parse_events(out)] == ["a", "b", "c", "[DONE]"], out)
    R.check("a POST request gets an event stream too", post_stream)

    def head_request():
        s = srv.connect()
        s.sendall(b"HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n")
        st, hs, body, rest = read_response(s, head_only=True)
        expect(st == 200, st)
        s.settimeout(1)
        try:
            extra = s.recv(100)
        except socket.timeout:
            extra = b""
        expect(extra == b"", f"HEAD starts no stream: {extra!r}")
        s.close()
    R.check("HEAD on a stream route answers the head and starts no stream", head_request)

    def disconnect_ends_producer():
        socks = []
        for _ in range(5):
            s, head, rest = open_stream(srv, b"/forever")
            socks.append(s)
        deadline = time.monotonic() + 10
        while stats(srv)[1] != 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect(stats(srv)[1] == 5, f"5 producers running: {stats(srv)}")
        for s in socks:
            s.close()
        deadline = time.monotonic() + 10
        while stats(srv)[1] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect(stats(srv)[1] == 0, f"producers ended after the clients left: {stats(srv)}")
    R.check("a client that disconnects mid-stream ends its producer and runs its cleanup", disconnect_ends_producer)

    def heartbeats_on_quiet_stream():
        s, head, rest = open_stream(srv, b"/quiet")
        s.settimeout(5)
        buf = rest
        started = time.monotonic()
        while buf.count(b":\n\n") < 3:
            chunk = s.recv(4096)
            expect(chunk, "the quiet stream ended")
            buf += chunk
        elapsed = time.monotonic() - started
        expect(elapsed < 2, f"three heartbeats took {elapsed:.1f} s (every 200 ms expected)")
        expect(parse_events(buf.decode()) == [], "heartbeats are comments, not events")
        deadline = time.monotonic() + 10
        while stats(srv)[1] != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect(stats(srv)[1] == 1, f"the quiet producer runs: {stats(srv)}")
        s.close()
        deadline = time.monotonic() + 10
        while stats(srv)[1] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect(stats(srv)[1] == 0, f"a quiet stream notices its client leaving: {stats(srv)}")
    R.check("a quiet stream sends heartbeat comments and notices its client leaving", heartbeats_on_quiet_stream)

    def hub_fan_out():
        n = 1000
        sel = selectors.DefaultSelector()
        socks = []
        for i in range(n):
            s = srv.connect(timeout=30)
            s.sendall(b"GET /hub HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        deadline = time.monotonic() + 30
        while stats(srv)[0] < n and time.monotonic() < deadline:
            time.sleep(0.1)
        expect(stats(srv)[0] >= n, f"{stats(srv)[0]} subscribers")
        published = []
        for k in range(5):
            with srv.connect() as p:
                body = f"broadcast {k}".encode()
                p.sendall(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                st, hs, rb, _ = read_response(p)
                expect(st == 202, st)
                published.append(int(rb))
        bufs = {s: b"" for s in socks}
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        done = set()
        while len(done) < n and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                bufs[s] += chunk
                if bufs[s].count(b"broadcast ") == 5:
                    done.add(s)
        expect(len(done) == n, f"{len(done)} of {n} subscribers got all 5 events")
        for s in socks:
            text = bufs[s].split(b"\r\n\r\n", 1)[1].decode()
            events = parse_events(text)
            expect([e["data"] for e in events] == [f"broadcast {k}" for k in range(5)], events)
            expect([int(e["id"]) for e in events] == published, "ids are the hub's sequence")
        for s in socks:
            sel.unregister(s)
            s.close()
        deadline = time.monotonic() + 15
        while stats(srv)[0] != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        expect(stats(srv)[0] == 0, f"subscribers gone: {stats(srv)}")
    R.check("a hub delivers every published event to 1000 subscribers, in order", hub_fan_out)

    def replay():
        with srv.connect() as p:
            for k in range(3):
                body = f"replay {k}".encode()
                p.sendall(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                st, hs, rb, _ = read_response(p)
                last = int(rb)
        s, head, rest = open_stream(srv, b"/hub", b"Last-Event-ID: %d\r\n" % (last - 2))
        s.settimeout(5)
        buf = rest
        while buf.count(b"replay ") < 2:
            buf += s.recv(4096)
        events = parse_events(buf.decode())
        expect([e["data"] for e in events] == ["replay 1", "replay 2"], events)
        s.close()
    R.check("a subscriber reconnecting with Last-Event-ID gets the events after it", replay)

    def replay_larger_than_queue():
        # 1500 buffered events (the replay buffer holds 2000) against a stream queue of 1024: the replay is
        # paced by the socket, never trips the slow-consumer policy, and live events follow it in order.
        with srv.connect() as p:
            p.sendall(b"POST /publish?n=1500 HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nreplay")
            st, hs, rb, _ = read_response(p)
            expect(st == 202, st)
            last = int(rb)
        first = last - 1499
        s, head, rest = open_stream(srv, b"/hub", b"Last-Event-ID: %d\r\n" % first)
        expect(head.startswith("HTTP/1.1 200"), head)
        s.settimeout(15)
        buf = rest
        while buf.count(b"data: replay") < 1499:
            chunk = s.recv(65536)
            expect(chunk, f"the stream ended after {buf.count(b'data: replay')} of 1499 replayed events")
            buf += chunk
        with srv.connect() as p:
            p.sendall(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nlive")
            st, hs, rb, _ = read_response(p)
            live = int(rb)
        while b"data: live" not in buf:
            chunk = s.recv(65536)
            expect(chunk, "the stream ended before the live event")
            buf += chunk
        ids = [int(e["id"]) for e in parse_events(buf.decode())]
        expect(ids == list(range(first + 1, last + 1)) + [live], f"ids in order, none missing: {ids[:3]}..{ids[-3:]}")
        s.close()
    R.check("a replay larger than the stream queue is delivered as the client reads, then live events follow",
            replay_larger_than_queue)

    def stalled_reader_dropped():
        # The stalled client's receive window is tiny and it never reads; /stall writes 16 MiB and goes quiet.
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((srv.host, srv.port))
        stalled.sendall(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        reader, head, rest = open_stream(srv, b"/forever")
        reader.settimeout(5)
        deadline = time.monotonic() + 10
        while stat_of(srv, b"stall") != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect(stat_of(srv, b"stall") == 1, "the stalled stream started")
        started = time.monotonic()
        got = rest
        # write_timeout is 1 s on /stall: the stream must be gone well within 5 s, while /forever streams on.
        while stat_of(srv, b"stall") != 0 and time.monotonic() - started < 5:
            got += reader.recv(65536)
        elapsed = time.monotonic() - started
        expect(stat_of(srv, b"stall") == 0, f"the stalled stream is still open after {elapsed:.1f} s")
        before = got.count(b"data: ")
        t = time.monotonic()
        while time.monotonic() - t < 0.5:
            got += reader.recv(65536)
        expect(got.count(b"data: ") > before, "the other stream keeps streaming")
        reader.close()
        stalled.close()
    R.check("a client that stops reading on a quiet stream is dropped after the write timeout, others stream on",
            stalled_reader_dropped)


with Server("sse_test_server") as srv:

    def never_reading_client_bounded():
        slow, head, rest = open_stream(srv, b"/busy")  # never reads
        fast, head, rest = open_stream(srv, b"/busy")
        deadline = time.monotonic() + 10
        while stat_of(srv, b"busy") != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        expect(stat_of(srv, b"busy") == 2, "two subscribers")
        rss0 = peak = rss_kib(srv.proc.pid)
        n = 600  # 64 KiB each: 37.5 MiB in all, one every 5 ms
        with srv.connect() as p:
            p.sendall(b"POST /flood?n=%d&size=65536&interval_ms=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % n)
            st, hs, rb, _ = read_response(p)
            expect(st == 202, st)
        fast.settimeout(15)
        ids, tail, count = [], b"", 0
        while len(ids) < n:
            chunk = fast.recv(1 << 20)
            expect(chunk, f"the reading subscriber was cut off after {len(ids)} events")
            data = tail + chunk
            # the events are "id: N\ndata: xxx...\n\n": keep the ids, drop the payload as it arrives
            pos = 0
            while True:
                i = data.find(b"id: ", pos)
                j = data.find(b"\n", i) if i >= 0 else -1
                if i < 0 or j < 0:
                    break
                ids.append(int(data[i + 4:j]))
                pos = j
            tail = data[pos:][-64:] if data.find(b"id: ", pos) < 0 else data[data.find(b"id: ", pos):]
            peak = max(peak, rss_kib(srv.proc.pid))
        expect(ids == list(range(ids[0], ids[0] + n)), "the reading subscriber got every event, in order")
        grew = (peak - rss0) / 1024
        print(f"     RSS {rss0 / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB (+{grew:.1f} MiB)", flush=True)
        # Sanitizers keep freed memory in quarantine, so RSS says nothing there (as in test_soak.py).
        if not any(k in os.environ for k in ("ASAN_OPTIONS", "TSAN_OPTIONS")):
            expect(grew < 12, f"server RSS grew by {grew:.1f} MiB for one client that never reads")
        expect(closed_by_peer(slow, timeout=5), "the client that never reads is disconnected")
        fast.close()
    R.check("a never-reading subscriber of a busy hub is disconnected at its byte budget and RSS stays bounded; "
            "the reading one gets every event", never_reading_client_bounded)

R.finish()
