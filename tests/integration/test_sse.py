"""Server-Sent Events against curl and raw sockets: the head carries every stage's headers, events are
encoded per the WHATWG spec, refusals send no stream bytes, disconnects end the producer, and a hub reaches
1000 subscribers and replays after Last-Event-ID."""

import selectors
import socket
import subprocess
import time

from weir_harness import Results, Server, expect, header, read_response

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

R.finish()
