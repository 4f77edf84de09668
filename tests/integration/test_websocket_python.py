"""WebSocket sessions with Python's `websockets` client (Debian python3-websockets), and a graceful shutdown
that closes open sessions with 1001."""

import asyncio
import signal
import sys

from weir_harness import Results, Server, expect

try:
    import websockets
except ImportError:  # pragma: no cover - the CI installs python3-websockets
    print("python3-websockets is not installed (scripts/install-deps.sh installs it)")
    print("0 passed, 1 failed")
    sys.exit(1)

R = Results()


async def echo_session(url):
    async with websockets.connect(url + "/echo", max_size=None) as ws:
        await ws.send("hello from python")
        expect(await ws.recv() == "hello from python", "text echo")
        await ws.send(b"\x00\x01\x02")
        expect(await ws.recv() == b"\x00\x01\x02", "binary echo")
        pong = await ws.ping(b"p")
        await asyncio.wait_for(pong, 5)
    expect(ws.close_code == 1000, ws.close_code)


async def shutdown_closes(srv, url):
    ws = await websockets.connect(url + "/echo")
    await ws.send("before shutdown")
    expect(await ws.recv() == "before shutdown", "echo")
    srv.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed:
        pass
    expect(ws.close_code == 1001, f"close code {ws.close_code}")


with Server("websocket_test_server") as srv:
    url = srv.url.replace("http://", "ws://")
    R.check("python websockets: text, binary and ping round trips, close 1000",
            lambda: asyncio.run(echo_session(url)))
    R.check("SIGTERM closes open sessions with 1001 (going away) and the server exits 0",
            lambda: (asyncio.run(shutdown_closes(srv, url)), expect(srv.proc.wait(timeout=15) == 0, "exit status")))

R.finish()
