#pragma once

// The chat example's page: receives over EventSource (and a WebSocket), sends with fetch POST.

#include <string_view>

namespace examples {

inline constexpr std::string_view chat_page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weir chat</title>
<style>
  :root { font-family: system-ui, sans-serif; color-scheme: light dark; }
  body { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  header { display: flex; align-items: baseline; justify-content: space-between; }
  h1 { font-size: 1.4rem; margin: 0 0 1rem; }
  .status span { font-size: .8rem; padding: .1rem .5rem; border-radius: 1rem; background: #8883; margin-left: .3rem; }
  .status span.on { background: #2a73; }
  #log { list-style: none; padding: 0; min-height: 16rem; max-height: 60vh; overflow-y: auto;
         border: 1px solid #8885; border-radius: .5rem; }
  #log li { padding: .4rem .7rem; border-bottom: 1px solid #8882; white-space: pre-wrap; }
  #log li .via { font-size: .7rem; opacity: .6; margin-left: .5rem; }
  form { display: flex; gap: .5rem; margin-top: 1rem; }
  textarea { flex: 1; font: inherit; padding: .5rem; border-radius: .5rem; min-height: 2.5rem; }
  button { font: inherit; padding: .5rem 1rem; border-radius: .5rem; }
</style>
</head>
<body>
<header>
  <h1>weir chat</h1>
  <div class="status">events<span id="sse-state">connecting</span> websocket<span id="ws-state">connecting</span></div>
</header>
<ul id="log" aria-live="polite"></ul>
<form id="send">
  <textarea id="text" placeholder="Say something (Enter sends, Shift+Enter for a new line)" required></textarea>
  <button type="submit">Send</button>
</form>
<script>
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const withToken = (path) => token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
  const log = document.getElementById("log");

  // A message arrives twice, over the event stream and over the WebSocket: one line shows both.
  function show(text, via) {
    let li = [...log.children].find((item) => item.dataset.text === text && !item.dataset[via]);
    if (!li) {
      li = document.createElement("li");
      li.dataset.text = text;
      li.textContent = text;
      const tag = document.createElement("span");
      tag.className = "via";
      li.appendChild(tag);
      log.appendChild(li);
      log.scrollTop = log.scrollHeight;
    }
    li.dataset[via] = "1";
    const tag = li.querySelector(".via");
    tag.textContent += (tag.textContent ? " + " : "") + via;
  }

  function state(el, text, on) {
    const span = document.getElementById(el);
    span.textContent = text;
    span.className = on ? "on" : "";
  }

  const events = new EventSource(withToken("events"));
  events.onopen = () => state("sse-state", "open", true);
  events.onerror = () => state("sse-state", "reconnecting", false);
  events.addEventListener("message", (e) => show(e.data, "events"));

  let ws;
  function connectSocket() {
    const url = new URL(withToken("ws"), location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(url);
    ws.onopen = () => state("ws-state", "open", true);
    ws.onclose = () => { state("ws-state", "closed", false); setTimeout(connectSocket, 2000); };
    ws.onmessage = (e) => show(e.data, "websocket");
  }
  connectSocket();

  const text = document.getElementById("text");
  document.getElementById("send").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = text.value;
    if (!body) return;
    const headers = { "Content-Type": "text/plain; charset=utf-8" };
    if (token) headers["Authorization"] = "Bearer " + token;
    const res = await fetch("messages", { method: "POST", headers, body });
    if (res.status === 202) text.value = "";
    else alert("Not sent: " + res.status);
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); document.getElementById("send").requestSubmit(); }
  });
</script>
</body>
</html>
)HTML";

} // namespace examples
