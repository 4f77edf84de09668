#!/usr/bin/env python3
"""The one command for weir's benchmarks. Builds weir and its peers (Boost.Beast, RESTinio, cpp-httplib and
nginx, all from Debian packages) in Release in build-bench/, runs the servers interleaved (A B C D A B C D ...)
with the server pinned to core 0 and the load generator to core 1, and writes docs/benchmarks.md and
docs/benchmarks.png (gnuplot).

    bench/run.py [--quick] [--rounds N] [--duration SECONDS] [--no-build] [--only idle-scale]
    bench/run.py --only topics [--topics-baseline REF] [--quick] [--no-build]

`--only websocket-deflate` runs bench/websocket_deflate.py (permessage-deflate memory and broadcast CPU).
`--only idle-scale` runs only the idle-connections-at-scale measurement (3 to 6 minutes) and rewrites that
section of docs/benchmarks.md, leaving the rest of the page as it is.

`--only topics` measures pub/sub fan-out: the server's CPU time (utime+stime) per delivery from the first
publish to the last delivery, one server thread, 32-byte payloads, one publish at a time and bursts of 10
back-to-back publishes, 1,000 and 10,000 subscribers, SSE and WebSocket. Beside weir runs the floor,
bench/baseline/raw_floor.cpp: the same sends (one per subscriber per pass) from a raw epoll loop with next to
no user-space work, which is what the kernel alone costs on this machine. With `--topics-baseline REF` the same
server built against the headers of git commit REF runs side by side: its topics, or for a commit from before
topics the SSE hub and a hand-written send_shared broadcast. It prints a table and writes build-bench/topics.json.

Loopback only; every load is bounded in time. The machine is assumed noisy: the page reports ratios, and the
server's own CPU time per request next to requests per second, since it does not count time other processes
took from the server's core.
"""

import argparse
import math
import datetime
import json
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

from procstat import cpu_seconds, free_port, log, raise_nofile, rss_kib, wait_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, "build-bench")

PIPELINE = "weir (5-stage pipeline)"
BARE = "weir (bare handler)"
BEAST = "Boost.Beast"
NGINX = "nginx"
LOADS = [("c64", 64, False), ("c256", 256, False), ("pipelined x16, c64", 64, True)]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one round of 3 s loads, fewer stream messages")
    p.add_argument("--rounds", type=int, help="interleaved rounds of every server (default 2)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 8)")
    p.add_argument("--no-build", action="store_true", help="use what build-bench/ holds")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the page from the last run's results (build-bench/results.json)")
    p.add_argument("--topics-baseline", metavar="REF",
                   help="with --only topics: also measure the fan-out of this git commit (topics, or the "
                        "SSE hub and send_shared before them)")
    p.add_argument("--only", choices=["idle-scale", "websocket-deflate", "topics"],
                   help="run one mode alone and rewrite its section of the page")
    p.add_argument("--build-dir", help="build directory (default build-bench/)")
    a = p.parse_args()
    a.rounds = a.rounds or (1 if a.quick else 2)
    a.duration = a.duration or (3 if a.quick else 8)
    return a


ARGS = None
BUILD_TARGETS = {"idle-scale": ["weir_streams", "weir_idle"], "topics": ["weir_topics_server", "weir_topics_client",
                                                                         "raw_floor"]}


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, capture_output=True, text=True, **kw).stdout


def build(targets=None):
    """Everything, or only `targets` (whose Debian packages the library's own dependencies cover)."""
    env = dict(os.environ, WEIR_BENCH_DEPS="0" if targets else "1")
    subprocess.run(["bash", os.path.join(ROOT, "scripts/install-deps.sh")], check=True, env=env)
    log("configuring and building build-bench/ (Release, -O2)")
    # Examples too: their compile commands are what the compile-time table measures.
    sh(["cmake", "-S", ROOT, "-B", BUILD, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
        "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", "-DWEIR_BUILD_BENCH=ON",
        "-DWEIR_BUILD_TESTS=OFF", "-DWEIR_BUILD_EXAMPLES=ON"])
    sh(["cmake", "--build", BUILD, "-j", str(os.cpu_count())] + (["--target", *targets] if targets else []))


def bench_exe(name):
    return os.path.join(BUILD, "bench", name)


# --- processes -------------------------------------------------------------------------------------------

def machine_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle + iowait


def busy_since(before):
    """How many CPUs' worth of time the whole machine used since `before` (from machine_times())."""
    t1, i1 = machine_times()
    return (1 - (i1 - before[1]) / max(t1 - before[0], 1)) * os.cpu_count()


def busy_cpus(seconds=1.0):
    before = machine_times()
    time.sleep(seconds)
    return busy_since(before)


NOISY_STARTS = []


def wait_for_quiet(limit=90):
    """Waits (at most `limit` seconds) until other processes use less than a fifth of one CPU, so that a
    measurement does not start in the middle of someone else's build; notes it when it had to start anyway."""
    deadline = time.monotonic() + limit
    while True:
        busy = busy_cpus()
        if busy < 0.2:
            return
        if time.monotonic() > deadline:
            NOISY_STARTS.append(busy)
            return
        time.sleep(2)


