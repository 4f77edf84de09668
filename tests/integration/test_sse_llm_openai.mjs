// examples/sse_llm_stream driven by the official `openai` npm client: streamed and whole completions, and
// the client's own error type for a request the server refuses.
import OpenAI from "openai";
import { Results, expect, startServer } from "./harness.mjs";

const R = new Results();
const srv = await startServer("sse_llm_stream");
const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "not-checked", maxRetries: 0, timeout: 10000 });

await R.check("the openai client streams a completion token by token, quotes and all", async () => {
  const stream = await client.chat.completions.create({
    model: "weir-demo",
    stream: true,
    messages: [
      { role: "system", content: "be brief" },
      { role: "user", content: 'say "hi" now' },
    ],
  });
  let text = "";
  let chunks = 0;
  let finish = null;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  expect(text === 'You said: say "hi" now', text);
  expect(chunks > 3, `${chunks} chunks`);
  expect(finish === "stop", finish);
});

await R.check("the openai client reads a whole completion", async () => {
  const completion = await client.chat.completions.create({
    model: "weir-demo",
    messages: [{ role: "user", content: "back\\slash and ünïcode" }],
  });
  expect(completion.choices[0].message.content === "You said: back\\slash and ünïcode", completion.choices[0].message.content);
  expect(completion.choices[0].finish_reason === "stop", completion.choices[0].finish_reason);
});

await R.check("a request without messages is a BadRequestError carrying the server's invalid_request_error", async () => {
  let error = null;
  try {
    await client.chat.completions.create({ model: "weir-demo", stream: true });
  } catch (e) {
    error = e;
  }
  expect(error instanceof OpenAI.BadRequestError, `${error}`);
  expect(error.status === 400, error.status);
  expect(error.type === "invalid_request_error", error.type);
  expect(error.param === "messages", error.param);
});

const code = await srv.stop();
await R.check("the server exits 0 on SIGTERM", async () => expect(code === 0, `exit ${code}`));
R.finish();
