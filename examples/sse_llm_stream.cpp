// sse_llm_stream: an OpenAI-style streaming endpoint. POST /v1/chat/completions with "stream": true answers
// `data: {...}` chunks, one token at a time, then `data: [DONE]`; without it, one JSON completion.
//
//   sse_llm_stream [--bind ADDR] [--port N] [--threads N]
//   curl -N localhost:8080/v1/chat/completions -d '{"stream": true, "messages": [{"role": "user", "content": "hi"}]}'

#include "example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>

#include <asio/steady_timer.hpp>

#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

// A stand-in for a model: the reply, token by token.
std::vector<std::string> tokens_for(std::string_view prompt) {
    std::vector<std::string> out{"You", " said", ":"};
    std::string word;
    for (char c : prompt) {
        if (c == ' ' && !word.empty()) {
            out.push_back(" " + word);
            word.clear();
        } else if (c != ' ') {
            word += c;
        }
    }
    if (!word.empty()) out.push_back(" " + word);
    return out;
}

// The last user message's content, found without a JSON library: enough for a demo.
std::string last_content(std::string_view body) {
    auto key = body.rfind("\"content\"");
    if (key == std::string_view::npos) return "nothing";
    auto open = body.find('"', body.find(':', key) + 1);
    auto close = body.find('"', open + 1);
    if (open == std::string_view::npos || close == std::string_view::npos) return "nothing";
    return std::string(body.substr(open + 1, close - open - 1));
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", c);
            else out += c;
        }
    }
    return out;
}

std::string chunk(std::string_view id, std::string_view token, bool last) {
    return fmt::format(R"({{"id":"{}","object":"chat.completion.chunk","model":"weir-demo","choices":[{{"index":0,"delta":{}, "finish_reason":{}}}]}})",
                       id, last ? "{}" : fmt::format(R"({{"content":"{}"}})", json_escape(token)),
                       last ? "\"stop\"" : "null");
}

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--bind ADDR] [--port N] [--threads N]");

    weir::router app{
        weir::post<"/v1/chat/completions">([](const auto& req) -> weir::reply<weir::sse> {
            std::string body(req.body());
            auto tokens = tokens_for(last_content(body));
            bool stream = body.find("\"stream\": true") != std::string::npos ||
                          body.find("\"stream\":true") != std::string::npos;
            if (!stream) {
                std::string text;
                for (auto& t : tokens) text += t;
                return weir::response(
                    weir::status::ok,
                    fmt::format(R"({{"id":"cmpl-1","object":"chat.completion","model":"weir-demo","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"finish_reason":"stop"}}]}})",
                                json_escape(text)),
                    "application/json");
            }
            return weir::event_stream(req, [tokens](weir::sse_stream& out) -> asio::awaitable<void> {
                asio::steady_timer pace(out.get_executor());
                for (auto& token : tokens) {
                    weir::sse_event e;
                    e.data = chunk("cmpl-1", token, false);
                    if (!co_await out.send(e)) co_return; // the client went away
                    pace.expires_after(std::chrono::milliseconds(30));
                    co_await pace.async_wait(asio::use_awaitable);
                }
                weir::sse_event last;
                last.data = chunk("cmpl-1", "", true);
                co_await out.send(last);
                weir::sse_event done;
                done.data = "[DONE]";
                co_await out.send(done);
            });
        }),
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
