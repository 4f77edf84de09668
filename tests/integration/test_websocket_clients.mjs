// WebSocket sessions with real clients: the npm `ws` package and headless Chromium.
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { Results, chromiumArgs, chromiumPath, expect, startServer } from "./harness.mjs";
import { closed, nextMessage, openWebSocket } from "./ws_client.mjs";

const R = new Results();
const srv = await startServer("websocket_test_server");
const wsUrl = srv.url.replace("http://", "ws://");

function open(path, options = {}, protocols = undefined) {
  return openWebSocket(`${wsUrl}${path}`, options, protocols);
}

await R.check("npm ws: text and binary echo, and a clean close with 1000", async () => {
  const { ws, upgrade } = await open("/echo");
  expect(upgrade.headers["set-cookie"].length === 2, upgrade.headers["set-cookie"]);
  expect(upgrade.headers["x-request-id"] === "ws-request-1", upgrade.headers);
  ws.send("grüße");
  let m = await nextMessage(ws);
  expect(!m.isBinary && m.data.toString() === "grüße", m);
  ws.send(Buffer.from([0, 1, 2, 254, 255]));
  m = await nextMessage(ws);
  expect(m.isBinary && Buffer.compare(m.data, Buffer.from([0, 1, 2, 254, 255])) === 0, m);
  const big = "x".repeat(3 * 1024 * 1024);
  ws.send(big);
  m = await nextMessage(ws);
  expect(m.data.toString() === big, "3 MiB echo");
  const done = closed(ws);
  ws.close(1000, "bye");
  const c = await done;
  expect(c.code === 1000, c);
});

await R.check("npm ws: ping gets pong", async () => {
  const { ws } = await open("/echo");
  const pong = new Promise((resolve) => ws.once("pong", (data) => resolve(data.toString())));
  ws.ping("are you there");
  expect((await pong) === "are you there", "pong payload");
  ws.close();
});

await R.check("npm ws: the subprotocol chosen is one the client offered", async () => {
  const { ws } = await open("/proto", {}, ["chat.v1", "chat.v0"]);
  expect(ws.protocol === "chat.v1", ws.protocol);
  const m = await nextMessage(ws);
  expect(m.data.toString() === "subprotocol=chat.v1", m.data.toString());
  ws.close();
});

await R.check("npm ws: a refused Origin gets 403 and no session", async () => {
  try {
    await open("/origin", { origin: "http://evil.example" });
    throw new Error("opened");
  } catch (e) {
    expect(e.status === 403, e.message);
  }
  const { ws } = await open("/origin", { origin: "http://good.example" });
  ws.close();
});

await R.check("npm ws: a message over the limit closes with 1009", async () => {
  const { ws } = await open("/small");
  const done = closed(ws);
  ws.send("y".repeat(5000));
  const c = await done;
  expect(c.code === 1009, c);
});

await R.check("npm ws: 200 sessions at once each get their own echoes", async () => {
  const sessions = await Promise.all(Array.from({ length: 200 }, () => open("/echo")));
  const replies = await Promise.all(sessions.map(({ ws }, i) => {
    const p = nextMessage(ws);
    ws.send(`session ${i}`);
    return p;
  }));
  replies.forEach((m, i) => expect(m.data.toString() === `session ${i}`, m.data.toString()));
  await Promise.all(sessions.map(({ ws }) => { const c = closed(ws); ws.close(); return c; }));
});

await R.check("headless Chromium's WebSocket echoes text and binary and closes with 1000", async () => {
  if (!existsSync(chromiumPath)) throw new Error("chromium is not installed (scripts/install-deps.sh installs it)");
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  try {
    const page = await browser.newPage();
    await page.goto(`${srv.url}/page`);
    await page.waitForFunction(() => window.closeCode !== undefined, null, { timeout: 20000 });
    const log = await page.evaluate(() => window.log);
    const code = await page.evaluate(() => window.closeCode);
    expect(log[0] === "héllo wörld" && log[1] === "1,2,3,255", log);
    expect(code === 1000, code);
  } finally {
    await browser.close();
  }
});

const code = await srv.stop();
await R.check("the server exits 0 on SIGTERM", async () => expect(code === 0, `exit ${code}`));
R.finish();
