"""Soak and fault test, bounded in time, loopback only. Against the chat on two threads: SSE and WebSocket
subscribers that stay and read everything, while others churn (random disconnects), leave half-open sockets,
drop mid-handshake, and read slowly. Checks: the server never crashes, every published message reaches every
client that stayed and kept reading, in order, and file descriptors and memory return near their baseline.

Scale with WEIR_SOAK_SCALE (1: the CI size, about 20 s; 10: 5000 SSE and 1000 WebSocket clients for minutes).
For looking at memory: WEIR_SOAK_SECONDS overrides how long the churn lasts, WEIR_SOAK_ROUNDS=N runs the soak N
times against the same server (is memory left after one round reused by the next?), and WEIR_SOAK_TRIM=1 has
gdb call malloc_trim(0) in the server after the last round and prints RSS before and after."""

import asyncio
import base64
import os
import random
import re
import time

import websockets

from weir_harness import Results, Server, expect, rss_mb

R = Results()
SCALE = float(os.environ.get("WEIR_SOAK_SCALE", "1"))
STAY_SSE = int(300 * SCALE) if SCALE < 10 else 5000
STAY_WS = int(100 * SCALE) if SCALE < 10 else 1000
DURATION = float(os.environ.get("WEIR_SOAK_SECONDS", 15 * SCALE if SCALE < 10 else 180))
ROUNDS = int(os.environ.get("WEIR_SOAK_ROUNDS", "1"))
rng = random.Random(1234)


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


async def sse_stayer(host, port, seen, ready):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += await reader.read(4096)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    ready.append(1)
    try:
        while True:
            for m in re.finditer(rb"data: (soak \d+)\n", buf):
                seen.append(m.group(1).decode())
            buf = buf[buf.rfind(b"\n\n") + 2:] if b"\n\n" in buf else buf
            chunk = await reader.read(65536)
            if not chunk:
                return
            buf += chunk
    except (asyncio.CancelledError, ConnectionError):
        writer.close()


async def ws_stayer(url, seen, ready):
    async with websockets.connect(url, max_queue=None) as ws:
        ready.append(1)
        try:
            async for message in ws:
                if message.startswith("soak "):
                    seen.append(message)
        except asyncio.CancelledError:
            pass


async def churner(host, port, url, stop):
    held = []
    while not stop.is_set():
        kind = rng.choice(["sse", "ws", "half-open", "mid-handshake", "slow", "garbage"])
        try:
            if kind == "sse":
                r, w = await asyncio.open_connection(host, port)
                w.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
                await w.drain()
                await asyncio.sleep(rng.uniform(0, 0.5))
                w.close()
            elif kind == "ws":
                async with websockets.connect(url) as ws:
                    await ws.send("churn says hi")
                    await asyncio.sleep(rng.uniform(0, 0.5))
            elif kind == "half-open":
                r, w = await asyncio.open_connection(host, port)
                w.write(b"GET /events HTTP/1.1\r\nHo")
                held.append(w)
            elif kind == "mid-handshake":
                r, w = await asyncio.open_connection(host, port)
                key = base64.b64encode(os.urandom(16))
                w.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key)
                await w.drain()
                w.close()
            elif kind == "slow":
                r, w = await asyncio.open_connection(host, port)
                w.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
                held.append(w)  # never reads
            else:
                r, w = await asyncio.open_connection(host, port)
                w.write(os.urandom(rng.randint(1, 300)))
                await w.drain()
                w.close()
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
            pass
        await asyncio.sleep(rng.uniform(0, 0.05))
    for w in held:
        w.close()


