// Server-Sent Events read by real clients: the npm `eventsource` package, `eventsource-parser` over fetch
// streaming (a POST stream, as LLM APIs use), and headless Chromium's EventSource.
import { EventSource } from "eventsource";
import { createParser } from "eventsource-parser";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { Results, chromiumArgs, chromiumPath, expect, startServer } from "./harness.mjs";

const R = new Results();
const srv = await startServer("sse_test_server");

await R.check("npm eventsource receives typed events with ids and multi-line data", async () => {
  const got = await new Promise((resolve, reject) => {
    const es = new EventSource(`${srv.url}/events?n=4`);
    const events = [];
    es.addEventListener("tick", (e) => {
      events.push({ id: e.lastEventId, data: e.data });
      if (events.length === 4) {
        es.close();
        resolve(events);
      }
    });
    setTimeout(() => reject(new Error(`timeout, got ${JSON.stringify(events)}`)), 15000);
  });
  expect(got.map((e) => e.id).join(",") === "1,2,3,4", got);
  expect(got[2].data === "event 3\nsecond line\nthird", got[2]);
});

await R.check("npm eventsource resumes from the hub with Last-Event-ID after a reconnect", async () => {
  const publish = async (text) => {
    const res = await fetch(`${srv.url}/publish`, { method: "POST", body: text });
    expect(res.status === 202, res.status);
    return Number(await res.text());
  };
  const first = await publish("before");
  const got = await new Promise((resolve, reject) => {
    const es = new EventSource(`${srv.url}/hub`, {
      fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, "Last-Event-ID": String(first - 1) } }),
    });
    const seen = [];
    es.onopen = () => publish("after");
    es.onmessage = (e) => {
      seen.push(e.data);
      if (seen.length === 2) {
        es.close();
        resolve(seen);
      }
    };
    setTimeout(() => reject(new Error(`timeout: ${seen}`)), 15000);
  });
  expect(got.join("|") === "before|after", got);
});

await R.check("npm eventsource resumes with a replay larger than the stream queue in one connection", async () => {
  // The hub keeps 2000 events; a stream's queue holds 1024. The replay must be paced by the client, not cut
  // off by the slow-consumer policy (which would make EventSource reconnect with the same id for ever).
  const res = await fetch(`${srv.url}/publish?n=1500`, { method: "POST", body: "bulk" });
  expect(res.status === 202, res.status);
  const last = Number(await res.text());
  const first = last - 1499;
  const got = await new Promise((resolve, reject) => {
    let opens = 0;
    const ids = [];
    const es = new EventSource(`${srv.url}/hub`, {
      fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, "Last-Event-ID": String(first) } }),
    });
    es.onopen = () => {
      opens += 1;
    };
    es.onmessage = (e) => {
      ids.push(Number(e.lastEventId));
      if (ids.length === 1499) {
        es.close();
        resolve({ ids, opens });
      }
    };
    setTimeout(() => {
      es.close();
      reject(new Error(`timeout: ${ids.length} events, ${opens} connections`));
    }, 15000);
  });
  expect(got.opens === 1, `one connection, not ${got.opens}`);
  expect(got.ids.every((id, i) => id === first + 1 + i), "every id after Last-Event-ID, in order");
});

await R.check("fetch streaming of a POST reads OpenAI-style chunks with eventsource-parser", async () => {
  const res = await fetch(`${srv.url}/stream`, { method: "POST", body: "hello" });
  expect(res.headers.get("content-type").startsWith("text/event-stream"), res.headers.get("content-type"));
  const data = [];
  const parser = createParser({ onEvent: (e) => data.push(e.data) });
  const decoder = new TextDecoder();
  for await (const chunk of res.body) parser.feed(decoder.decode(chunk, { stream: true }));
  expect(data.join("") === "hello[DONE]", data);
});

await R.check("headless Chromium's EventSource receives the stream", async () => {
  if (!existsSync(chromiumPath)) throw new Error("chromium is not installed (scripts/install-deps.sh installs it)");
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  try {
    const page = await browser.newPage();
    await page.goto(`${srv.url}/page`);
    await page.waitForFunction(() => window.received && window.received.length === 5, null, { timeout: 20000 });
    const received = await page.evaluate(() => window.received);
    expect(received[4].id === "5" && received[4].data === "event 5\nsecond line\nthird", received);
  } finally {
    await browser.close();
  }
});

const code = await srv.stop();
await R.check("the server exits 0 on SIGTERM", async () => expect(code === 0, `exit ${code}`));
R.finish();
