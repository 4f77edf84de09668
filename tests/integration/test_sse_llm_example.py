"""examples/sse_llm_stream: an OpenAI-style streaming endpoint read with curl."""

import json
import subprocess

from weir_harness import Results, Server, expect

R = Results()

with Server("sse_llm_stream") as srv:

    def streaming():
        body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "weir streams tokens"}]})
        out = subprocess.run(["curl", "-sS", "-N", srv.url + "/v1/chat/completions", "-d", body],
                             capture_output=True, timeout=30, check=True).stdout.decode()
        datas = [line[len("data: "):] for line in out.split("\n") if line.startswith("data: ")]
        expect(datas[-1] == "[DONE]", datas[-1])
        text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in datas[:-1])
        expect(text == "You said: weir streams tokens", text)
        expect(json.loads(datas[-2])["choices"][0]["finish_reason"] == "stop", datas[-2])
    R.check("stream: true answers data: chunks, then data: [DONE]", streaming)

    def not_streaming():
        body = json.dumps({"messages": [{"role": "user", "content": "once"}]})
        out = subprocess.run(["curl", "-sS", "-i", srv.url + "/v1/chat/completions", "-d", body],
                             capture_output=True, timeout=30, check=True).stdout.decode()
        head, _, payload = out.partition("\r\n\r\n")
        expect("application/json" in head, head)
        expect(json.loads(payload)["choices"][0]["message"]["content"] == "You said: once", payload)
    R.check("without stream: true, one JSON completion", not_streaming)

R.finish()
