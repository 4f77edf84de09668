// The chat with permessage-deflate: headless Chromium (which offers the extension on every WebSocket) agrees
// on it with the chat and shows a long message that arrived compressed; npm `ws` clients with and without
// compression in the same room get every message; --no-deflate agrees on nothing.
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { Results, chromiumArgs, chromiumPath, expect, startServer } from "./harness.mjs";

const R = new Results();

function open(url, perMessageDeflate) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate });
    ws.inbox = [];
    ws.waiting = [];
    ws.on("message", (data) => (ws.waiting.length ? ws.waiting.shift()(data.toString()) : ws.inbox.push(data.toString())));
    let upgrade;
    ws.on("upgrade", (res) => (upgrade = res));
    ws.on("open", () => resolve({ ws, upgrade }));
    ws.on("error", reject);
  });
}
const next = (ws) => (ws.inbox.length ? Promise.resolve(ws.inbox.shift()) : new Promise((r) => ws.waiting.push(r)));

// Long enough to be compressed (the chat's threshold is 256 bytes), and varied.
const longMessage = Array.from({ length: 60 }, (_, i) => `line ${i}: the quick brown fox jumps över the lazy dog`).join(" / ");

async function inChromium(chatUrl, check) {
  if (!existsSync(chromiumPath)) throw new Error("chromium is not installed (scripts/install-deps.sh installs it)");
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  try {
    const page = await browser.newPage();
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");
    const handshake = new Promise((resolve) =>
      cdp.on("Network.webSocketHandshakeResponseReceived", (e) => resolve(e.response)));
    const requestHeaders = new Promise((resolve) =>
      cdp.on("Network.webSocketWillSendHandshakeRequest", (e) => resolve(e.request.headers)));
    await page.goto(chatUrl);
    await page.waitForFunction(() => document.getElementById("ws-state").textContent === "open", null, { timeout: 20000 });
    await check(page, await requestHeaders, await handshake);
  } finally {
    await browser.close();
  }
}

function header(headers, name) {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}

const chat = await startServer("chat", ["--heartbeat-ms", "1000"]);
const wsUrl = `${chat.url.replace("http:", "ws:")}/ws`;

await R.check("Chromium offers permessage-deflate, the chat agrees, and a long message (over the threshold: sent compressed) shows", async () => {
  await inChromium(chat.url, async (page, request, response) => {
    expect(/permessage-deflate/.test(header(request, "sec-websocket-extensions") || ""), "Chromium offered");
    const agreed = header(response.headers, "sec-websocket-extensions") || "";
    expect(agreed.startsWith("permessage-deflate") && agreed.includes("server_no_context_takeover"), `answer: ${agreed}`);
    const res = await fetch(`${chat.url}/messages`, { method: "POST", body: longMessage });
    expect(res.status === 202, res.status);
    await page.waitForFunction(
      (text) => [...document.querySelectorAll("#log li")].some((li) => li.dataset.text === text && li.dataset.websocket),
      longMessage, { timeout: 20000 });
  });
});

await R.check("compressed and uncompressed ws clients in one room get every message, in order", async () => {
  const a = await open(wsUrl, {});
  const b = await open(wsUrl, false);
  const c = await open(wsUrl, { serverMaxWindowBits: 10, clientNoContextTakeover: true });
  expect((a.upgrade.headers["sec-websocket-extensions"] || "").startsWith("permessage-deflate"), "a agreed");
  expect(!b.upgrade.headers["sec-websocket-extensions"], "b did not offer");
  expect((c.upgrade.headers["sec-websocket-extensions"] || "").includes("server_max_window_bits=10"), "c narrowed");
  const sent = ["short one", longMessage, `${longMessage} again`, "x".repeat(5000)];
  for (const text of sent) {
    const res = await fetch(`${chat.url}/messages`, { method: "POST", body: text });
    expect(res.status === 202, res.status);
  }
  for (const { ws } of [a, b, c]) {
    for (const text of sent) expect((await next(ws)) === text, "message");
    ws.close();
  }
});

await R.check("chat --no-deflate agrees on nothing, with Chromium too", async () => {
  const plain = await startServer("chat", ["--no-deflate"]);
  try {
    const { ws, upgrade } = await open(`${plain.url.replace("http:", "ws:")}/ws`, {});
    expect(!upgrade.headers["sec-websocket-extensions"], "no extension");
    ws.close();
    await inChromium(plain.url, async (page, request, response) => {
      expect(!header(response.headers, "sec-websocket-extensions"), "no extension for Chromium");
    });
  } finally {
    expect((await plain.stop()) === 0, "exit status");
  }
});

const code = await chat.stop();
await R.check("the chat exits 0 on SIGTERM", () => expect(code === 0, `exit ${code}`));
R.finish();
