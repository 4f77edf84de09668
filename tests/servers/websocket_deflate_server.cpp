// A server for the permessage-deflate tests and bench: echo routes with each setting, a 1 MiB limit for
// decompression bombs, a stage that tries to forge Sec-WebSocket-Extensions, and a room that broadcasts a
// 4 KiB JSON message to every member with send_shared (compressed once per thread without server context).
// Without zlib it still builds, and never negotiates the extension.

#include "../../examples/example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/websocket.hpp>

#include <fmt/format.h>

#include <charconv>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

asio::awaitable<void> echo(weir::websocket_connection& ws) {
    while (auto message = co_await ws.read()) {
        if (message->binary) co_await ws.send_binary(std::move(message->data));
        else co_await ws.send(std::move(message->data));
    }
}

// Says whether the extension was agreed, then echoes.
asio::awaitable<void> report_then_echo(weir::websocket_connection& ws) {
    co_await ws.send(ws.permessage_deflate() ? "deflate=1" : "deflate=0");
    co_await echo(ws);
}

// The members of the broadcast room, by their senders (any thread may broadcast).
struct room {
    std::mutex mutex;
    std::vector<std::shared_ptr<weir::websocket_sender>> members;

    std::size_t size() {
        std::lock_guard lock(mutex);
        std::erase_if(members, [](auto& s) { return !s->alive(); });
        return members.size();
    }

    // Sends `count` messages of about 4 KiB of JSON to every member; each message's bytes are made once and
    // shared, as a chat or a ticker would.
    std::size_t broadcast(std::size_t count) {
        std::vector<std::shared_ptr<weir::websocket_sender>> to;
        {
            std::lock_guard lock(mutex);
            to = members;
        }
        std::size_t delivered = 0;
        for (std::size_t i = 0; i < count; ++i) {
            std::string json = fmt::format(R"({{"seq":{},"type":"tick","items":[)", i);
            for (int k = 0; json.size() < 4000; ++k)
                json += fmt::format(R"({{"id":{},"symbol":"SYM{}","price":{}.{:02},"volume":{}}},)", k, k % 97,
                                    100 + (k * 7 + i) % 900, (k * 13 + i) % 100, (k * 31 + i) % 10000);
            json.back() = ']';
            json += '}';
            auto shared = std::make_shared<const std::string>(std::move(json));
            for (auto& s : to) delivered += s->send_shared(shared) ? 1 : 0;
        }
        return delivered;
    }
};

room the_room;

// Sets the field the protocol owns: it must not reach the 101.
struct forging_stage {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [&](auto& reply) {
            if (req.path() == "/forged") reply.headers().set("Sec-WebSocket-Extensions", "permessage-deflate");
        });
    }
};

std::size_t count_parameter(std::string_view query) {
    std::size_t n = 1;
    if (auto at = query.find("count="); at != std::string_view::npos) {
        auto v = query.substr(at + 6);
        std::from_chars(v.data(), v.data() + v.size(), n);
    }
    return n;
}

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--port N] [--threads N]");

    weir::websocket_options deflate; // context takeover both ways, every message compressed
    deflate.max_message_size = 16 * 1024 * 1024;
    deflate.deflate.enabled = true;
    deflate.deflate.threshold = 0;
    auto no_context = deflate;
    no_context.deflate.server_context_takeover = false;
    no_context.deflate.client_context_takeover = false;
    auto narrow = deflate;
    narrow.deflate.server_window_bits = 9;
    narrow.deflate.client_window_bits = 9;
    narrow.deflate.memory_level = 1;
    narrow.deflate.level = 1;
    auto threshold = deflate;
    threshold.deflate.threshold = 1024;
    auto limited = deflate;
    limited.max_message_size = 1024 * 1024;
    weir::websocket_options plain;
    plain.max_message_size = 16 * 1024 * 1024;
    // The room: what a broadcast service would use (no server context: compressed once per thread).
    weir::websocket_options room_options;
    room_options.deflate.enabled = true;
    room_options.deflate.server_context_takeover = false;
    room_options.deflate.client_context_takeover = false;
    room_options.deflate.server_window_bits = 12;
    room_options.deflate.memory_level = 4;
    room_options.deflate.threshold = 256;
    auto room_plain = room_options;
    room_plain.deflate.enabled = false;

    auto member = [](weir::websocket_connection& ws) -> asio::awaitable<void> {
        {
            std::lock_guard lock(the_room.mutex);
            the_room.members.push_back(ws.sender());
        }
        co_await ws.send(ws.permessage_deflate() ? "joined deflate=1" : "joined deflate=0");
        while (co_await ws.read()) {
        }
    };

    weir::pipeline app{
        forging_stage{},
        weir::router{
            weir::get<"/deflate">([=](const auto& req) { return weir::accept_websocket(req, echo, deflate); }),
            weir::get<"/deflate-no-context">(
                [=](const auto& req) { return weir::accept_websocket(req, echo, no_context); }),
            weir::get<"/deflate-narrow">([=](const auto& req) { return weir::accept_websocket(req, echo, narrow); }),
            weir::get<"/deflate-threshold">(
                [=](const auto& req) { return weir::accept_websocket(req, echo, threshold); }),
            weir::get<"/deflate-limit">([=](const auto& req) { return weir::accept_websocket(req, echo, limited); }),
            weir::get<"/plain">([=](const auto& req) { return weir::accept_websocket(req, echo, plain); }),
            weir::get<"/report">([=](const auto& req) { return weir::accept_websocket(req, report_then_echo, deflate); }),
            weir::get<"/forged">([=](const auto& req) { return weir::accept_websocket(req, report_then_echo, plain); }),
            weir::get<"/room">([=](const auto& req) { return weir::accept_websocket(req, member, room_options); }),
            weir::get<"/room-plain">([=](const auto& req) { return weir::accept_websocket(req, member, room_plain); }),
            weir::get<"/room-size">([](const auto&) {
                return weir::response(weir::status::ok, std::to_string(the_room.size()));
            }),
            weir::post<"/broadcast">([](const auto& req) {
                return weir::response(weir::status::ok,
                                      std::to_string(the_room.broadcast(count_parameter(req.query()))));
            }),
        },
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