class Running:
    """A server pinned to core 0, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, cmd, port):
        self.proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- plaintext -------------------------------------------------------------------------------------------

def nginx_cmd(port, workdir):
    with open(os.path.join(ROOT, "bench/peers/nginx.conf.in")) as f:
        conf = f.read().replace("@DIR@", workdir).replace("@PORT@", str(port))
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", path, "-p", workdir]


def plaintext_servers(workdir):
    out = {
        PIPELINE: lambda p: [bench_exe("weir_plaintext"), "--port", str(p), "--stages", "pipeline"],
        BARE: lambda p: [bench_exe("weir_plaintext"), "--port", str(p), "--stages", "bare"],
    }
    for name, exe in ((BEAST, "beast_plaintext"), ("RESTinio", "restinio_plaintext"),
                      ("cpp-httplib", "httplib_plaintext")):
        if os.path.exists(bench_exe(exe)):
            out[name] = lambda p, exe=exe: [bench_exe(exe), str(p)]
        else:
            log(f"{name}: not built (its Debian package is missing), skipped")
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        out[NGINX] = lambda p: nginx_cmd(p, workdir)
    return out


def wrk(port, connections, pipelined, server_pid):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{ARGS.duration}s", "--latency"]
    if pipelined:
        cmd += ["-s", os.path.join(ROOT, "bench/pipelined.lua")]
    machine = machine_times()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before, wall_before = cpu_seconds(server_pid), time.monotonic()
    out = sh(cmd + [f"http://127.0.0.1:{port}/plaintext"])
    cpu = cpu_seconds(server_pid) - cpu_before
    wall = time.monotonic() - wall_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    # What neither the server nor wrk used: other processes sharing the machine during the run.
    others = max(0.0, busy_since(machine) - (cpu + wrk_cpu) / wall)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99_us = float(p99.group(1)) * {"us": 1, "ms": 1000, "s": 1e6}[p99.group(2)] if p99 else 0.0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"non-2xx responses: {bad.group(1)}\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p99": p99_us or None,  # wrk 4.1 sometimes prints 0 for pipelined runs' upper percentiles
        "cpu_us": cpu * 1e6 / requests if requests else None,
        "busy": cpu / wall,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "others": others,
    }


DISTURBED = 0.25  # CPUs used by other processes during a run above which it is run again


def measured(port, connections, pipelined, server_pid, attempts=3):
    """A wrk run that other processes did not disturb, if one of `attempts` gets it; else the least disturbed."""
    best = None
    for attempt in range(attempts):
        if attempt:
            log(f"  other processes used {best['others']:.2f} CPUs during the run: again")
            wait_for_quiet()
        r = wrk(port, connections, pipelined, server_pid)
        if best is None or r["others"] < best["others"]:
            best = r
        if best["others"] < DISTURBED:
            break
    return best


def plaintext():
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        table = plaintext_servers(workdir)
        for r in range(ARGS.rounds):
            for name, cmd in table.items():
                log(f"plaintext round {r + 1}/{ARGS.rounds}: {name}")
                wait_for_quiet()
                port = free_port()
                with Running(cmd(port), port) as server:
                    for label, c, pipelined in LOADS:
                        results.setdefault((name, label), []).append(measured(port, c, pipelined, server.proc.pid))
    med = {}
    for key, runs in results.items():
        m = {}
        for field in ("rps", "p99", "cpu_us", "busy"):
            values = [x[field] for x in runs if x[field] is not None]
            m[field] = statistics.median(values) if values else None
        m["errors"] = sum(x["errors"] for x in runs)
        m["disturbed"] = sum(x["others"] >= DISTURBED for x in runs)
        med[key] = m
    return med, list(table)


def micro():
    log("pipeline micro benchmark")
    wait_for_quiet()
    return sh(["taskset", "-c", "0", bench_exe("micro_pipeline")]).strip()


# --- streams and memory ----------------------------------------------------------------------------------

def streams():
    load = bench_exe("weir_load")
    rows = []
    for subscribers, events in ((1000, 50), (10000, 10)):
        log(f"SSE broadcast to {subscribers} subscribers")
        wait_for_quiet()
        port = free_port()
        with Running([bench_exe("weir_streams"), "--port", str(port), "--max-connections", "30000"], port) as server:
            try:
                before = cpu_seconds(server.proc.pid)
                out = sh(["taskset", "-c", "1", load, "sse", str(port), str(subscribers), str(events)])
                cpu = cpu_seconds(server.proc.pid) - before
                m = re.search(r"deliveries=(\d+) seconds=([\d.]+) deliveries_per_second=(\d+)", out)
                rows.append((f"SSE broadcast, {subscribers:,} subscribers x {events} events",
                             f"{int(m.group(3)):,} deliveries/s", f"{cpu / int(m.group(1)) * 1e6:.2f} µs (with connects)",
                             ""))
            except subprocess.CalledProcessError as e:
                rows.append((f"SSE broadcast, {subscribers:,} subscribers", "failed: " + e.stdout.strip(), "", ""))
    rows += websocket_echo(load)
    return rows


def websocket_echo(load):
    """Echo round trips: weir (coroutine handler and websocket_callbacks) and Beast, interleaved rounds, with the
    server's CPU time (utime+stime) per echoed message beside the rate."""
    messages = 500 if ARGS.quick else 3000
    servers = [("weir, coroutine handler", lambda p: [bench_exe("weir_streams"), "--port", str(p)], "/echo"),
               ("weir, websocket_callbacks", lambda p: [bench_exe("weir_streams"), "--port", str(p)],
                "/echo-callbacks")]
    if os.path.exists(bench_exe("beast_websocket")):
        servers.append((BEAST, lambda p: [bench_exe("beast_websocket"), str(p)], "/echo"))
    if os.path.exists(bench_exe("raw_floor")):
        servers.append(("floor (raw epoll)", lambda p: [bench_exe("raw_floor"), "--port", str(p)], "/echo"))
    results = {name: [] for name, _, _ in servers}
    for round_ in range(1 if ARGS.quick else ARGS.rounds):
        for name, cmd, path in servers:
            log(f"WebSocket echo, {name}, round {round_ + 1}")
            wait_for_quiet()
            port = free_port()
            with Running(cmd(port), port) as server:
                before = cpu_seconds(server.proc.pid)
                out = sh(["taskset", "-c", "1", load, "ws", str(port), "64", str(messages), path])
                cpu = cpu_seconds(server.proc.pid) - before
            m = re.search(r"messages=(\d+) seconds=([\d.]+) messages_per_second=(\d+) p99_us=([\d.]+)", out)
            results[name].append({"messages": int(m.group(1)), "seconds": float(m.group(2)),
                                  "rate": int(m.group(3)), "p99": float(m.group(4)),
                                  "cpu_us": cpu / int(m.group(1)) * 1e6})
    rows = []
    for name, runs in results.items():
        best = min(runs, key=lambda r: r["cpu_us"])
        rows.append((f"WebSocket echo, {name}, 64 connections x {messages} messages",
                     f"{max(r['rate'] for r in runs):,} messages/s", f"{best['cpu_us']:.2f} µs",
                     f"{min(r['p99'] for r in runs):,.0f} µs"))
    return rows


