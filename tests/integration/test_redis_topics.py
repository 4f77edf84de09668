"""Topics across machines: three chat servers (four threads each) share one room through a redis-server this
test starts (AOF on, in a temporary directory), and a fourth serves another room on the same Redis. Messages
posted to any node reach SSE and WebSocket subscribers on every node exactly once, in one order, with the same
ids; a client resumes on another node; `reset` for an id the stream cannot resume from; Redis connections
killed, and Redis stopped and restarted on the same port, while subscribers stay connected."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import websockets

from weir_harness import Results, Server, expect, read_response

R = Results()
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A redis-server on a loopback port, persisting to an append-only file in `directory`."""

    def __init__(self, port, directory):
        self.port, self.directory, self.proc = port, directory, None

    def start(self):
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "yes", "--appendfsync", "always", "--dir", self.directory],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.command("PING") == b"+PONG":
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)

    def command(self, *args):
        """Sends one command; returns the first line of the reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args))
            buf = b""
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            return buf.split(b"\r\n", 1)[0]


def post(srv, text):
    """POSTs a message; returns (status, Retry-After)."""
    with srv.connect() as s:
        body = text.encode()
        s.sendall(b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        st, hs, _, _ = read_response(s)
        return st, dict(hs).get("retry-after")


class Events:
    """An SSE stream read in the background: its events (id, type, data) and the comments (heartbeats)."""

    def __init__(self, srv, last_event_id=None):
        self.srv, self.last_event_id = srv, last_event_id
        self.events, self.comments, self.closed = [], 0, False

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.srv.host, self.srv.port)
        extra = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id is not None else ""
        self.writer.write(f"GET /events HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        expect(head.startswith(b"HTTP/1.1 200"), head)
        self.task = asyncio.create_task(self.run())
        return self

    async def run(self):
        buf = b""
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                self.closed = True
                return
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                fields = {}
                for line in block.decode().split("\n"):
                    if line.startswith(":"):
                        self.comments += 1
                    elif ": " in line:
                        k, v = line.split(": ", 1)
                        fields[k] = fields[k] + "\n" + v if k in fields else v
                    elif line == "data:":
                        fields["data"] = ""
                if fields:
                    self.events.append((fields.get("id"), fields.get("event", "message"), fields.get("data", "")))

    def data(self):
        return [d for _, t, d in self.events if t == "message"]

    async def wait_for(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return pred()

    def close(self):
        self.task.cancel()
        self.writer.close()


class Socket:
    """A WebSocket session read in the background."""

    def __init__(self, srv):
        self.url = srv.url.replace("http://", "ws://") + "/ws"
        self.messages, self.close_code = [], None

    async def open(self):
        self.ws = await websockets.connect(self.url, max_queue=None)
        self.task = asyncio.create_task(self.run())
        return self

    async def run(self):
        try:
            async for m in self.ws:
                self.messages.append(m)
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    async def wait_for(self, pred, timeout=15):
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return pred()

    async def close(self):
        await self.ws.close()


async def subscribe_all(nodes, per_node=2):
    """SSE streams and WebSocket sessions on each node, each seen to receive a message first (so subscribed)."""
    streams = [await Events(n).open() for n in nodes for _ in range(per_node)]
    sockets = [await Socket(n).open() for n in nodes for _ in range(per_node)]
    marker = f"ready {time.monotonic()}"
    await asyncio.sleep(0.2)
    st, _ = await asyncio.to_thread(post, nodes[0], marker)
    expect(st == 202, st)
    for s in streams:
        expect(await s.wait_for(lambda s=s: marker in s.data()), "an SSE subscriber got the first message")
    for w in sockets:
        expect(await w.wait_for(lambda w=w: marker in w.messages), "a WebSocket subscriber got the first message")
    return streams, sockets


def after(items, marker):
    return items[items.index(marker) + 1:]


async def check_exactly_once(streams, sockets, marker, sent):
    """Every subscriber got `sent` after `marker`, exactly once, all in the same order; SSE ids agree."""
    for s in streams:
        expect(await s.wait_for(lambda s=s: len(after(s.data(), marker)) >= len(sent)), "SSE: every message arrived")
    for w in sockets:
        expect(await w.wait_for(lambda w=w: len(after(w.messages, marker)) >= len(sent)), "WS: every message arrived")
    await asyncio.sleep(0.3)  # nothing more (no duplicates) arrives
    reference = after(streams[0].data(), marker)
    expect(sorted(reference) == sorted(sent), f"exactly the messages sent: {len(reference)} vs {len(sent)}")
    ids = {}
    for s in streams:
        events = [(i, d) for i, t, d in s.events if t == "message"]
        got = after([d for _, d in events], marker)
        expect(got == reference, "every SSE subscriber, on every node, saw one order")
        for i, d in events:
            expect(ids.setdefault(d, i) == i, f"{d!r} has one id on every node")
        numeric = [int(i) for i, _ in events]
        expect(numeric == sorted(numeric) and len(set(numeric)) == len(numeric), "ids increase")
    for w in sockets:
        expect(after(w.messages, marker) == reference, "every WebSocket subscriber saw the SSE order")
    return ids


tmp = tempfile.mkdtemp(prefix="weir-redis-")
redis = Redis(free_port(), tmp)
redis.start()
url = f"redis://127.0.0.1:{redis.port}"
try:
    with Server("chat", "--redis", url, "--threads", "4", "--heartbeat-ms", "300") as a, \
         Server("chat", "--redis", url, "--threads", "4", "--heartbeat-ms", "300") as b, \
         Server("chat", "--redis", url, "--threads", "4", "--heartbeat-ms", "300") as c, \
         Server("chat", "--redis", url, "--threads", "4", "--room", "elsewhere") as other:
        nodes = [a, b, c]
        state = {}

        async def fan_out():
            streams, sockets = await subscribe_all(nodes)
            state["streams"], state["sockets"] = streams, sockets
            lonely = await Events(other).open()
            state["other"] = lonely
            marker = f"fan-out start {time.monotonic()}"
            st, _ = await asyncio.to_thread(post, a, marker)
            expect(st == 202, st)
            sent = []
            # Posted to every node, over HTTP and over WebSockets, from several tasks at once.
            async def poster(i):
                for m in range(10):
                    text = f"poster {i} message {m}"
                    if i % 2:
                        await sockets[i].ws.send(text)
                    else:
                        st, _ = await asyncio.to_thread(post, nodes[i % 3], text)
                        expect(st == 202, st)
                    sent.append(text)
            await asyncio.gather(*(poster(i) for i in range(6)))
            state["ids"] = await check_exactly_once(streams, sockets, marker, sent)
            state["order"] = after(streams[0].data(), marker)
            expect(not any("poster" in d for d in lonely.data()), "another room hears none of it")
        checks = [("messages posted to any node reach SSE and WebSocket subscribers on every node exactly once, "
                   "in one order, with one id each", fan_out)]

        async def rooms_isolated():
                lonely = await Events(other).open()
                mine = await Events(a).open()
                await asyncio.sleep(0.2)
                st, _ = await asyncio.to_thread(post, other, "only elsewhere")
                expect(st == 202, st)
                st, _ = await asyncio.to_thread(post, a, "only in chat")
                expect(st == 202, st)
                expect(await lonely.wait_for(lambda: "only elsewhere" in lonely.data()), "the other room's message")
                expect(await mine.wait_for(lambda: "only in chat" in mine.data()), "the chat's message")
                await asyncio.sleep(0.3)
                expect(lonely.data() == ["only elsewhere"], lonely.data())
                expect(mine.data() == ["only in chat"], mine.data())
                lonely.close()
                mine.close()
        checks.append(("two rooms on one Redis never see each other's messages", rooms_isolated))

        async def resume_elsewhere():
                order, ids = state["order"], state["ids"]
                k = 7
                resumed = await Events(b, last_event_id=ids[order[k]]).open()
                expect(await resumed.wait_for(lambda: order[-1] in resumed.data()), "replayed up to the last")
                await asyncio.sleep(0.2)
                expect(resumed.data()[:len(order) - k - 1] == order[k + 1:], "exactly what came after the id")
                expect(all(t != "reset" for _, t, _ in resumed.events), "no reset")
                resumed.close()
                # On a third node, from the very last id: nothing to replay, then live messages.
                first = state["streams"][0]
                expect(await first.wait_for(lambda: "only in chat" in first.data()), "the latest message")
                live = await Events(c, last_event_id=first.events[-1][0]).open()
                await asyncio.sleep(0.2)
                st, _ = await asyncio.to_thread(post, a, "after the resume")
                expect(st == 202, st)
                expect(await live.wait_for(lambda: "after the resume" in live.data()), "the live message")
                expect(live.data() == ["after the resume"], live.data())
                live.close()
        checks.append(("a client resumes on another node with Last-Event-ID and gets exactly what it missed", resume_elsewhere))

        async def reset_when_unresumable():
                for bad in ["1", "not-an-id", str(2**63)]:
                    s = await Events(a, last_event_id=bad).open()
                    expect(await s.wait_for(lambda: len(s.events) > 0), f"{bad}: an event")
                    expect(s.events[0][1] == "reset" and s.events[0][0] is None, f"{bad}: reset first: {s.events[:2]}")
                    s.close()
        checks.append(("an id older than the stream's first entry, or not an id, starts with reset", reset_when_unresumable))

        async def client_kill():
                streams, sockets = state["streams"], state["sockets"]
                marker = f"kill start {time.monotonic()}"
                st, _ = await asyncio.to_thread(post, a, marker)
                expect(st == 202, st)
                sent = []
                for round_ in range(3):
                    killed = redis.command("CLIENT", "KILL", "TYPE", "normal")
                    expect(killed.startswith(b":") and int(killed[1:]) >= 6, f"connections killed: {killed}")
                    # Published at once, while the nodes' reading connections wait to reconnect: they must go
                    # on from the last id they handed on, not from the stream's end.
                    for m in range(5):
                        text = f"after kill {round_} message {m}"
                        st, _ = await asyncio.to_thread(post, nodes[m % 3], text)
                        expect(st == 202, f"{text}: {st}")
                        sent.append(text)
                    # Every node reads again (so the next round kills its reading connection too).
                    for s in streams:
                        expect(await s.wait_for(lambda s=s: sent[-1] in s.data()), "the round's messages arrived")
                await check_exactly_once(streams, sockets, marker, sent)
                expect(all(not s.closed for s in streams), "the streams stayed open")
                expect(all(w.close_code is None for w in sockets), "the sessions stayed open")
        checks.append(("Redis connections killed (CLIENT KILL): every message still reaches every subscriber once, "
                "in order, without reconnecting", client_kill))

        async def redis_restart():
                streams, sockets = state["streams"], state["sockets"]
                marker = f"restart start {time.monotonic()}"
                st, _ = await asyncio.to_thread(post, a, marker)
                expect(st == 202, st)
                expect(await streams[0].wait_for(lambda: marker in streams[0].data()), "the marker")
                redis.stop()
                # A publish fails fast with 503 and Retry-After, on every node.
                for n in nodes:
                    started = time.monotonic()
                    st, retry = await asyncio.to_thread(post, n, "lost while down")
                    expect(st == 503 and retry, f"503 with Retry-After: {st} {retry}")
                    expect(time.monotonic() - started < 2, "within 2 s")
                # A WebSocket message that cannot be published closes that session with 1013.
                extra = await Socket(b).open()
                await extra.ws.send("lost over a WebSocket")
                expect(await extra.wait_for(lambda: extra.close_code is not None, 5), "the session closed")
                expect(extra.close_code == 1013, extra.close_code)
                # Open streams stay open, with their heartbeats.
                beats = [s.comments for s in streams]
                await asyncio.sleep(1)
                expect(all(s.comments > n for s, n in zip(streams, beats)), "heartbeats go on while Redis is down")
                expect(all(not s.closed for s in streams), "the streams stayed open")
                redis.start()
                # Publishing works again once Redis is back (the first attempts may still find it down).
                deadline = time.monotonic() + 10
                while True:
                    st, _ = await asyncio.to_thread(post, c, "back")
                    if st == 202 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                expect(st == 202, st)
                sent = ["back"]
                for m in range(6):
                    text = f"after restart {m}"
                    st, _ = await asyncio.to_thread(post, nodes[m % 3], text)
                    expect(st == 202, st)
                    sent.append(text)
                await check_exactly_once(streams, sockets, marker, sent)
                for s in streams:
                    expect(not any("lost" in d for d in s.data()), "a failed publish is never delivered")
                expect(all(w.close_code is None for w in sockets), "the sessions stayed open")
        checks.append(("Redis stopped: publishing fails fast (503, 1013), streams stay open; restarted on the same port: "
                "publishing works and subscribers get new messages without reconnecting", redis_restart))

        async def resume_after_restart():
                order, ids = state["order"], state["ids"]
                # A node started after the restart keeps nothing from before: the replay comes from Redis's AOF.
                with Server("chat", "--redis", url, "--threads", "4") as fresh:
                    s = await Events(fresh, last_event_id=ids[order[-2]]).open()
                    expect(await s.wait_for(lambda: "after restart 5" in s.data()), "replayed through the restart")
                    expect(s.data()[0] == order[-1], s.data()[:2])
                    expect(all(t != "reset" for _, t, _ in s.events), "no reset: the stream persisted")
                    s.close()
        checks.append(("with persistence, a client resumes across the Redis restart", resume_after_restart))

        async def run_checks():
            for name, fn in checks:
                try:
                    await fn()
                    R.passed += 1
                    print(f"ok   {name}", flush=True)
                except Exception as e:  # noqa: BLE001 - report every failure and keep going
                    R.failed += 1
                    print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            for s in state.get("streams", []):
                s.close()
            for w in state.get("sockets", []):
                await w.close()
        asyncio.run(run_checks())
finally:
    redis.stop()
    shutil.rmtree(tmp, ignore_errors=True)

R.finish()
