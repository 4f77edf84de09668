// Topics read by real clients: npm `eventsource` (live events, a resume that replays, a resume that starts
// with a `reset` event) and npm `ws` (a session that joins and leaves topics at run time and publishes to the
// SSE subscribers of the same topic).
import { EventSource } from "eventsource";
import WebSocket from "ws";
import { Results, expect, sleep, startServer } from "./harness.mjs";

const R = new Results();
const srv = await startServer("topics_test_server", ["--threads", "2"]);
const wsUrl = srv.url.replace("http://", "ws://");

const publish = async (topic, text, n = 1) => {
  const res = await fetch(`${srv.url}/publish?topic=${topic}&n=${n}`, { method: "POST", body: text });
  expect(res.status === 202, res.status);
  return Number(await res.text());
};

const withLastEventId = (id) => (url, init) =>
  fetch(url, { ...init, headers: { ...init.headers, "Last-Event-ID": String(id) } });

// Collects `count` events (message and reset) from an EventSource, in arrival order.
const collect = (es, count, onOpen) =>
  new Promise((resolve, reject) => {
    const seen = [];
    const take = (e) => {
      seen.push({ type: e.type, id: e.lastEventId, data: e.data });
      if (seen.length === count) {
        es.close();
        resolve(seen);
      }
    };
    es.addEventListener("message", take);
    es.addEventListener("reset", take);
    if (onOpen) es.onopen = onOpen;
    setTimeout(() => {
      es.close();
      reject(new Error(`timeout: ${JSON.stringify(seen)}`));
    }, 15000);
  });

await R.check("npm eventsource resumes within the kept history: the missed events, then live ones, no reset", async () => {
  const first = await publish("a", "one");
  await publish("a", "two");
  const es = new EventSource(`${srv.url}/events?topics=a`, { fetch: withLastEventId(first) });
  const got = await collect(es, 2, () => publish("a", "three"));
  expect(got.map((e) => `${e.type}:${e.data}`).join("|") === "message:two|message:three", got);
});

await R.check("npm eventsource resuming from an id older than the history gets a reset event, then what is kept", async () => {
  const old = await publish("a", "old");
  const last = await publish("a", "filler", 60); // the topic keeps 50
  const es = new EventSource(`${srv.url}/events?topics=a`, { fetch: withLastEventId(old) });
  const got = await collect(es, 51);
  expect(got[0].type === "reset", got[0]);
  // No id field: the client's own last id (none here; the header came from the fetch override) stays.
  expect(got[0].id === "", `the reset carries no id: ${got[0].id}`);
  expect(got.slice(1).map((e) => Number(e.id)).join(",") ===
    Array.from({ length: 50 }, (_, i) => last - 49 + i).join(","), "then the 50 kept events in order");
});

await R.check("npm ws joins and leaves topics at run time and reaches SSE subscribers of the same topic", async () => {
  const es = new EventSource(`${srv.url}/events?topics=room2`);
  const sseGot = collect(es, 1);
  await new Promise((r) => (es.onopen = r));
  const ws = new WebSocket(`${wsUrl}/ws?topics=room1`);
  const inbox = [];
  const waiters = [];
  ws.on("message", (m) => {
    inbox.push(m.toString());
    while (waiters.length) waiters.shift()();
  });
  const next = async () => {
    const until = Date.now() + 10000;
    while (!inbox.length && Date.now() < until) await new Promise((r) => waiters.push(r) && setTimeout(r, 100));
    expect(inbox.length, "a message arrives");
    return inbox.shift();
  };
  expect((await next()) === "ready", "joined room1");
  await publish("room1", "for room1");
  await publish("room2", "for room2, not yet joined");
  expect((await next()) === "for room1", "room1's event");
  ws.send("join room2");
  expect((await next()) === "joined room2", "joined room2");
  ws.send("leave room1");
  expect((await next()) === "left room1", "left room1");
  await publish("room1", "after leaving room1");
  ws.send("publish room2 hello from ws");
  expect((await next()) === "hello from ws", "its own publish to room2 comes back");
  const sse = await sseGot;
  expect(sse[0].type === "message", sse);
  expect(sse[0].data === "for room2, not yet joined", sse);
  await sleep(100);
  expect(inbox.length === 0, `nothing from room1 after leaving: ${inbox}`);
  ws.close();
});

const code = await srv.stop();
await R.check("the server exits 0 on SIGTERM", async () => expect(code === 0, `exit ${code}`));
R.finish();