async def publisher(host, port, stop, published):
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    while not stop.is_set():
        body = f"soak {n}".encode()
        writer.write(b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        head = b""
        while b"\r\n\r\n" not in head:
            head += await reader.read(4096)
        expect(head.startswith(b"HTTP/1.1 202"), head[:40])
        published.append(f"soak {n}")
        n += 1
        await asyncio.sleep(0.02)
    writer.close()


async def warm_up(srv):
    # Each event loop creates its reactor's descriptors on its first connection.
    for _ in range(4):
        r, w = await asyncio.open_connection(srv.host, srv.port)
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await r.read()
        w.close()
    await asyncio.sleep(0.3)
    return fds(srv.proc.pid), rss_mb(srv.proc.pid)


def rss_by_mapping(pid):
    """RSS in MB of the main heap ([heap]), of anonymous mappings (other threads' malloc arenas, Asio's
    and the threads' stacks) and of the rest (the program and its libraries)."""
    kinds = {"heap": 0, "anonymous": 0, "other": 0}
    kind = "other"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                fields = line.split()
                kind = "heap" if fields[-1] == "[heap]" else "anonymous" if len(fields) == 5 else "other"
            elif line.startswith("Rss:"):
                kinds[kind] += int(line.split()[1])
    return ", ".join(f"{k} {v / 1024:.0f}" for k, v in kinds.items())


def malloc_trim(pid):
    """What glibc's malloc holds in the server (malloc_info), then RSS before and after it calls malloc_trim(0),
    both through gdb (the server pauses for a moment)."""
    import subprocess
    import tempfile
    info = tempfile.NamedTemporaryFile(suffix=".xml", delete=False).name
    before, mappings = rss_mb(pid), rss_by_mapping(pid)
    # clock() is the process's CPU time; the other threads are stopped while gdb calls malloc_trim.
    gdb = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", f'set $f = (void*) fopen("{info}", "w")',
                          "-ex", "call (int) malloc_info(0, $f)", "-ex", "call (int) fclose($f)",
                          "-ex", "set $c0 = (long) clock()", "-ex", "set $r = (int) malloc_trim(0)",
                          "-ex", "set $c1 = (long) clock()", "-ex", 'printf "trim took %ld us\\n", $c1 - $c0'],
                         capture_output=True, text=True, timeout=120)
    took = re.search(r"trim took (\d+) us", gdb.stdout)
    xml = open(info).read()
    os.unlink(info)
    heaps = xml.split("<heap nr=")[1:]
    # Per arena: free chunks (fast bins and the rest) and what the arena has from the system.
    free = sum(int(n) for h in heaps for n in re.findall(r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"', h))
    system = sum(int(n) for h in heaps for n in re.findall(r'<system type="current" size="(\d+)"', h))
    return (f"malloc holds {system / 2**20:.0f} MB in {len(heaps)} arenas, {free / 2**20:.0f} MB of it in free "
            f"chunks; malloc_trim(0) took {int(took.group(1)) / 1000 if took else float('nan'):.1f} ms CPU: "
            f"RSS {before:.0f} MB ({mappings}) -> {rss_mb(pid):.0f} MB ({rss_by_mapping(pid)})")


async def soak(srv, base_fds, base_rss):
    pid = srv.proc.pid
    url = srv.url.replace("http://", "ws://") + "/ws"
    sse_seen = [[] for _ in range(STAY_SSE)]
    ws_seen = [[] for _ in range(STAY_WS)]
    ready = []
    stayers = [asyncio.create_task(sse_stayer(srv.host, srv.port, s, ready)) for s in sse_seen]
    for s in ws_seen:
        stayers.append(asyncio.create_task(ws_stayer(url, s, ready)))
        await asyncio.sleep(0)
    deadline = time.monotonic() + 60
    while len(ready) < STAY_SSE + STAY_WS and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    expect(len(ready) == STAY_SSE + STAY_WS, f"{len(ready)} stayers connected")
    stop = asyncio.Event()
    published = []
    churners = [asyncio.create_task(churner(srv.host, srv.port, url, stop)) for _ in range(8)]
    pub = asyncio.create_task(publisher(srv.host, srv.port, stop, published))
    await asyncio.sleep(DURATION)
    stop.set()
    await asyncio.gather(pub, *churners)
    # Let the last messages arrive.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(len(s) >= len(published) for s in sse_seen + ws_seen):
        await asyncio.sleep(0.2)
    peak_fds = fds(pid)
    for t in stayers:
        t.cancel()
    await asyncio.gather(*stayers, return_exceptions=True)
    for i, s in enumerate(sse_seen):
        expect(s == published, f"SSE stayer {i}: {len(s)} of {len(published)} messages, in order")
    for i, s in enumerate(ws_seen):
        expect(s == published, f"WebSocket stayer {i}: {len(s)} of {len(published)} messages, in order")
    deadline = time.monotonic() + 30
    while fds(pid) > base_fds + 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    if fds(pid) > base_fds + 2:
        import subprocess
        print(subprocess.run(["ss", "-tanp"], capture_output=True, text=True).stdout, flush=True)
    expect(fds(pid) <= base_fds + 2, f"file descriptors back to baseline: {base_fds} then {peak_fds}, now {fds(pid)}")
    rss_after = rss_mb(pid)
    # Sanitizers keep freed memory in quarantine, so RSS says nothing there; LeakSanitizer checks leaks at exit.
    if not any(k in os.environ for k in ("ASAN_OPTIONS", "TSAN_OPTIONS")):
        expect(rss_after < base_rss + 64, f"memory near baseline: {base_rss:.0f} MB then {rss_after:.0f} MB")
    print(f"published {len(published)} messages to {STAY_SSE} SSE and {STAY_WS} WebSocket stayers; "
          f"fds {base_fds} -> {peak_fds} -> {fds(pid)}; RSS {base_rss:.0f} -> {rss_after:.0f} MB", flush=True)


with Server("chat", "--threads", "2", "--max-connections", "30000", "--heartbeat-ms", "1000") as srv:
    base = asyncio.run(warm_up(srv))
    for n in range(1, ROUNDS + 1):
        R.check(f"soak{f' round {n}' if ROUNDS > 1 else ''}: {STAY_SSE} SSE and {STAY_WS} WebSocket clients stay "
                "and get everything while others churn", lambda: asyncio.run(soak(srv, *base)))
    if os.environ.get("WEIR_SOAK_TRIM"):
        print(malloc_trim(srv.proc.pid), flush=True)
    R.check("soak: the server is alive and exits 0", lambda: expect(srv.stop() == 0, "exit status"))

R.finish()
