// The chat over TLS in Node and browser clients: npm `ws` over wss, npm `eventsource` over https, and headless
// Chromium loading the chat page over https and exchanging a message over EventSource and WebSocket.
// Certificates are made at test time with the `openssl` command. Node's fetch (used by `eventsource`) trusts
// extra CAs only from NODE_EXTRA_CA_CERTS at start-up, so the test runs itself again with it set.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

if (!process.env.WEIR_TLS_TEST_DIR) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "weir-tls-node-"));
  const openssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=weir test CA");
  openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  writeFileSync(path.join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "7", "-out",
          "server.pem", "-days", "2", "-extfile", "server.ext");
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    stdio: "inherit",
    env: { ...process.env, WEIR_TLS_TEST_DIR: dir, NODE_EXTRA_CA_CERTS: path.join(dir, "ca.pem") },
  });
  rmSync(dir, { recursive: true, force: true });
  process.exit(child.status ?? 1);
}

const { EventSource } = await import("eventsource");
const { chromium } = await import("playwright-core");
const { default: WebSocket } = await import("ws");
const { Results, chromiumArgs, chromiumPath, expect, sleep, startServer } = await import("./harness.mjs");

const dir = process.env.WEIR_TLS_TEST_DIR;
const ca = readFileSync(path.join(dir, "ca.pem"));
const R = new Results();
const chat = await startServer("chat", ["--tls-cert", path.join(dir, "server.pem"), "--tls-key",
                                        path.join(dir, "server.key"), "--heartbeat-ms", "1000"]);
// Names the certificate holds, so clients verify it as they would in production.
const base = chat.url.replace("127.0.0.1", "localhost");

function post(text) {
  return fetch(`${base}/messages`, { method: "POST", body: text }).then((r) => r.status);
}

await R.check("the chat announces https", async () => {
  expect(chat.url.startsWith("https://"), chat.url);
});

await R.check("npm eventsource over https and npm ws over wss both receive a POSTed message", async () => {
  const es = new EventSource(`${base}/events`);
  const ws = new WebSocket(`${base.replace("https:", "wss:")}/ws`, { ca });
  const gotSse = new Promise((resolve, reject) => {
    es.onmessage = (e) => e.data === "hello over tls" && resolve();
    setTimeout(() => reject(new Error("no event over https")), 10000);
  });
  const gotWs = new Promise((resolve, reject) => {
    ws.on("message", (m) => m.toString() === "hello over tls" && resolve());
    setTimeout(() => reject(new Error("no message over wss")), 10000);
  });
  await Promise.all([
    new Promise((resolve, reject) => { es.onopen = resolve; es.onerror = reject; }),
    new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject); }),
  ]);
  expect((await post("hello over tls")) === 202, "POST accepted");
  await Promise.all([gotSse, gotWs]);
  es.close();
  ws.close();
});

await R.check("npm ws refuses the server without the test CA (the certificate really is checked)", async () => {
  const ws = new WebSocket(`${base.replace("https:", "wss:")}/ws`, { ca: [] });
  const err = await new Promise((resolve) => {
    ws.on("open", () => resolve(null));
    ws.on("error", resolve);
  });
  expect(err && /self[- ]signed|unable to (get|verify)/i.test(String(err.message)), `error: ${err}`);
});

await R.check("Chromium loads the chat page over https and exchanges a message over EventSource and WSS",
  async () => {
    const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    try {
      // The test CA is not in Chromium's store; the certificate is still the server's, over real TLS.
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      await page.goto(`${base}/`);
      const result = await page.evaluate(async () => {
        const got = { sse: null, ws: null, secure: window.isSecureContext, post: null };
        const es = new EventSource("/events");
        const ws = new WebSocket(location.origin.replace("https:", "wss:") + "/ws");
        await Promise.all([new Promise((r) => (es.onopen = r)), new Promise((r) => (ws.onopen = r))]);
        const done = Promise.all([
          new Promise((r) => (es.onmessage = (e) => e.data === "from chromium" && r((got.sse = e.data)))),
          new Promise((r) => (ws.onmessage = (e) => e.data === "from chromium" && r((got.ws = e.data)))),
        ]);
        ws.send("from chromium");
        await Promise.race([done, new Promise((r) => setTimeout(r, 10000))]);
        got.post = (await fetch("/messages", { method: "POST", body: "posted from chromium" })).status;
        es.close();
        ws.close();
        return got;
      });
      expect(result.secure, "a secure context");
      expect(result.sse === "from chromium", `EventSource got ${result.sse}`);
      expect(result.ws === "from chromium", `WebSocket got ${result.ws}`);
      expect(result.post === 202, `POST ${result.post}`);
    } finally {
      await browser.close();
    }
  });

await R.check("SIGTERM ends the TLS server cleanly", async () => {
  const ws = new WebSocket(`${base.replace("https:", "wss:")}/ws`, { ca });
  await new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject); });
  const closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
  const code = await chat.stop();
  expect(code === 0, `exit status ${code}`);
  expect((await closed) === 1001, "WSS closed with 1001");
  await sleep(10);
});

R.finish();
