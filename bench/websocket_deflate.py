#!/usr/bin/python3
"""permessage-deflate costs, measured on tests/websocket_deflate_server (build it first:
`cmake --build build --target websocket_deflate_server`).

    bench/websocket_deflate.py memory [--connections N]      RSS per WebSocket: idle, then after one message
                                                              each way, for each deflate setting and without
    bench/websocket_deflate.py broadcast [--connections N] [--messages M]
                                                              server CPU time per delivery of a ~4 KB JSON
                                                              broadcast (send_shared) to N sessions, deflate
                                                              (no server context: compressed once) vs plain

Also `bench/run.py --only websocket-deflate` (both, with their defaults). Loopback only. The clients are one
asyncio process speaking raw frames: they offer the extension in the handshake, count frames and never
inflate, so their own cost stays out of the server's. Server CPU is utime + stime from /proc/PID/stat.
"""

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import zlib

from procstat import cpu_seconds, raise_nofile, rss_kib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

class Server:
    def __init__(self, build_dir):
        self.exe = os.path.join(build_dir, "tests", "websocket_deflate_server")
        if not os.path.exists(self.exe):
            sys.exit(f"{self.exe} is missing: cmake --build {build_dir} --target websocket_deflate_server")

    def __enter__(self):
        self.proc = subprocess.Popen([self.exe, "--port", "0", "--threads", "1", "--max-connections", "30000"],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)

