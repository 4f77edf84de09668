#!/usr/bin/env python3
"""TLS side by side: weir (bench/weir_plaintext with --tls-cert) and nginx serving the same certificate.

    python3 bench/tls.py [--duration SECONDS] [--rounds N] [--idle N] [--build-dir DIR]

Measures, for each server in one run, interleaved over rounds (medians reported):
  - TLS handshakes per second: wrk with `Connection: close`, so every request is a new connection and a full
    handshake (ECDSA P-256 certificate, TLS 1.3);
  - keep-alive HTTPS: wrk with 50 connections; requests per second and server CPU time per request
    (utime+stime of the server process from /proc, the steady figure on a noisy machine);
  - idle memory: RSS growth of the server per idle TLS keep-alive connection (N connections, each after one
    GET), and for weir also per idle event stream and per idle WebSocket over TLS (the chat example).
The server runs on core 0 and wrk on core 1. Prints a Markdown table; docs/tls.md keeps the last one.
"""

import argparse
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time

from procstat import cpu_seconds, free_port, log, raise_nofile, rss_kib, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--idle", type=int, default=2000, help="idle connections for the memory figures")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    p.add_argument("--no-build", action="store_true")
    return p.parse_args()


ARGS = parse_args()


def make_certificate(directory):
    run = lambda *a: subprocess.run(["openssl", *a], cwd=directory, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(directory, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.pem", "-days", "2", "-extfile", "ext")
    return [os.path.join(directory, n) for n in ("server.pem", "server.key", "ca.pem")]


class Running:
    def __init__(self, cmd, port):
        self.cmd, self.port = cmd, port

    def __enter__(self):
        self.proc = subprocess.Popen(["taskset", "-c", "0", *self.cmd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def nginx_cmd(port, workdir, cert, key):
    with open(os.path.join(ROOT, "bench/peers/nginx-tls.conf.in")) as f:
        conf = f.read()
    conf = conf.replace("@DIR@", workdir).replace("@PORT@", str(port)).replace("@CERT@", cert).replace("@KEY@", key)
    path = os.path.join(workdir, "nginx-tls.conf")
    with open(path, "w") as f:
        f.write(conf)
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-c", path, "-p", workdir]


def wrk(port, pid, connections, close):
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{ARGS.duration}s"]
    if close:
        cmd += ["-H", "Connection: close"]
    before = cpu_seconds(pid)
    out = subprocess.run(cmd + [f"https://127.0.0.1:{port}/plaintext"], capture_output=True, text=True).stdout
    cpu = cpu_seconds(pid) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise RuntimeError(f"non-2xx responses:\n{out}")
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "cpu_us": cpu * 1e6 / requests if requests else float("nan")}


def idle_tls(port, pid, count, ca, request, expect="keep-alive"):
    """RSS growth per idle TLS connection after `request` (bytes sent once; the answer's head is read)."""
    want = {"keep-alive": b"HTTP/1.1 200", "sse": b"HTTP/1.1 200", "wss": b"HTTP/1.1 101"}[expect]
    context = ssl.create_default_context(cafile=ca)
    time.sleep(0.5)
    before = rss_kib(pid)
    held = []
    for _ in range(count):
        s = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        if not data.startswith(want):
            raise RuntimeError(f"{expect}: {data[:40]!r}")
        held.append(s)
    time.sleep(1.0)
    after = rss_kib(pid)
    for s in held:
        s.close()
    return (after - before) * 1024 / count


def websocket_request():
    return (b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def main():
    exe = lambda name, sub: os.path.join(ARGS.build_dir, sub, name)
    if not ARGS.no_build:
        subprocess.run(["cmake", "-S", ROOT, "-B", ARGS.build_dir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                        "-DWEIR_BUILD_BENCH=ON"], check=True, capture_output=True)
        subprocess.run(["cmake", "--build", ARGS.build_dir, "--target", "weir_plaintext", "chat"], check=True,
                       capture_output=True)
    raise_nofile()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        cert, key, ca = make_certificate(workdir)
        servers = {
            "weir": lambda p: [exe("weir_plaintext", "bench"), "--port", str(p), "--tls-cert", cert,
                               "--tls-key", key],
            "nginx": lambda p: nginx_cmd(p, workdir, cert, key),
        }
        for r in range(ARGS.rounds):
            for name, cmd in servers.items():
                log(f"round {r + 1}/{ARGS.rounds}: {name}")
                port = free_port()
                with Running(cmd(port), port) as srv:
                    pid = srv.proc.pid
                    results.setdefault((name, "handshakes"), []).append(wrk(port, pid, 16, close=True))
                    results.setdefault((name, "keep-alive"), []).append(wrk(port, pid, 50, close=False))
                    get = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
                    results.setdefault((name, "idle"), []).append(idle_tls(port, pid, ARGS.idle, ca, get))
        # Idle event streams and WebSockets over TLS: the chat example, which has both.
        # A fresh server for each, so memory freed by one kind is not reused by the next.
        idle = {}
        for kind, request in (("sse", b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                              ("wss", websocket_request())):
            port = free_port()
            chat = [exe("chat", "examples"), "--port", str(port), "--tls-cert", cert, "--tls-key", key,
                    "--max-connections", "100000"]
            with Running(chat, port) as srv:
                idle[kind] = idle_tls(port, srv.proc.pid, ARGS.idle, ca, request, expect=kind)
        sse, wss = idle["sse"], idle["wss"]

    med = lambda key, field: statistics.median(x[field] if isinstance(x, dict) else x for x in results[key])
    print("| | weir | nginx | weir / nginx |")
    print("| --- | ---: | ---: | ---: |")
    for what, key, field, fmt in (("TLS handshakes/s (new connection per request)", "handshakes", "rps", "{:,.0f}"),
                                  ("server CPU per handshake + request", "handshakes", "cpu_us", "{:.1f} us"),
                                  ("keep-alive HTTPS req/s (50 connections)", "keep-alive", "rps", "{:,.0f}"),
                                  ("server CPU per keep-alive request", "keep-alive", "cpu_us", "{:.2f} us")):
        w, n = med(("weir", key), field), med(("nginx", key), field)
        print(f"| {what} | {fmt.format(w)} | {fmt.format(n)} | {w / n:.2f}x |")
    w, n = med(("weir", "idle"), None), med(("nginx", "idle"), None)
    print(f"| idle TLS keep-alive connection (RSS, {ARGS.idle:,} connections) | {w:,.0f} B | {n:,.0f} B | "
          f"{w / n:.2f}x |")
    print(f"| idle event stream over TLS (chat example) | {sse:,.0f} B | – | |")
    print(f"| idle WebSocket over TLS (chat example) | {wss:,.0f} B | – | |")


if __name__ == "__main__":
    main()
