// sse_llm_stream: an OpenAI-style streaming endpoint. POST /v1/chat/completions with "stream": true answers
// `data: {...}` chunks, one token at a time, then `data: [DONE]`; without it, one JSON completion. A body that
// is not JSON, or has no `messages` array, gets 400 with an OpenAI-style error object. Requests are read and
// answers written with nlohmann/json (the example needs it; the weir library does not).
//
//   sse_llm_stream [--bind ADDR] [--port N] [--threads N]
//   curl -N localhost:8080/v1/chat/completions -d '{"stream": true, "messages": [{"role": "user", "content": "hi"}]}'

#include "example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>

#include <asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace {

using json = nlohmann::json;

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

// 400 with the error object OpenAI's API and clients use.
weir::response invalid_request(std::string message, std::optional<std::string> param = std::nullopt) {
    json error = {{"error",
                   {{"message", std::move(message)},
                    {"type", "invalid_request_error"},
                    {"param", param ? json(*param) : json(nullptr)},
                    {"code", nullptr}}}};
    return weir::response(weir::status::bad_request, error.dump(), "application/json");
}

// What the model is asked: the last user message's text, and whether to stream.
struct completion_request {
    std::string prompt;
    bool stream = false;
};

// A message's content is a string, or an array of parts of which the "text" ones count.
std::optional<std::string> text_of(const json& content) {
    if (content.is_string()) return content.get<std::string>();
    if (!content.is_array()) return std::nullopt;
    std::string text;
    for (auto& part : content) {
        if (!part.is_object()) return std::nullopt;
        if (part.value("type", "") != "text") continue;
        auto t = part.find("text");
        if (t == part.end() || !t->is_string()) return std::nullopt;
        text += t->get<std::string>();
    }
    return text;
}

std::variant<completion_request, weir::response> parse_request(std::string_view body) {
    auto doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return invalid_request("The request body is not valid JSON.");
    if (!doc.is_object()) return invalid_request("The request body must be a JSON object.");
    completion_request out;
    if (auto s = doc.find("stream"); s != doc.end() && !s->is_null()) {
        if (!s->is_boolean()) return invalid_request("'stream' must be a boolean.", "stream");
        out.stream = s->get<bool>();
    }
    auto messages = doc.find("messages");
    if (messages == doc.end()) return invalid_request("Missing required parameter: 'messages'.", "messages");
    if (!messages->is_array() || messages->empty())
        return invalid_request("'messages' must be a non-empty array.", "messages");
    const json* last_user = nullptr;
    for (std::size_t i = 0; i < messages->size(); ++i) {
        auto& m = (*messages)[i];
        auto where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
            return invalid_request("'" + where + "' must be an object with a string 'role'.", where);
        if (m.contains("content") && !m["content"].is_null() && !text_of(m["content"]))
            return invalid_request("'" + where + ".content' must be a string or an array of text parts.",
                                   where + ".content");
        if (m["role"] == "user") last_user = &m;
    }
    if (last_user && last_user->contains("content") && !(*last_user)["content"].is_null())
        out.prompt = *text_of((*last_user)["content"]);
    return out;
}

json chunk(std::string_view id, std::time_t created, const std::string* token) {
    json delta = token ? json{{"content", *token}} : json::object();
    return {{"id", id},
            {"object", "chat.completion.chunk"},
            {"created", created},
            {"model", "weir-demo"},
            {"choices", json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", token ? json(nullptr) : json("stop")}}})}};
}

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--bind ADDR] [--port N] [--threads N]");

    weir::router app{
        weir::post<"/v1/chat/completions">([](const weir::request<>& req) -> weir::reply<weir::sse> {
            auto parsed = parse_request(req.body());
            if (auto* error = std::get_if<weir::response>(&parsed)) return std::move(*error);
            auto& request = std::get<completion_request>(parsed);
            auto tokens = tokens_for(request.prompt);
            auto created = std::time(nullptr);
            if (!request.stream) {
                std::string text;
                for (auto& t : tokens) text += t;
                json completion = {
                    {"id", "cmpl-1"},
                    {"object", "chat.completion"},
                    {"created", created},
                    {"model", "weir-demo"},
                    {"choices", json::array({{{"index", 0},
                                              {"message", {{"role", "assistant"}, {"content", text}}},
                                              {"finish_reason", "stop"}}})},
                    {"usage", {{"prompt_tokens", 0}, {"completion_tokens", tokens.size()}, {"total_tokens", tokens.size()}}}};
                return weir::response(weir::status::ok, completion.dump(), "application/json");
            }
            // The stream owns what it needs (tokens, created); it runs after the request is gone.
            return weir::event_stream(req, [tokens, created](weir::sse_stream& out) -> asio::awaitable<void> {
                asio::steady_timer pace(out.get_executor());
                for (auto& token : tokens) {
                    weir::sse_event e;
                    e.data = chunk("cmpl-1", created, &token).dump();
                    if (!co_await out.send(e)) co_return; // the client went away
                    pace.expires_after(std::chrono::milliseconds(30));
                    co_await pace.async_wait(asio::use_awaitable);
                }
                weir::sse_event last;
                last.data = chunk("cmpl-1", created, nullptr).dump();
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
