#!/usr/bin/env python3
"""Topics across servers: deliveries per second and publish-to-delivery latency (p50, p99) with the chat
example, on one server with its topics in process, on one server with them in Redis, and across two servers
through Redis (published on one, subscribers on the other). The servers and redis-server share core 0, this
client runs on core 1; on a two-core machine the figures are relative, not absolute.

    bench/redis_topics.py [--chat build/examples/chat] [--subscribers 50] [--messages 4000] [--rate 200]

Latency: `--rate` messages per second for 5 s, each carrying its send time; every delivery to every SSE
subscriber is timed. Throughput: `--messages` posted as fast as 4 connections can (pipelined in bursts of 50),
deliveries counted from the first publish to the last delivery.
"""

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from procstat import free_port, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def pinned(cmd):
    return (["taskset", "-c", "0"] if shutil.which("taskset") else []) + cmd


class Processes:
    def __init__(self):
        self.procs = []

    def start(self, cmd, port):
        self.procs.append(subprocess.Popen(pinned(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(port)
        return port

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
            p.wait(timeout=20)


async def subscribe(port, count):
    streams = []
    for _ in range(count):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        await r.readuntil(b"\r\n\r\n")
        streams.append((r, w))
    return streams


async def post_all(port, bodies, connections=4, burst=50):
    """POSTs `bodies` over `connections` keep-alive connections, pipelined in bursts; all must be 202."""
    async def one(chunk):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for i in range(0, len(chunk), burst):
            part = chunk[i:i + burst]
            w.write(b"".join(b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
                             for b in part))
            for _ in part:
                head = await r.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 202"), head
        w.close()
    await asyncio.gather(*(one(bodies[i::connections]) for i in range(connections)))


async def latency(pub_port, streams, rate, seconds=5):
    samples = []
    expected = rate * seconds

    async def read(r):
        buf, got = b"", 0
        while got < expected:
            buf += await asyncio.wait_for(r.read(65536), 30)
            now = time.monotonic_ns()
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                i = block.find(b"data: lat ")
                if i >= 0:
                    samples.append(now - int(block[i + 10:].split(b"\n", 1)[0]))
                    got += 1
    readers = [asyncio.create_task(read(r)) for r, _ in streams]
    r, w = await asyncio.open_connection("127.0.0.1", pub_port)
    start = time.monotonic()
    for n in range(expected):
        await asyncio.sleep(max(0, start + n / rate - time.monotonic()))
        body = b"lat %d" % time.monotonic_ns()
        w.write(b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await r.readuntil(b"\r\n\r\n")
    await asyncio.gather(*readers)
    w.close()
    samples.sort()
    return samples[len(samples) // 2] / 1e6, samples[int(len(samples) * 0.99)] / 1e6


async def throughput(pub_port, streams, messages):
    async def read(r):
        buf, got = b"", 0
        while got < messages:
            chunk = await asyncio.wait_for(r.read(262144), 60)
            got += (buf[-6:] + chunk).count(b"data: tp ")
            buf = chunk
        return time.monotonic()
    readers = [asyncio.create_task(read(r)) for r, _ in streams]
    start = time.monotonic()
    await post_all(pub_port, [b"tp %d" % i for i in range(messages)])
    end = max(await asyncio.gather(*readers))
    return messages * len(streams) / (end - start)


async def measure(pub_port, sub_port, args):
    streams = await subscribe(sub_port, args.subscribers)
    await asyncio.sleep(0.5)
    p50, p99 = await latency(pub_port, streams, args.rate)
    rate = await throughput(pub_port, streams, args.messages)
    for _, w in streams:
        w.close()
    return p50, p99, rate


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chat", default=os.path.join(ROOT, "build", "examples", "chat"))
    p.add_argument("--subscribers", type=int, default=50)
    p.add_argument("--messages", type=int, default=4000)
    p.add_argument("--rate", type=int, default=200)
    args = p.parse_args()
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})
    rows = []
    for setup in ["one server, in process", "one server, Redis", "two servers, Redis"]:
        procs = Processes()
        tmp = tempfile.mkdtemp(prefix="weir-bench-redis-")
        try:
            redis_args = []
            if "Redis" in setup:
                rport = free_port()
                procs.start(["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--save", "",
                             "--appendonly", "no", "--dir", tmp], rport)
                redis_args = ["--redis", f"redis://127.0.0.1:{rport}", "--room", "bench"]
            a = free_port()
            procs.start([args.chat, "--port", str(a), "--threads", "1"] + redis_args, a)
            b = a
            if setup.startswith("two"):
                b = free_port()
                procs.start([args.chat, "--port", str(b), "--threads", "1"] + redis_args, b)
            p50, p99, rate = asyncio.run(measure(a, b, args))
            rows.append((setup, p50, p99, rate))
            print(f"{setup}: p50 {p50:.2f} ms, p99 {p99:.2f} ms, {rate:,.0f} deliveries/s", flush=True)
        finally:
            procs.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"| {args.subscribers} SSE subscribers | latency p50 | latency p99 | deliveries/s |")
    print("| --- | ---: | ---: | ---: |")
    for setup, p50, p99, rate in rows:
        print(f"| {setup} | {p50:.2f} ms | {p99:.2f} ms | {rate:,.0f} |")


if __name__ == "__main__":
    main()