def memory(count=5000):
    """Server RSS growth per connection, after one warm-up connection of the same kind."""
    load = bench_exe("weir_load")
    rows = {}
    for kind, label in (("http", "idle keep-alive HTTP (after one GET)"), ("sse", "idle SSE subscriber"),
                        ("ws", "idle WebSocket")):
        log(f"memory: {count} x {label}")
        port = free_port()
        with Running([bench_exe("weir_streams"), "--port", str(port), "--max-connections", "30000"], port) as srv:
            clients = []
            try:
                for n in (1, count):
                    time.sleep(0.3)
                    before = rss_kib(srv.proc.pid)
                    c = subprocess.Popen(["taskset", "-c", "1", load, "idle", str(port), str(n), kind],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    clients.append(c)
                    if c.stdout.readline().strip() != "ready":
                        raise RuntimeError(f"{label}: the client did not connect")
                time.sleep(0.5)
                rows[kind] = (label, (rss_kib(srv.proc.pid) - before) * 1024 / count)
            finally:
                for c in clients:
                    c.stdin.close()
                    c.wait(timeout=30)
    return rows


# --- idle connections at scale --------------------------------------------------------------------------

SCALE_SUBSCRIBERS = 19000  # the per-process descriptor limit here is 20,000; the server keeps a few for itself
KIND_COUNT = 10000
PER_CLIENT = 5000          # connections per client process, each from its own source address
IDLE_TARGETS = {"http": 1024, "sse": 1536, "ws": 2048, "ws-callbacks": 2048}  # server RSS per idle connection, bytes
SCALE_RSS_TARGET_MB = 40
SCALE_DELIVERY_TARGET_MS = 250
SCALE_EVENTS = 5           # published one after another, each once the previous one reached every subscriber
# How long the server's CPU time is watched while every connection is idle: longer than the SSE heartbeat interval
# (15 s), so that every idle stream sends its heartbeat once in the window, whenever it connected.
IDLE_CPU_SECONDS = 16
IDLE_BEGIN, IDLE_END = "<!-- idle-scale: begin -->", "<!-- idle-scale: end -->"


class IdleClients:
    """`count` idle connections of one kind from weir_idle processes pinned to core 1, at most PER_CLIENT each,
    each process binding its sockets to its own source address (127.0.0.2, 127.0.0.3, ...) so that no address
    runs out of ephemeral ports. Waits until every connection has its response head."""

    def __init__(self, port, count, kind, first_source=2):
        processes = max(1, math.ceil(count / PER_CLIENT))
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        self.procs, self.buffers = [], []
        start = time.monotonic()
        try:
            for i, n in enumerate(shares):
                self.procs.append(subprocess.Popen(
                    ["taskset", "-c", "1", bench_exe("weir_idle"), str(port), f"127.0.0.{first_source + i}",
                     str(n), kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0))
                self.buffers.append(b"")
            lines = [self.line(i, time.monotonic() + 150) for i in range(len(self.procs))]
            self.seconds = time.monotonic() - start
            for line in lines:
                f = line.split() if line else []
                if len(f) != 4 or f[0] != "ready" or f[3] != "0":
                    raise RuntimeError(f"idle {kind} client did not connect all: {line!r}")
        except BaseException:
            self.close()
            raise

    def line(self, i, deadline):
        """The next line from client i, or None at the deadline."""
        proc = self.procs[i]
        while b"\n" not in self.buffers[i]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            self.buffers[i] += chunk
        line, self.buffers[i] = self.buffers[i].split(b"\n", 1)
        return line.decode()

    def received(self, timeout=30):
        """(subscribers that read the event, first and last receipt in CLOCK_MONOTONIC ns, closed) over all."""
        deadline = time.monotonic() + timeout
        total, first, last, closed = 0, None, None, 0
        for i, proc in enumerate(self.procs):
            line = self.line(i, deadline)
            if line is None:  # not every subscriber has it: ask how far it got
                proc.stdin.write(b"report\n")
                line = self.line(i, time.monotonic() + 5) or "received 0 0 0 0"
            _, n, f, l, c = line.split()
            total, closed = total + int(n), closed + int(c)
            if int(n):
                first = int(f) if first is None else min(first, int(f))
                last = int(l) if last is None else max(last, int(l))
        return total, first, last, closed

    def reset(self):
        for proc in self.procs:
            proc.stdin.write(b"reset\n")

    def close(self):
        for proc in self.procs:
            try:
                proc.stdin.write(b"quit\n")
                proc.stdin.close()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def cpu_seconds(self):
        return sum(cpu_seconds(proc.pid) for proc in self.procs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def publish(port):
    """POSTs one event to the hub; returns CLOCK_MONOTONIC ns taken just before the request is sent."""
    body = b"one event for every subscriber"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        req = b"POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        t0 = time.monotonic_ns()
        s.sendall(req)
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = s.recv(4096)
            if not chunk:
                break
            resp += chunk
    if not resp.startswith(b"HTTP/1.1 202"):
        raise RuntimeError(f"publish answered {resp[:40]!r}")
    return t0


def idle_cpu(pid):
    """The share of one core the server uses while its connections are idle (timers, heartbeats)."""
    before, t = cpu_seconds(pid), time.monotonic()
    time.sleep(IDLE_CPU_SECONDS)
    return (cpu_seconds(pid) - before) / (time.monotonic() - t)


def streams_server(port):
    return Running([bench_exe("weir_streams"), "--port", str(port), "--max-connections", "30000"], port)


def idle_scale():
    """19,000 idle SSE hub subscribers in one server: its RSS, the time to connect them, the time one event
    takes to reach them all; then server RSS per idle connection of each kind at 10,000 connections."""
    out = {"subscribers": SCALE_SUBSCRIBERS, "kind_count": KIND_COUNT, "per_client": PER_CLIENT}
    log(f"idle scale: {SCALE_SUBSCRIBERS} SSE subscribers")
    wait_for_quiet(30)
    port = free_port()
    with streams_server(port) as srv:
        with open(f"/proc/{srv.proc.pid}/limits") as f:
            out["server_nofile"] = re.search(r"Max open files\s+(\d+)", f.read()).group(1)
        time.sleep(0.3)
        out["rss_fresh_kb"] = rss_kib(srv.proc.pid)
        with IdleClients(port, 1, "sse", first_source=1) as warm:
            time.sleep(0.3)
            out["rss_before_kb"] = rss_kib(srv.proc.pid)
            cpu_before = cpu_seconds(srv.proc.pid)
            with IdleClients(port, SCALE_SUBSCRIBERS, "sse") as subs:
                out["connect_seconds"] = subs.seconds
                out["connect_server_cpu"] = cpu_seconds(srv.proc.pid) - cpu_before
                out["clients"] = len(subs.procs)
                time.sleep(1)
                out["rss_after_kb"] = rss_kib(srv.proc.pid)
                out["idle_cpu"] = idle_cpu(srv.proc.pid)
                out["events"] = []
                for _ in range(SCALE_EVENTS):
                    wait_for_quiet(30)
                    for c in (warm, subs):
                        c.reset()
                    machine_before, cpu_before = machine_times(), cpu_seconds(srv.proc.pid)
                    clients_before, wall_before = subs.cpu_seconds() + warm.cpu_seconds(), time.monotonic()
                    t0 = publish(port)
                    total, first, last, closed = subs.received()
                    w = warm.received()
                    server_cpu = cpu_seconds(srv.proc.pid) - cpu_before
                    clients_cpu = subs.cpu_seconds() + warm.cpu_seconds() - clients_before
                    others = busy_since(machine_before) - (server_cpu + clients_cpu) / (time.monotonic() - wall_before)
                    out["events"].append({
                        "delivered": total + w[0], "closed": closed + w[3],
                        "first_ms": (first - t0) / 1e6 if first else None,
                        "all_ms": (max(last, w[2] or 0) - t0) / 1e6 if last else None,
                        "server_cpu_ms": server_cpu * 1000, "clients_cpu_ms": clients_cpu * 1000,
                        "others_busy": max(0.0, others)})
                    time.sleep(0.5)
    out["per_subscriber"] = (out["rss_after_kb"] - out["rss_before_kb"]) * 1024 / SCALE_SUBSCRIBERS
    log(f"  {SCALE_SUBSCRIBERS} connected in {out['connect_seconds']:.2f} s, "
        f"{out['per_subscriber']:.0f} B per subscriber, "
        f"RSS {out['rss_after_kb'] / 1024:.1f} MB, events to all {[e['all_ms'] for e in out['events']]} ms")

    out["kinds"] = {}
    for kind in ("http", "sse", "ws", "ws-callbacks"):
        log(f"idle scale: {KIND_COUNT} x {kind}")
        port = free_port()
        with streams_server(port) as srv:
            with IdleClients(port, 1, kind, first_source=1):
                time.sleep(0.3)
                before = rss_kib(srv.proc.pid)
                cpu_before = cpu_seconds(srv.proc.pid)
                with IdleClients(port, KIND_COUNT, kind) as conns:
                    connect_cpu = cpu_seconds(srv.proc.pid) - cpu_before
                    time.sleep(1)
                    after = rss_kib(srv.proc.pid)
                    idle = idle_cpu(srv.proc.pid)
                    log(f"  closing {KIND_COUNT} connections and the server")
        out["kinds"][kind] = {"before_kb": before, "after_kb": after, "connect_seconds": conns.seconds,
                              "connect_server_cpu": connect_cpu, "idle_cpu": idle,
                              "per_connection": (after - before) * 1024 / KIND_COUNT}
        log(f"  {out['kinds'][kind]['per_connection']:.0f} B per connection, connected in {conns.seconds:.2f} s")
    return out


def idle_scale_section(r):
    """The page's section for idle_scale()'s results, between markers so that `--only idle-scale` can replace it."""
    def verdict(met):
        return "met" if met else "**missed**"

    n, k = r["subscribers"], r["kind_count"]
    labels = {"http": "idle keep-alive HTTP (after one GET)", "sse": "idle SSE hub subscriber",
              "ws": "idle WebSocket (coroutine handler)", "ws-callbacks": "idle WebSocket (websocket_callbacks)"}
    old = {"http": 8492, "sse": 13745, "ws": 22681, "ws-callbacks": 22681}
    total_mb = r["rss_after_kb"] / 1024
    per = r["per_subscriber"]
    L = [IDLE_BEGIN, f"## Idle connections at scale (`bench/weir_streams.cpp`, {n:,} SSE subscribers)", "",
         "Re-run with `python3 bench/run.py --only idle-scale` (3 to 6 minutes: it waits up to 30 s for a quiet",
         "machine before each event; it rewrites this section only).",
         f"Measured {r['when']} on weir {r['weir']}.", "",
         f"One server thread pinned to core 0 holds {n:,} idle subscribers of its SSE hub (`GET /events`), opened by",
         f"{r['clients']} `bench/idle_client.cpp` processes pinned to core 1, at most {r['per_client']:,} connections "
         "each, each binding its",
         "sockets to its own source address (127.0.0.2, 127.0.0.3, ...) so that no address runs out of ephemeral",
         "ports. The per-process limit on open files is 20,000 here (hard limit); `weir_streams` raises its soft",
         f"limit to the hard limit at start (the server ran with {int(r['server_nofile']):,}). RSS is VmRSS from "
         "`/proc`; *before* is",
         "with one warm-up subscriber connected, so the difference is what the subscribers add.", "",
         "| measure | value | target | |", "| --- | ---: | ---: | --- |",
         f"| server RSS, fresh | {r['rss_fresh_kb'] / 1024:.1f} MB | | |",
         f"| server RSS before (one warm-up subscriber) | {r['rss_before_kb'] / 1024:.1f} MB | | |",
         f"| server RSS with {n:,} idle subscribers | {total_mb:.1f} MB | <= {SCALE_RSS_TARGET_MB} MB | "
         f"{verdict(total_mb <= SCALE_RSS_TARGET_MB)} |",
         f"| RSS per subscriber | {per:,.0f} B | <= {IDLE_TARGETS['sse']:,} B | "
         f"{verdict(per <= IDLE_TARGETS['sse'])} |",
         f"| time to connect all {n:,} (connect, request, response head; 128 at a time per client) | "
         f"{r['connect_seconds']:.2f} s | | |",
         f"| server CPU time meanwhile (accepting and subscribing them) | {r['connect_server_cpu']:.2f} s "
         f"({r['connect_server_cpu'] * 1e6 / n:.0f} µs each) | | |",
         f"| server CPU while all are idle (SSE heartbeats every 15 s, deadlines) | "
         f"{r['idle_cpu'] * 100:.1f}% of a core | | |"]
    events = r["events"]
    complete = [e["all_ms"] for e in events if e["all_ms"] is not None and e["delivered"] == n + 1]
    if len(complete) == len(events):
        best, mid = min(complete), statistics.median(complete)
        L.append(f"| one event published (POST /messages) until every subscriber has read it, best of "
                 f"{len(events)} | {best:.0f} ms | <= {SCALE_DELIVERY_TARGET_MS} ms | "
                 f"{verdict(best <= SCALE_DELIVERY_TARGET_MS)} |")
        L.append(f"| ... median of {len(events)} | {mid:.0f} ms | | |")
        cpu = min(e["server_cpu_ms"] for e in events)
        L.append(f"| server CPU time for one event's delivery to all, least of {len(events)} | {cpu:.0f} ms | | |")
    else:
        L.append(f"| one event published until every subscriber has read it | not every subscriber read "
                 f"{len(events) - len(complete)} of {len(events)} events within 30 s | "
                 f"<= {SCALE_DELIVERY_TARGET_MS} ms | **missed** |")
    L += ["", "Each event, published once the previous one had reached every subscriber (the warm-up one too):", "",
          "| event | until the first has it | until all have it | server CPU time | clients' CPU time | "
          "CPUs other processes used |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, e in enumerate(events, 1):
        first = f"{e['first_ms']:.1f} ms" if e["first_ms"] is not None else "–"
        last = f"{e['all_ms']:.0f} ms" if e["all_ms"] is not None else "–"
        if e["delivered"] != n + 1:
            last += f" ({e['delivered']:,} of {n + 1:,} had it)"
        L.append(f"| {i} | {first} | {last} | {e['server_cpu_ms']:.0f} ms | {e['clients_cpu_ms']:.0f} ms | "
                 f"{e['others_busy']:.1f} |")
    closed = max(e["closed"] for e in events)
    others = min(e["others_busy"] for e in events)
    if others >= DISTURBED:
        L += ["", f"**Other processes used {others:.1f} or more of the machine's {os.cpu_count()} CPUs during every "
              "event**: the wall times are",
              "inflated by waiting for a core; the server's CPU time is not, and alone it bounds delivery from below."]
    L += ["",
          "Delivery is timed from just before the POST is sent to the last subscriber's read, both taken from",
          "`CLOCK_MONOTONIC` (the clients timestamp each subscriber's receipt; the maximum over all is reported),",
          f"so it includes the clients' own reading of {n:,} sockets on core 1. CPU times are user + system time from",
          "`/proc` over the same span (10 ms ticks); the server's does not count time other processes took from core",
          "0, so on a shared machine it is the steadier measure: delivery cannot take less wall time than that.",
          f"Connections the server closed while idle: {closed}. Kernel memory for the sockets (slab, buffers) is not",
          "in the server's RSS.", "",
          f"**At 1,000,000 subscribers per machine** (server RSS only, at {per:,.0f} B each): "
          f"{per * 1e6 / 2**30:.1f} GiB, against",
          f"{IDLE_TARGETS['sse'] * 1e6 / 2**30:.1f} GiB at the 1.5 KB target; and, at the idle CPU measured here, "
          f"{r['idle_cpu'] * 1e6 / n:.1f} cores kept busy by",
          "idle subscribers alone (a heartbeat per stream every 15 s: one write each, from the loop's deadline",
          "sweep; on loopback the server's CPU time includes the kernel's delivery to the client). A machine also",
          "needs 1,000,000",
          "descriptors: with 20,000 per process that is at least 50 server processes (or a raised hard limit), and",
          "on the client side 1,000,000 / 28,000 ephemeral ports = 36 or more source addresses.", "",
          f"### RSS per idle connection, by kind ({k:,} connections each)", "",
          f"Growth of the server's VmRSS while {k:,} idle connections of one kind are open, divided by {k:,}, "
          "after one",
          "warm-up connection of that kind; a fresh server for each kind. The old build's numbers are issue #14's.",
          "*Server CPU per connect* is the server's CPU time while they connected, divided by their number; *while",
          f"idle* is its CPU time over {IDLE_CPU_SECONDS} s with all of them open and silent (what timers and "
          "heartbeats "
          "cost; 10 ms ticks).",
          "", "| connection | server RSS per connection | target | | old build | time to connect all | "
          "server CPU per connect | server CPU while idle |",
          "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for kind, label in labels.items():
        if kind not in r["kinds"]:
            continue  # results from before the kind was measured
        v = r["kinds"][kind]["per_connection"]
        L.append(f"| {label} | {v:,.0f} B | <= {IDLE_TARGETS[kind]:,} B | {verdict(v <= IDLE_TARGETS[kind])} | "
                 f"{old[kind]:,} B | {r['kinds'][kind]['connect_seconds']:.2f} s | "
                 f"{r['kinds'][kind]['connect_server_cpu'] * 1e6 / k:.0f} µs | "
                 f"{r['kinds'][kind]['idle_cpu'] * 100:.1f}% of a core |")
    L += ["", IDLE_END]
    return L


def existing_idle_scale_section():
    path = os.path.join(ROOT, "docs/benchmarks.md")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read()
    if IDLE_BEGIN not in text or IDLE_END not in text:
        return None
    return text[text.index(IDLE_BEGIN):text.index(IDLE_END) + len(IDLE_END)].split("\n")


def splice_idle_scale(lines):
    """Replaces the section in docs/benchmarks.md, or puts it before the compile-time section."""
    path = os.path.join(ROOT, "docs/benchmarks.md")
    with open(path) as f:
        text = f.read()
    section = "\n".join(lines)
    if IDLE_BEGIN in text and IDLE_END in text:
        text = text[:text.index(IDLE_BEGIN)] + section + text[text.index(IDLE_END) + len(IDLE_END):]
    else:
        anchor = "## Compile time and peak memory"
        i = text.index(anchor) if anchor in text else len(text)
        text = text[:i] + section + "\n\n" + text[i:]
    with open(path, "w") as f:
        f.write(text)


def run_idle_scale():
    r = idle_scale()
    r["when"] = f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC"
    r["weir"] = versions()["weir"]
    return r


# --- compile time ----------------------------------------------------------------------------------------

# (row, unit, extra compiler arguments). A separate-compilation row is the unit's own command with
# WEIR_SEPARATE_COMPILATION defined: the unit a program built against weir::separate compiles (src/weir.cpp,
# compiled once per program, is not counted).
COMPILE_UNITS = [
    ("bare Asio coroutine hello (baseline)", "bench/baseline/asio_coroutine_hello.cpp", []),
    ("weir hello (examples/hello.cpp)", "examples/hello.cpp", []),
    ("weir hello, separate compilation", "examples/hello.cpp", ["-DWEIR_SEPARATE_COMPILATION=1"]),
    ("weir chat (examples/chat.cpp)", "examples/chat.cpp", []),
    ("weir chat, separate compilation", "examples/chat.cpp", ["-DWEIR_SEPARATE_COMPILATION=1"]),
    ("Boost.Beast hello", "bench/peers/beast_plaintext.cpp", []),
    ("cpp-httplib hello", "bench/peers/httplib_plaintext.cpp", []),
    ("RESTinio hello", "bench/peers/restinio_plaintext.cpp", []),
]


# --- topics ----------------------------------------------------------------------------------------------

def has_topics(ref):
    return subprocess.run(["git", "-C", ROOT, "cat-file", "-e", f"{ref}:include/weir/topics.hpp"],
                          capture_output=True).returncode == 0


def topics_baseline_server(ref):
    """bench/topics_server.cpp built against the headers of commit `ref`: its topics if it has them, else its hub
    and a send_shared broadcast."""
    args, cwd = compile_command("bench/topics_server.cpp")
    if args is None:
        raise RuntimeError("no compile command for bench/topics_server.cpp: build with --only topics first")
    src = tempfile.mkdtemp(prefix="weir-topics-baseline-")
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref, "include"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    out = bench_exe("weir_topics_baseline_server")
    cmd = []
    for a in args[:-2]:  # without "-o /dev/null"
        if a == "-c":
            continue
        cmd.append("-I" + os.path.join(src, "include") if a == "-I" + os.path.join(ROOT, "include") else a)
    cmd += ([] if has_topics(ref) else ["-DWEIR_TOPICS_BASELINE"]) + ["-o", out, "-pthread"] + \
        (["-lfmt"] if "-DFMT_SHARED" in cmd else [])
    sh(cmd, cwd=cwd)
    shutil.rmtree(src)
    return out


def topics_cell(server, kind, subscribers, burst):
    """One measurement: the client's report line as a dict."""
    deliveries = (300_000 if subscribers <= 1000 else 1_000_000) * (1 if burst == 1 else 3)
    if ARGS.quick:
        deliveries //= 5
    rounds = max(1, deliveries // (subscribers * burst))
    for attempt in range(2):
        port = free_port()
        with Running([server, "--port", str(port)], port) as srv:
            client = subprocess.run(["taskset", "-c", "1", bench_exe("weir_topics_client"), kind, str(port),
                                     str(srv.proc.pid), str(subscribers), str(burst), str(rounds)],
                                    capture_output=True, text=True)
        if client.returncode == 0:
            return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", client.stdout)}
        log(f"topics: the client failed ({client.stderr.strip()}); " + ("retrying" if attempt == 0 else "giving up"))
    raise RuntimeError("the topics client failed twice")


def run_topics():
    raise_nofile()
    servers = [("weir topics", bench_exe("weir_topics_server"))]
    if os.path.exists(bench_exe("raw_floor")):
        # The kernel's share: the same sends from a raw epoll loop with next to no user-space work.
        servers.append(("floor (raw epoll)", bench_exe("raw_floor")))
    if ARGS.topics_baseline:
        label = "topics at" if has_topics(ARGS.topics_baseline) else "before topics"
        servers.append((f"{label} {ARGS.topics_baseline}", topics_baseline_server(ARGS.topics_baseline)))
    results = []
    for subscribers in (1000, 10000):
        for burst in (1, 10):
            for kind in ("sse", "ws"):
                for name, exe in servers:
                    log(f"topics: {name}, {kind}, {subscribers} subscribers, burst {burst}")
                    wait_for_quiet(limit=15)  # CPU time per delivery is the server's own; wall time is not reported
                    r = topics_cell(exe, kind, subscribers, burst)
                    results.append({"server": name, "kind": kind, "subscribers": subscribers, "burst": burst, **r})
    with open(os.path.join(BUILD, "topics.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("| subscribers, mode | protocol | server | CPU per delivery | deliveries/s |")
    print("| --- | --- | --- | ---: | ---: |")
    for r in results:
        mode = "one at a time" if r["burst"] == 1 else f"bursts of {int(r['burst'])}"
        print(f"| {r['subscribers']:,}, {mode} | {'SSE' if r['kind'] == 'sse' else 'WebSocket'} | {r['server']} | "
              f"{r['cpu_us_per_delivery']:.2f} us | {r['deliveries_per_second']:,.0f} |")


def compile_command(src):
    """The build's own command for one source (its flags and defines), writing no object or dependency file."""
    with open(os.path.join(BUILD, "compile_commands.json")) as f:
        entry = next((e for e in json.load(f) if os.path.realpath(e["file"]) == os.path.join(ROOT, src)), None)
    if entry is None:
        return None, None
    args, out, skip = shlex.split(entry["command"]), [], 0
    for a in args:
        if skip:
            skip -= 1
        elif a in ("-o", "-MT", "-MF"):
            skip = 1
        elif a != "-MD":
            out.append(a)
    return out + ["-o", "/dev/null"], entry["directory"]


def compile_times(tries=2):
    """CPU seconds (user + system, best of `tries`) and peak memory of the compiler on one translation unit."""
    rows = []
    for name, src, extra in COMPILE_UNITS:
        cmd, cwd = compile_command(src)
        if cmd is None:
            log(f"{src} is not in this build; skipped")
            continue
        cmd = cmd[:1] + extra + cmd[1:]
        log(f"compiling {src}")
        best = None
        for _ in range(tries):
            wait_for_quiet()
            res = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", *cmd], cwd=cwd, capture_output=True, text=True)
            if res.returncode != 0:
                break
            user, system, kb = res.stderr.strip().split("\n")[-1].split()
            run = (float(user) + float(system), int(kb) / 1024)
            best = run if best is None or run[0] < best[0] else best
        if best:
            rows.append((name, *best))
        else:
            log(f"{src} did not compile here; skipped")
    return rows


# --- report ----------------------------------------------------------------------------------------------

def versions():
    def pkg(name):
        try:
            return sh(["dpkg-query", "-W", "-f=${Version}", name]) or "-"
        except subprocess.CalledProcessError:
            return "not installed"
    weir_version = re.findall(r"WEIR_VERSION_(?:MAJOR|MINOR|PATCH) (\d+)",
                              open(os.path.join(ROOT, "include/weir/version.hpp")).read())
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "include", "bench"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "weir": ".".join(weir_version) + (f" (git {commit}{', with local changes' if dirty else ''})" if commit else ""),
        "g++": sh("g++ --version").split("\n")[0],
        "Asio (libasio-dev)": pkg("libasio-dev"),
        "Boost.Beast (libboost1.81-dev)": pkg("libboost1.81-dev"),
        "RESTinio (librestinio-dev)": pkg("librestinio-dev"),
        "cpp-httplib (libcpp-httplib-dev)": pkg("libcpp-httplib-dev"),
        "nginx (nginx-light)": pkg("nginx-light"),
        "wrk": pkg("wrk"),
    }


def fmt_us(v):
    return "–" if v is None else f"{v:,.0f} µs"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "–"


def machine():
    cpu = re.search(r"Model name:\s+(.*)", sh("lscpu")).group(1).strip()
    mem_total = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_total / 1024 / 1024),
            "system": f"{platform.system()} {platform.release()}", "load": os.getloadavg()[0],
            "versions": versions()}


def write_report(plain, names, micro_out, stream_rows, mem, comp, started, elapsed, env, scale=None):
    L = ["# Benchmarks", "",
         "Generated by `bench/run.py` (about 15 minutes on a quiet machine; it waits for quiet). Every server answers",
         "`GET /plaintext` with `Hello, World!` and `Access-Control-Allow-Origin`, `X-Content-Type-Options` and",
         "`X-Frame-Options`, keeps connections alive and runs on one thread pinned to core 0; the load generator",
         "(`wrk -t1`, or `bench/load_client.cpp`) runs on core 1; loopback only. Servers are interleaved",
         f"(A B C ... A B C ...), {ARGS.rounds} round(s) of {ARGS.duration} s per load, and each cell is the median.",
         "A run during which other processes used more than a quarter of a CPU is made again (twice at most).",
         "", "The machine is shared and noisy: compare ratios within this page, not absolute numbers across runs.",
         "*CPU/req* is the server's own user + system CPU time per request (from `/proc`), which does not count",
         "time other processes took from the server's core, so it is the steadier of the two measures.", "",
         f"Run: {started:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.0f} min. Machine: {env['cpu']}, {env['cores']} cores, "
         f"{env['memory_gib']} GiB, {env['system']}; load average when done {env['load']:.1f}."]
    if NOISY_STARTS:
        L += ["", f"**{len(NOISY_STARTS)} measurement(s) started while other processes kept "
              f"{max(NOISY_STARTS):.1f} CPUs busy** (each waited 90 s for a quiet machine first); the *server core "
              "busy* column shows how much of its core each server got."]
    L += ["", "| component | version |", "| --- | --- |"]
    L += [f"| {k} | {v} |" for k, v in env["versions"].items()]

    beast = {l: plain.get((BEAST, l)) for l, _, _ in LOADS}
    nginx = {l: plain.get((NGINX, l)) for l, _, _ in LOADS}
    L += ["", "## Plaintext", ""]
    for label, _, _ in LOADS:
        L += [f"### {label}", "",
              "| server | req/s | p99 | CPU/req | server core busy | req/s vs Beast | req/s vs nginx | CPU/req vs Beast |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for n in names:
            r = plain[(n, label)]
            b, x = beast.get(label), nginx.get(label)
            errors = f" ({r['errors']} socket errors)" if r["errors"] else ""
            errors += " †" if r.get("disturbed") else ""
            cpu = "–" if r["cpu_us"] is None else f"{r['cpu_us']:.2f} µs"
            L.append(f"| {n} | {r['rps']:,.0f}{errors} | {fmt_us(r['p99'])} | {cpu} | "
                     f"{r['busy'] * 100:.0f}% | {ratio(r['rps'], b and b['rps'])} | {ratio(r['rps'], x and x['rps'])} | "
                     f"{ratio(r['cpu_us'], b and b['cpu_us'])} |")
        L.append("")
    if any(r.get("disturbed") for r in plain.values()):
        L += ["† In at least one round, other processes used more than a quarter of a CPU during all three",
              "attempts at this measurement; its req/s is the least reliable number on the page.", ""]
    L += ["![requests per second](benchmarks.png)", ""]

    # Targets: judged on requests per second, as they are stated; the same ratio in CPU time per request is
    # shown beside, since it is the measure other processes disturb least.
    targets = []

    def verdict(met):
        return "met" if met else "**missed**"

    def target(what, text, met, cpu_text="", cpu_met=None):
        cpu = f"{cpu_text} ({verdict(cpu_met)})" if cpu_text else ""
        targets.append(f"| {what} | {text} | {verdict(met)} | {cpu} |")

    def speed_target(what, label, other, goal):
        mine, theirs = plain[(PIPELINE, label)], plain.get((other, label))
        if not theirs:
            return
        v = mine["rps"] / theirs["rps"]
        c = theirs["cpu_us"] / mine["cpu_us"] if mine["cpu_us"] and theirs["cpu_us"] else None
        target(what, f"{v:.2f}x", v >= goal, f"{c:.2f}x" if c else "", c is not None and c >= goal)

    for label in ("c64", "c256"):
        speed_target(f"plaintext, 5-stage pipeline, {label}: >= 1.15x Beast", label, BEAST, 1.15)
    for label in ("c64", "c256"):
        speed_target(f"plaintext, 5-stage pipeline, {label}: >= 0.9x nginx", label, NGINX, 0.9)
    speed_target("pipelined x16, 5-stage pipeline: >= 2x Beast", "pipelined x16, c64", BEAST, 2)
    for label in ("c64", "c256"):
        bare, staged = plain[(BARE, label)], plain[(PIPELINE, label)]
        v = bare["rps"] / staged["rps"] - 1
        c = staged["cpu_us"] / bare["cpu_us"] - 1 if bare["cpu_us"] and staged["cpu_us"] else None
        target(f"pipeline overhead, {label}: <= 3% (bare over 5-stage, minus 1)", f"{v * 100:+.1f}%", v <= 0.03,
               f"{c * 100:+.1f}%" if c is not None else "", c is not None and c <= 0.03)
    # Lean connections: the server's CPU per request at most uWebSockets' figures on this kind of machine.
    for what, label, goal in (("plaintext c64", "c64", 7.5), ("pipelined x16", "pipelined x16, c64", 1.1)):
        mine = plain.get((PIPELINE, label), {}).get("cpu_us")
        if mine:
            target(f"{what}, 5-stage pipeline: server CPU <= {goal} µs per request (uWebSockets' figure)",
                   f"{mine:.2f} µs", mine <= goal)
    for a, _, cpu, _ in stream_rows:
        m = re.match(r"WebSocket echo, (weir, [^,]+),", a)
        if m and cpu.endswith(" µs"):
            v = float(cpu.split()[0])
            target(f"WebSocket echo, {m.group(1)}: server CPU <= 6.5 µs per message (uWebSockets' figure)",
                   f"{v:.2f} µs", v <= 6.5)
    if "sse" in mem:
        v = mem["sse"][1]
        target("idle SSE connection: <= 2 KB", f"{v / 1024:.1f} KB", v <= 2048)
    base = next((s for n, s, _ in comp if n.startswith("bare Asio")), None)
    hello = next((s for n, s, _ in comp if n.startswith("weir hello (")), None)
    if base and hello:
        v = hello / base
        target("hello TU compile time: <= 1.3x a bare Asio coroutine TU", f"{v:.2f}x", v <= 1.3)
    separate = next((s for n, s, _ in comp if n == "weir hello, separate compilation"), None)
    if base and separate:
        v = separate / base
        target("hello TU compile time with separate compilation: <= 0.7x a bare Asio coroutine TU", f"{v:.2f}x",
               v <= 0.7)
    L += ["## Targets", "",
          "Judged on requests per second, as the targets are stated; the last column is the same comparison made",
          "on server CPU time per request (the peer's over weir's, or weir's 5-stage over bare), which other",
          "processes on the machine disturb least.", "",
          "| target | measured | | on CPU/req |", "| --- | ---: | --- | ---: |", *targets, ""]
    ns = re.findall(r"([\d.]+) ns/request", micro_out)

    L += ["## Pipeline overhead without the network (`bench/micro_pipeline`)", "",
          "The same five stages and the bare handler called in a loop on one core, best of five; the difference",
          "is what the pipeline adds per request before any I/O.", "", "```", micro_out, "```", ""]
    bare_cpu = plain[(BARE, "c64")]["cpu_us"]
    if len(ns) == 2 and bare_cpu:
        added = float(ns[1]) - float(ns[0])
        L += [f"That is {added:.0f} ns per request, {added / 1000 / bare_cpu * 100:.1f}% of the "
              f"{bare_cpu:.2f} µs of server CPU a plaintext request costs at c64.", ""]

    L += ["## Streams (weir, `bench/weir_streams.cpp`, one thread)", "",
          "| measure | throughput | server CPU per delivery or message | p99 round trip |",
          "| --- | ---: | ---: | ---: |"]
    L += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in stream_rows]
    L += ["", "SSE: one client opens the subscribers, then POSTs the events one after another on a keep-alive",
          "connection; deliveries/s counts every event reaching every subscriber, from the first POST to the last",
          "delivery (the server's CPU here includes accepting the subscribers). WebSocket: each connection sends a",
          "32-byte text message and waits for its echo, 64 at once; weir's two rows and Boost.Beast's",
          "(`bench/peers/beast_websocket.cpp`) and the floor (`bench/baseline/raw_floor.cpp`: a raw epoll loop that",
          "echoes each read's frames in one send, what the kernel alone costs) run interleaved, best of the rounds. #14's target for the server's CPU",
          "per echoed message is uWebSockets' 6.5 µs measured on this kind of machine (uWebSockets is not packaged",
          "in Debian, so it is not in this run).", ""]

    L += [f"## Memory per connection (`bench/weir_streams.cpp`, 5,000 connections)", "",
          "Growth of the server's resident memory (VmRSS) while 5,000 connections of one kind are open and idle,",
          "divided by 5,000, after one warm-up connection of that kind. Kernel socket buffers are not in RSS.", "",
          "| connection | server RSS per connection |", "| --- | ---: |"]
    L += [f"| {label} | {v / 1024:.1f} KB |" for label, v in mem.values()]

    section = idle_scale_section(scale) if scale else existing_idle_scale_section()
    if section:
        L += [""] + section
    base = next((s for n, s, _ in comp if n.startswith("bare Asio")), None)
    L += ["", "## Compile time and peak memory of one translation unit", "",
          "Each unit compiled with its own command from the Release build (`-O2 -DNDEBUG`, C++20, g++), user +",
          "system CPU seconds (best of two) and the compiler's peak resident memory. The peers' units are the",
          "servers above; the baseline is `bench/baseline/asio_coroutine_hello.cpp`.", "",
          "| translation unit | CPU seconds | peak MB | time vs bare Asio | time vs Beast hello |",
          "| --- | ---: | ---: | ---: | ---: |"]
    beast_c = next((s for n, s, _ in comp if n.startswith("Boost.Beast")), None)
    L += [f"| {n} | {s:.1f} | {mb:.0f} | {ratio(s, base)} | {ratio(s, beast_c)} |" for n, s, mb in comp]

    with open(os.path.join(ROOT, "bench/findings.md")) as f:
        L += ["", f.read().strip()]
    with open(os.path.join(ROOT, "docs/benchmarks.md"), "w") as f:
        f.write("\n".join(L) + "\n")


def chart(plain, names):
    """Requests per second: c64 and c256 on the left, pipelined on the right (gnuplot-nox)."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        log("gnuplot not available: no chart (apt-get install gnuplot-nox)")
        return
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data.tsv")
        with open(data, "w") as f:
            f.write("server\t" + "\t".join(f'"{l}"' for l, _, _ in LOADS) + "\n")
            for n in names:
                f.write(f'"{n}"\t' + "\t".join(f"{plain[(n, l)]['rps']:.0f}" for l, _, _ in LOADS) + "\n")
        script = f"""
set terminal pngcairo size 1200,520 font ",10"
set output "{os.path.join(ROOT, 'docs/benchmarks.png')}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set yrange [0:*]
set format y "%.0s%c"
set grid ytics
set xtics nomirror rotate by -25
set multiplot layout 1,2 title "GET /plaintext, one server thread on one core: requests per second (higher is better)"
set title "keep-alive, one request at a time"
set key top right
plot "{data}" using 2:xtic(1) title columnheader(2), "" using 3 title columnheader(3)
set title "16 pipelined requests per write, 64 connections"
set format y "%.1s%c"
plot "{data}" using 4:xtic(1) title columnheader(4) linecolor 3
unset multiplot
"""
        subprocess.run([gnuplot], input=script, text=True, check=True)


def main():
    global ARGS, NOISY_STARTS, BUILD
    ARGS = parse_args()
    if ARGS.build_dir:
        BUILD = os.path.abspath(ARGS.build_dir)
    saved = os.path.join(BUILD, "results.json")
    if ARGS.only == "websocket-deflate":
        # permessage-deflate: RSS per session for each setting, and CPU per broadcast delivery vs plain
        # (bench/websocket_deflate.py). Needs tests/websocket_deflate_server from a build with tests: build/
        # unless --build-dir. Prints its tables; docs/benchmarks.md is left as it is.
        import sys
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import websocket_deflate
        websocket_deflate.main(["all", "--build-dir", ARGS.build_dir or os.path.join(ROOT, "build")])
        return
    if ARGS.only == "idle-scale":
        if not ARGS.no_build:
            build(BUILD_TARGETS["idle-scale"])
        r = run_idle_scale()
        os.makedirs(BUILD, exist_ok=True)
        with open(os.path.join(BUILD, "idle_scale.json"), "w") as f:
            json.dump(r, f, indent=1)
        splice_idle_scale(idle_scale_section(r))
        log("rewrote the idle-scale section of docs/benchmarks.md")
        return
    if ARGS.only == "topics":
        if not ARGS.no_build:
            build(BUILD_TARGETS["topics"])
        run_topics()
        return
    if ARGS.report_only:
        with open(saved) as f:
            r = json.load(f)
        ARGS.rounds, ARGS.duration, NOISY_STARTS = r["rounds"], r["duration"], r["noisy_starts"]
        plain = {tuple(k.split("\t")): v for k, v in r["plain"].items()}
        write_report(plain, r["names"], r["micro"], r["streams"], r["memory"], r["compile"],
                     datetime.datetime.fromisoformat(r["started"]), r["elapsed"], r.get("machine") or machine(),
                     r.get("idle_scale"))
        chart(plain, r["names"])
        log("rewrote docs/benchmarks.md and docs/benchmarks.png from", saved)
        return
    started = datetime.datetime.utcnow()
    t0 = time.monotonic()
    if not ARGS.no_build:
        build()
    raise_nofile()
    plain, names = plaintext()
    micro_out = micro()
    stream_rows = streams()
    mem = memory()
    scale = run_idle_scale()
    comp = compile_times()
    elapsed = time.monotonic() - t0
    env = machine()
    with open(saved, "w") as f:
        json.dump({"rounds": ARGS.rounds, "duration": ARGS.duration, "noisy_starts": NOISY_STARTS,
                   "plain": {"\t".join(k): v for k, v in plain.items()}, "names": names, "micro": micro_out,
                   "streams": stream_rows, "memory": mem, "compile": comp, "started": started.isoformat(),
                   "elapsed": elapsed, "machine": env, "idle_scale": scale}, f, indent=1)
    write_report(plain, names, micro_out, stream_rows, mem, comp, started, elapsed, env, scale)
    chart(plain, names)
    log("wrote docs/benchmarks.md and docs/benchmarks.png")


if __name__ == "__main__":
    main()
