// permessage-deflate with the npm `ws` package: each perMessageDeflate parameter variant against servers with
// and without context takeover and with narrow windows, messages of 16 B to 1 MiB whole and fragmented; and
// a broadcast room where compressed and uncompressed clients all get every message.
import { randomBytes } from "node:crypto";
import { Results, expect, startServer } from "./harness.mjs";
import { closed, nextMessage, openWebSocket } from "./ws_client.mjs";

const R = new Results();
const srv = await startServer("websocket_deflate_server");
const wsUrl = srv.url.replace("http://", "ws://");
const SIZES = [16, 125, 126, 1000, 4096, 65535, 65536, 131072, 1024 * 1024];

function open(path, perMessageDeflate) {
  return openWebSocket(`${wsUrl}${path}`, { perMessageDeflate, maxPayload: 0 });
}

function text(size, seed) {
  const words = ["weir", "deflate", "héllo", "wörld", "💬", "frame", "0123456789"];
  const parts = [];
  let x = seed;
  for (let i = 0; i < size / 3 + 4; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    parts.push(words[x % words.length]);
  }
  const s = parts.join(" ");
  // Cut at a character boundary near `size` bytes.
  return Buffer.from(s).subarray(0, size).toString("utf8").replace(/\uFFFD+$/, "");
}

function binary(size) {
  const half = Math.floor(size / 2);
  return Buffer.concat([Buffer.alloc(half, 0x61), randomBytes(size - half)]);
}

const variants = {
  "default offer": {},
  serverNoContextTakeover: { serverNoContextTakeover: true },
  clientNoContextTakeover: { clientNoContextTakeover: true },
  "serverMaxWindowBits: 10": { serverMaxWindowBits: 10 },
  "clientMaxWindowBits: 9": { clientMaxWindowBits: 9 },
  "all four": { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 10 },
};

for (const path of ["/deflate", "/deflate-no-context", "/deflate-narrow"]) {
  for (const [name, params] of Object.entries(variants)) {
    await R.check(`npm ws ${name} on ${path}: 16 B to 1 MiB, text and binary, whole and fragmented`, async () => {
      const { ws, upgrade } = await open(path, { ...params, threshold: 0 });
      const answer = upgrade.headers["sec-websocket-extensions"];
      expect(answer && answer.startsWith("permessage-deflate"), `answer ${answer}`);
      expect(String(ws.extensions).includes("permessage-deflate"), `ws agreed: ${ws.extensions}`);
      for (const [i, size] of SIZES.entries()) {
        for (const isBinary of [false, true]) {
          const data = isBinary ? binary(size) : text(size, i + 1);
          ws.send(data, { binary: isBinary });
          let m = await nextMessage(ws);
          expect(m.isBinary === isBinary && (isBinary ? m.data.equals(data) : m.data.toString() === data),
                 `${size} bytes came back changed`);
          // Fragmented: three frames, the first compressed (RSV1), the rest continuations.
          const bytes = Buffer.from(data);
          const third = Math.floor(bytes.length / 3);
          ws.send(bytes.subarray(0, third), { binary: isBinary, fin: false });
          ws.send(bytes.subarray(third, 2 * third), { binary: isBinary, fin: false });
          ws.send(bytes.subarray(2 * third), { binary: isBinary, fin: true });
          m = await nextMessage(ws);
          expect(Buffer.from(m.data).equals(bytes), `fragmented ${size} bytes came back changed`);
        }
      }
      const done = closed(ws);
      ws.close(1000);
      expect((await done).code === 1000, "clean close");
    });
  }
}

await R.check("npm ws without perMessageDeflate: nothing agreed, echo works", async () => {
  const { ws, upgrade } = await open("/deflate", false);
  expect(!upgrade.headers["sec-websocket-extensions"], "no answer to no offer");
  ws.send("x".repeat(5000));
  expect((await nextMessage(ws)).data.toString() === "x".repeat(5000), "echo");
  ws.close();
});

await R.check("broadcast room: compressed and uncompressed members all get every message", async () => {
  const members = [];
  for (let i = 0; i < 6; i++) members.push((await open(i % 3 === 2 ? "/room-plain" : "/room", i % 2 === 0 ? {} : false)).ws);
  const joined = await Promise.all(members.map((ws) => nextMessage(ws)));
  const agreed = joined.map((m) => m.data.toString());
  expect(agreed.filter((a) => a === "joined deflate=1").length === 2, agreed.join(","));
  const res = await fetch(`${srv.url}/broadcast?count=5`, { method: "POST" });
  expect(Number(await res.text()) >= 6 * 5, "delivered to everyone");
  const first = [];
  for (const ws of members) {
    for (let i = 0; i < 5; i++) {
      const m = await nextMessage(ws);
      const doc = JSON.parse(m.data.toString());
      expect(doc.seq === i && doc.items.length > 10, `message ${i}`);
      if (i === 0) first.push(m.data.toString());
    }
  }
  expect(first.every((f) => f === first[0]), "same bytes after inflating");
  for (const ws of members) ws.close();
});

const code = await srv.stop();
await R.check("the server exits 0 on SIGTERM", () => expect(code === 0, `exit ${code}`));
R.finish();
