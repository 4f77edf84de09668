"""HEAD on a route that answers with a pending upgrade: the client gets exactly the head a GET would get, with
no body, and the upgrade never starts (raw sockets)."""

import base64
import os
import socket
import time

from weir_harness import Results, Server, closed_by_peer, expect, header, read_response

R = Results()
H = b"Host: localhost\r\n"


def head_of(srv, method, path, extra=b""):
    """Sends one request and returns (status, headers without Date, bytes after the head, closed)."""
    with srv.connect() as s:
        s.sendall(method + b" " + path + b" HTTP/1.1\r\n" + H + extra + b"\r\n")
        st, hs, _, rest = read_response(s, head_only=True)
        if method == b"HEAD":
            closed = closed_by_peer(s, timeout=5)
            s.settimeout(0.5)
            return st, [h for h in hs if h[0] != "date"], rest, closed
        return st, [h for h in hs if h[0] != "date"], rest, None


with Server("sse_test_server") as srv:

    def head_equals_get_for_sse():
        gst, ghs, _, _ = head_of(srv, b"GET", b"/events?n=2")
        hst, hhs, rest, closed = head_of(srv, b"HEAD", b"/events?n=2")
        expect(gst == 200 and hst == 200, f"statuses {gst} {hst}")
        expect(header(hhs, "content-type") == "text/event-stream; charset=utf-8", f"HEAD head: {hhs}")
        expect(header(hhs, "content-length") is None, f"no Content-Length the GET does not have: {hhs}")
        expect(sorted(ghs) == sorted(hhs), f"GET head {ghs}\n!= HEAD head {hhs}")
        expect(rest == b"", f"no body after the HEAD head: {rest[:80]!r}")
        expect(closed, "the HEAD response ends the connection as the GET's Connection: close says")
    R.check("HEAD on an SSE route gets GET's status and headers (event-stream, middleware, protocol fields) "
            "and no body", head_equals_get_for_sse)

    def head_never_starts_stream():
        with srv.connect() as s:
            s.sendall(b"GET /stats HTTP/1.1\r\n" + H + b"\r\n")
            before = read_response(s)[2]
        with srv.connect() as s:
            s.sendall(b"HEAD /forever HTTP/1.1\r\n" + H + b"\r\n")
            st, hs, _, rest = read_response(s, head_only=True)
            expect(st == 200 and header(hs, "content-type").startswith("text/event-stream"), f"{st} {hs}")
            time.sleep(0.3)
            expect(closed_by_peer(s, timeout=5), "closed after the head")
        with srv.connect() as s:
            s.sendall(b"GET /stats HTTP/1.1\r\n" + H + b"\r\n")
            after = read_response(s)[2]
        expect(before == after, f"no producer ran for HEAD: stats {before!r} -> {after!r}")
    R.check("HEAD on an endless SSE route never runs the stream", head_never_starts_stream)

    def head_refused_is_plain():
        gst, ghs, _, _ = head_of(srv, b"GET", b"/refused")
        hst, hhs, _, _ = head_of(srv, b"HEAD", b"/refused")
        expect(gst == 401 and hst == 401, f"statuses {gst} {hst}")
        expect(sorted(ghs) == sorted(hhs), f"GET head {ghs}\n!= HEAD head {hhs}")
    R.check("HEAD on an SSE route a stage refused gets the same plain head as GET", head_refused_is_plain)


with Server("websocket_test_server") as ws:

    def head_is_never_a_handshake():
        key = base64.b64encode(os.urandom(16))
        extra = (b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: " + key + b"\r\n")
        with ws.connect() as s:
            s.sendall(b"HEAD /echo HTTP/1.1\r\n" + H + extra + b"\r\n")
            st, hs, _, rest = read_response(s, head_only=True)
            expect(st == 400, f"a HEAD handshake is refused like any non-GET: {st}")
            expect(header(hs, "sec-websocket-accept") is None and header(hs, "upgrade") is None, f"{hs}")
            expect(rest == b"", f"no body after a HEAD response: {rest!r}")
        gst, ghs, _, _ = head_of(ws, b"GET", b"/echo", extra)
        expect(gst == 101, f"the same request as GET upgrades: {gst}")
    R.check("HEAD with WebSocket handshake fields never gets 101 (a handshake is a GET)", head_is_never_a_handshake)

R.finish()
