// The npm `ws` client as the WebSocket tests use it: every message queued from the start, read in order.
import WebSocket from "ws";

// Opens `url`; resolves to { ws, upgrade } (the 101 response) once open, or rejects (with `status` when the
// server answered the handshake with another status).
export function openWebSocket(url, options = {}, protocols = undefined) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    // A server may speak first, before `open` is handled.
    ws.inbox = [];
    ws.waiting = [];
    ws.on("message", (data, isBinary) => {
      const m = { data, isBinary };
      if (ws.waiting.length) ws.waiting.shift()(m);
      else ws.inbox.push(m);
    });
    let upgrade;
    ws.on("upgrade", (res) => (upgrade = res));
    ws.on("open", () => resolve({ ws, upgrade }));
    ws.on("unexpected-response", (req, res) =>
      reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
    ws.on("error", reject);
  });
}

// The next message ({ data, isBinary }), once it has come.
export function nextMessage(ws) {
  if (ws.inbox.length) return Promise.resolve(ws.inbox.shift());
  return new Promise((resolve) => ws.waiting.push(resolve));
}

// Resolves to { code, reason } when the connection has closed.
export function closed(ws) {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}
