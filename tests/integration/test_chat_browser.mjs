// The chat in real clients: headless Chromium loading a page from a second origin that receives, over both
// EventSource and WebSocket, a message it POSTed; a page from an origin that is not allowed receives nothing.
// Also the npm `eventsource` and `ws` clients.
import { EventSource } from "eventsource";
import { existsSync } from "node:fs";
import http from "node:http";
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { Results, chromiumArgs, chromiumPath, expect, sleep, startServer } from "./harness.mjs";

const R = new Results();

function pageFor(chatUrl) {
  return `<!doctype html><meta charset="utf-8"><title>other origin</title><script>
    const chat = ${JSON.stringify(chatUrl)};
    window.events = []; window.sockets = []; window.errors = []; window.ready = { sse: false, ws: false };
    const es = new EventSource(chat + "/events", { withCredentials: true });
    es.onopen = () => (window.ready.sse = true);
    es.onmessage = (e) => window.events.push(e.data);
    es.onerror = () => window.errors.push("sse");
    const ws = new WebSocket(chat.replace("http:", "ws:") + "/ws");
    ws.onopen = () => (window.ready.ws = true);
    ws.onmessage = (e) => window.sockets.push(e.data);
    ws.onerror = () => window.errors.push("ws");
    window.post = async (text) => {
      try {
        const r = await fetch(chat + "/messages", { method: "POST", body: text, credentials: "include",
                                                    headers: { "Content-Type": "text/plain; charset=utf-8" } });
        return r.status;
      } catch (e) { return "blocked"; }
    };
  </script>`;
}

async function serveOrigin(getChatUrl) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(pageFor(getChatUrl()));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

let chatUrl;
const good = await serveOrigin(() => chatUrl);
const evil = await serveOrigin(() => chatUrl);
const chat = await startServer("chat", ["--allow-origin", good.origin, "--heartbeat-ms", "1000"]);
chatUrl = chat.url;

await R.check("npm eventsource and ws receive a POSTed message", async () => {
  const es = new EventSource(`${chat.url}/events`);
  const ws = new WebSocket(`${chat.url.replace("http:", "ws:")}/ws`);
  await Promise.all([new Promise((r) => (es.onopen = r)), new Promise((r) => ws.on("open", r))]);
  const viaSse = new Promise((r) => es.addEventListener("message", (e) => r({ id: e.lastEventId, data: e.data })));
  const viaWs = new Promise((r) => ws.once("message", (d) => r(d.toString())));
  const res = await fetch(`${chat.url}/messages`, { method: "POST", body: "node says hi\nin two lines" });
  expect(res.status === 202, res.status);
  const e = await viaSse;
  expect(e.data === "node says hi\nin two lines" && Number(e.id) > 0, e);
  expect((await viaWs) === "node says hi\nin two lines", "ws");
  es.close();
  ws.close();
});

await R.check("Chromium on an allowed second origin sends a message and receives it over EventSource and WebSocket", async () => {
  if (!existsSync(chromiumPath)) throw new Error("chromium is not installed (scripts/install-deps.sh installs it)");
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  try {
    const allowed = await browser.newPage();
    const denied = await browser.newPage();
    await allowed.goto(good.origin);
    await denied.goto(evil.origin);
    await allowed.waitForFunction(() => window.ready.sse && window.ready.ws, null, { timeout: 20000 });
    expect((await allowed.evaluate(() => window.post("hello from another origin ✓"))) === 202, "POST accepted");
    await allowed.waitForFunction(
      () => window.events.includes("hello from another origin ✓") && window.sockets.includes("hello from another origin ✓"),
      null, { timeout: 20000 });

    // The page from an origin that is not listed: its POST is blocked and nothing reaches it.
    expect((await denied.evaluate(() => window.post("from a foreign origin"))) === "blocked", "CORS blocks the POST");
    await denied.waitForFunction(() => window.errors.includes("ws"), null, { timeout: 20000 });
    const res = await fetch(`${chat.url}/messages`, { method: "POST", body: "for allowed eyes only" });
    expect(res.status === 202, res.status);
    await allowed.waitForFunction(() => window.events.includes("for allowed eyes only"), null, { timeout: 20000 });
    await sleep(300);
    const deniedState = await denied.evaluate(() => ({ events: window.events, sockets: window.sockets, open: window.ready }));
    expect(deniedState.events.length === 0 && deniedState.sockets.length === 0, deniedState);
    expect(!deniedState.open.ws, "the WebSocket from a foreign origin never opened");
  } finally {
    await browser.close();
  }
});

const code = await chat.stop();
good.server.close();
evil.server.close();
await R.check("the chat exits 0 on SIGTERM", async () => expect(code === 0, `exit ${code}`));
R.finish();
