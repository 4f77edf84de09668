"""Path parameters captured by a WebSocket session or an SSE stream are still valid when the session runs
(the request's buffer is gone by then). Run under ASan (-DWEIR_SANITIZE=address,undefined) this catches a
parameter that points into the connection's buffer."""

import asyncio
import subprocess

import websockets

from weir_harness import Results, Server, expect

R = Results()

# Long names, so that a view into a freed or reused buffer cannot match by luck.
ROOM = "lobby-" + "x" * 200
USER = "ada-" + "y" * 100

with Server("router_upgrade_server") as srv:
    ws_url = srv.url.replace("http://", "ws://")

    def websocket_reads_room():
        async def go():
            async with websockets.connect(f"{ws_url}/rooms/{ROOM}/ws") as ws:
                # More traffic on the connection after the upgrade, before the session reads `room`.
                await ws.send("hello " + "z" * 300)
                return await asyncio.wait_for(ws.recv(), 10)
        got = asyncio.run(go())
        expect(got == f"room {ROOM} got hello " + "z" * 300, got[:80])
    R.check("a generic route's path parameter captured by a WebSocket session is still its value there",
            websocket_reads_room)

    def websocket_room_is_decoded():
        async def go():
            async with websockets.connect(f"{ws_url}/rooms/blue%20room/ws") as ws:
                await ws.send("hi")
                return await asyncio.wait_for(ws.recv(), 10)
        got = asyncio.run(go())
        expect(got == "room blue room got hi", got)
    R.check("a generic route's path parameter arrives percent-decoded", websocket_room_is_decoded)

    def sse_reads_room_and_user():
        out = subprocess.run(["curl", "-sS", "-N", "--max-time", "10",
                              f"{srv.url}/rooms/{ROOM}/users/{USER}/events"],
                             capture_output=True, timeout=30).stdout.decode(errors="replace")
        datas = [line[len("data: "):] for line in out.split("\n") if line.startswith("data: ")]
        expect(datas == [f"room {ROOM} user {USER}"], out[:200])
    R.check("generic route parameters captured by an SSE stream are still their values there",
            sse_reads_room_and_user)

    def server_still_healthy():
        code = srv.stop()
        err = srv.proc.stderr.read()
        expect("AddressSanitizer" not in err and "runtime error" not in err, err[-2000:])
        expect(code == 0, f"exit code {code}: {err[-2000:]}")
    R.check("the server reports no memory error and exits cleanly", server_still_healthy)

R.finish()