def handshake(path, offer):
    key = base64.b64encode(os.urandom(16)).decode()
    ext = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    return (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n{ext}\r\n").encode()

def client_frame(opcode, payload, rsv1):
    n = len(payload)
    b0 = 0x80 | (0x40 if rsv1 else 0) | opcode
    head = bytes([b0, 0x80 | n]) if n < 126 else bytes([b0, 0x80 | 126, n >> 8, n & 0xFF])
    return head + b"\0\0\0\0" + payload  # a zero mask leaves the payload as it is

class Client:
    """One connection that counts the server's frames."""

    def __init__(self):
        self.frames = 0
        self.buf = b""
        self.event = asyncio.Event()
        self.want = 0

    async def open(self, port, path, offer, source):
        # Several source addresses: each has its own ephemeral ports, which runs of 10,000 connections (and
        # their TIME_WAIT) would otherwise use up.
        for attempt in range(20):
            try:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
                break
            except OSError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        self.writer.write(handshake(path, offer))
        head = await self.reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        self.agreed = b"permessage-deflate" in head.lower()
        self.task = asyncio.get_running_loop().create_task(self.read())

    async def read(self):
        try:
            while True:
                chunk = await self.reader.read(1 << 16)
                if not chunk:
                    return
                self.buf += chunk
                while len(self.buf) >= 2:
                    n = self.buf[1] & 0x7F
                    at = 2
                    if n == 126:
                        if len(self.buf) < 4:
                            break
                        n, at = int.from_bytes(self.buf[2:4], "big"), 4
                    elif n == 127:
                        if len(self.buf) < 10:
                            break
                        n, at = int.from_bytes(self.buf[2:10], "big"), 10
                    if len(self.buf) < at + n:
                        break
                    self.buf = self.buf[at + n:]
                    self.frames += 1
                if self.frames >= self.want:
                    self.event.set()
        except (ConnectionError, asyncio.CancelledError):
            return

    async def wait_frames(self, count, timeout=300):
        self.want = count
        if self.frames < count:
            self.event.clear()
            await asyncio.wait_for(self.event.wait(), timeout)

    def close(self):
        self.task.cancel()
        self.writer.close()

async def open_many(port, path, offer, count, window=200):
    clients = [Client() for _ in range(count)]
    for i in range(0, count, window):
        await asyncio.gather(*(c.open(port, path, offer, f"127.0.{1 + (i + k) % 64}.{2 + (i + k) // 64 % 200}")
                               for k, c in enumerate(clients[i:i + window])))
    return clients

# ---- memory -------------------------------------------------------------------------------------------

SETTINGS = [
    # (name, route, offer)
    ("no deflate", "/plain", None),
    ("deflate, no context takeover either way", "/deflate-no-context", "permessage-deflate"),
    ("deflate, context takeover, 15-bit windows, memLevel 8 (zlib defaults)", "/deflate",
     "permessage-deflate; client_max_window_bits"),
    ("deflate, context takeover, 9-bit windows, memLevel 1", "/deflate-narrow",
     "permessage-deflate; client_max_window_bits"),
]

async def memory_one(port, pid, route, offer, count):
    before = rss_kib(pid)
    clients = await open_many(port, route, offer, count)
    await asyncio.sleep(1.0)
    idle = (rss_kib(pid) - before) * 1024 / count
    agreed = sum(c.agreed for c in clients)
    # One message each way: compressed with a 512-byte window, valid under every agreement above.
    text = json.dumps({"user": "someone", "text": "a message of a few hundred bytes " * 12}).encode()
    c = zlib.compressobj(6, zlib.DEFLATED, -9)
    deflated = (c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    frame = client_frame(1, deflated, True) if offer else client_frame(1, text, False)
    for cl in clients:
        cl.writer.write(frame)
    await asyncio.gather(*(cl.wait_frames(1) for cl in clients))
    await asyncio.sleep(1.0)
    after = (rss_kib(pid) - before) * 1024 / count
    for cl in clients:
        cl.close()
    await asyncio.sleep(1.0)
    return idle, after, agreed

def memory(args):
    raise_nofile()
    rows = []
    for name, route, offer in SETTINGS:
        # A fresh server per setting: freed memory does not always go back to the system.
        with Server(args.build_dir) as srv:
            idle, after, agreed = asyncio.run(memory_one(srv.port, srv.proc.pid, route, offer, args.connections))
        rows.append((name, idle, after, agreed))
        print(f"{name}: {idle:.0f} B idle, {after:.0f} B after one message each way "
              f"({agreed}/{args.connections} agreed on deflate)", flush=True)
    base_idle, base_after = rows[0][1], rows[0][2]
    print("\n| setting | idle, per connection | after one message each way |")
    print("| --- | --- | --- |")
    for name, idle, after, _ in rows:
        print(f"| {name} | {idle:,.0f} B ({idle - base_idle:+,.0f}) | {after:,.0f} B ({after - base_after:+,.0f}) |")
    return rows

# ---- broadcast ----------------------------------------------------------------------------------------

async def broadcast_one(port, pid, route, offer, count, messages):
    clients = await open_many(port, route, offer, count)
    await asyncio.gather(*(c.wait_frames(1) for c in clients))  # "joined ..."
    agreed = sum(c.agreed for c in clients)
    await asyncio.sleep(0.5)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /broadcast?count={messages} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.gather(*(c.wait_frames(1 + messages) for c in clients))
    cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    writer.close()
    for c in clients:
        c.close()
    await asyncio.sleep(0.5)
    return cpu, wall, agreed

def broadcast(args):
    raise_nofile()
    results = {}
    for name, route, offer in [("plain", "/room-plain", None), ("deflate", "/room", "permessage-deflate")]:
        runs = []
        for _ in range(args.rounds):
            with Server(args.build_dir) as srv:
                runs.append(asyncio.run(broadcast_one(srv.port, srv.proc.pid, route, offer, args.connections,
                                                      args.messages)))
        cpu = min(r[0] for r in runs)
        wall = min(r[1] for r in runs)
        deliveries = args.connections * args.messages
        results[name] = cpu / deliveries
        print(f"{name}: {deliveries} deliveries, server CPU {cpu:.2f} s = {cpu / deliveries * 1e6:.2f} us per "
              f"delivery, {wall:.2f} s wall ({runs[0][2]}/{args.connections} agreed on deflate; best of "
              f"{args.rounds})", flush=True)
    print(f"deflate / plain CPU per delivery: {results['deflate'] / results['plain']:.2f} "
          f"(plain rate / deflate rate at equal CPU: {results['plain'] / results['deflate']:.0%})")
    return results

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["memory", "broadcast", "all"])
    p.add_argument("--connections", type=int, default=None)
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    args = p.parse_args(argv)
    if args.mode in ("memory", "all"):
        args.connections = args.connections or 5000
        memory(args)
    if args.mode in ("broadcast", "all"):
        args.connections = args.connections or 5000
        broadcast(args)

if __name__ == "__main__":
    main()
