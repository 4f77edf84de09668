"""examples/sse_llm_stream: an OpenAI-style streaming endpoint read with curl."""

import json
import subprocess

from weir_harness import Results, Server, expect

R = Results()


def post(srv, body, *extra):
    """POSTs `body` to the completions endpoint; returns (status, head, payload)."""
    out = subprocess.run(["curl", "-sS", "-i", "-N", *extra, srv.url + "/v1/chat/completions",
                          "-H", "Content-Type: application/json", "--data-binary", body],
                         capture_output=True, timeout=30, check=True).stdout.decode()
    head, _, payload = out.partition("\r\n\r\n")
    return int(head.split(" ")[1]), head, payload


def stream_text(payload):
    datas = [line[len("data: "):] for line in payload.split("\n") if line.startswith("data: ")]
    expect(datas and datas[-1] == "[DONE]", datas[-1:] if datas else payload)
    return "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in datas[:-1]), datas


def expect_invalid_request(status, head, payload):
    expect(status == 400, f"status {status}: {payload}")
    expect("application/json" in head, head)
    error = json.loads(payload)["error"]
    expect(error["type"] == "invalid_request_error", error)
    expect(isinstance(error["message"], str) and error["message"], error)
    return error


with Server("sse_llm_stream") as srv:

    def streaming():
        body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "weir streams tokens"}]})
        out = subprocess.run(["curl", "-sS", "-N", srv.url + "/v1/chat/completions", "-d", body],
                             capture_output=True, timeout=30, check=True).stdout.decode()
        text, datas = stream_text(out)
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

    def escaped_quotes_streamed():
        body = json.dumps({"stream": True, "messages": [{"role": "user", "content": 'say "hi" now'}]})
        status, _, payload = post(srv, body)
        expect(status == 200, status)
        text, _ = stream_text(payload)
        expect(text == 'You said: say "hi" now', text)
    R.check("escaped quotes in a message's content reach the streamed reply whole", escaped_quotes_streamed)

    def escapes_not_streamed():
        content = 'a \\ back\\slash, "quotes", tab\there, \u00e9t\u00e9 \U0001F600'
        body = json.dumps({"messages": [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": content},
                                        {"role": "assistant", "content": "ignored"}]})
        status, _, payload = post(srv, body)
        expect(status == 200, status)
        got = json.loads(payload)["choices"][0]["message"]["content"]
        # The stand-in model splits on spaces; everything else comes back byte for byte.
        expect(got == "You said: " + content, got)
    R.check("JSON escapes and non-ASCII text in the last user message come back decoded and re-encoded",
            escapes_not_streamed)

    def later_content_key_is_not_the_prompt():
        body = json.dumps({"messages": [{"role": "user", "content": "the question"}],
                           "metadata": {"content": "not a message"}})
        status, _, payload = post(srv, body)
        expect(status == 200, status)
        got = json.loads(payload)["choices"][0]["message"]["content"]
        expect(got == "You said: the question", got)
    R.check("the prompt is the last user message, not the last \"content\" key in the body",
            later_content_key_is_not_the_prompt)

    def not_json():
        expect_invalid_request(*post(srv, "not json"))
        expect_invalid_request(*post(srv, '{"messages": [{"role": "user", "content": "cut'))
    R.check("a body that is not JSON gets 400 with an invalid_request_error object", not_json)

    def no_messages():
        for body in ['{"stream": true}', '{"messages": "hi"}', '{"messages": []}', '[1, 2]',
                     '{"messages": [{"content": "no role"}]}', '{"messages": [{"role": "user", "content": 5}]}']:
            status, head, payload = post(srv, body)
            error = expect_invalid_request(status, head, payload)
            expect("text/event-stream" not in head, head)
            if "messages" not in body:
                continue
            expect(error["param"] is not None and error["param"].startswith("messages"), error)
    R.check("a body without a messages array (or with malformed messages) gets 400, never a stream", no_messages)

    def stream_must_be_boolean():
        error = expect_invalid_request(*post(srv, '{"stream": "yes", "messages": [{"role": "user", "content": "x"}]}'))
        expect(error["param"] == "stream", error)
    R.check("a stream flag that is not a boolean gets 400 naming the parameter", stream_must_be_boolean)

R.finish()
