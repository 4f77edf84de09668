"""Many threads at once: the chat on four event loops, 300 SSE subscribers and 60 WebSocket clients spread over
them, messages POSTed from eight threads concurrently, and every subscriber receives every message, in the
order the hub gave them ids. Under ThreadSanitizer this is the data-race check for the hub, the senders and the
server's loops."""

import asyncio
import concurrent.futures
import re
import socket
import time

import websockets

from weir_harness import Results, Server, expect, read_response

R = Results()
MESSAGES_PER_POSTER = 10
POSTERS = 8
TOTAL = MESSAGES_PER_POSTER * POSTERS


def post(srv, text):
    with srv.connect() as s:
        body = text.encode()
        s.sendall(b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        st, hs, b, _ = read_response(s)
        return st


async def run(srv):
    url = srv.url.replace("http://", "ws://") + "/ws"
    sse = []
    for _ in range(300):
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        sse.append((reader, writer))
    sockets = [await websockets.connect(url) for _ in range(60)]
    await asyncio.sleep(0.5)

    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(POSTERS) as pool:
        jobs = [loop.run_in_executor(pool, lambda p=p: [post(srv, f"poster {p} message {m}") for m in range(MESSAGES_PER_POSTER)])
                for p in range(POSTERS)]
        statuses = [s for job in await asyncio.gather(*jobs) for s in job]
    expect(all(s == 202 for s in statuses), statuses)

    async def read_sse(reader):
        buf = b""
        while buf.count(b"event: message") < TOTAL:
            chunk = await asyncio.wait_for(reader.read(65536), 30)
            if not chunk:
                break
            buf += chunk
        ids = [int(x) for x in re.findall(rb"id: (\d+)", buf)]
        return ids, len(re.findall(rb"data: poster \d+ message \d+", buf))

    async def read_ws(ws):
        got = []
        while len(got) < TOTAL:
            got.append(await asyncio.wait_for(ws.recv(), 30))
        return got

    sse_results = await asyncio.gather(*(read_sse(r) for r, _ in sse))
    ws_results = await asyncio.gather(*(read_ws(w) for w in sockets))
    for ids, count in sse_results:
        expect(count == TOTAL, f"an SSE subscriber got {count} of {TOTAL}")
        expect(ids == sorted(ids) and len(set(ids)) == TOTAL, f"ids in order, no duplicates: {ids}")
    for got in ws_results:
        expect(len(set(got)) == TOTAL, f"a WebSocket got {len(set(got))} distinct of {TOTAL}")
    for _, w in sse:
        w.close()
    for ws in sockets:
        await ws.close()


with Server("chat", "--threads", "4") as srv:
    R.check(f"on 4 threads, 300 SSE and 60 WebSocket subscribers each get all {TOTAL} concurrently posted messages",
            lambda: asyncio.run(run(srv)))
    R.check("the server exits 0 after that", lambda: expect(srv.stop() == 0, "exit status"))

R.finish()
