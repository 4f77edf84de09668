// A server for the WebSocket integration tests: echo with large limits, a small limit, subprotocols, an
// Origin check, and stages that add headers to the 101 or refuse it after next.

#include "../../examples/example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/websocket.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace {

std::atomic<int> sessions_running{0};

asio::awaitable<void> echo(weir::websocket_connection& ws) {
    ++sessions_running;
    struct leave {
        ~leave() { --sessions_running; }
    } guard;
    while (auto message = co_await ws.read()) {
        if (message->binary) co_await ws.send_binary(message->data);
        else co_await ws.send(message->data);
    }
}

struct headers_and_refusal {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [&](auto& reply) {
            reply.headers().add("Set-Cookie", "session=abc; Path=/; HttpOnly");
            reply.headers().add("Set-Cookie", "theme=dark; Path=/");
            reply.headers().set("X-Request-Id", "ws-request-1");
            reply.headers().set("X-Frame-Options", "DENY");
            if (req.path() == "/refused") reply.set_status(weir::status::forbidden);
        });
    }
};

constexpr std::string_view page = R"(<!doctype html><meta charset="utf-8"><title>ws</title><script>
  window.log = [];
  const ws = new WebSocket(`ws://${location.host}/echo`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { ws.send("héllo wörld"); ws.send(new Uint8Array([1, 2, 3, 255])); };
  ws.onmessage = (e) => {
    window.log.push(typeof e.data === "string" ? e.data : Array.from(new Uint8Array(e.data)).join(","));
    if (window.log.length === 2) ws.close(1000, "done");
  };
  ws.onclose = (e) => { window.closeCode = e.code; };
</script>)";

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--port N] [--threads N]");

    weir::websocket_options big;
    big.max_message_size = 16 * 1024 * 1024;
    weir::websocket_options small;
    small.max_message_size = 1024;
    weir::websocket_options protocols;
    protocols.subprotocols = {"chat.v2", "chat.v1"};
    weir::websocket_options origins;
    origins.allowed_origins = {"http://good.example"};
    weir::websocket_options quick;
    quick.ping_interval = std::chrono::milliseconds(200);
    quick.idle_timeout = std::chrono::milliseconds(1000);

    weir::pipeline app{
        headers_and_refusal{},
        weir::router{
            weir::get<"/page">([](const auto&) {
                return weir::response(weir::status::ok, std::string(page), "text/html; charset=utf-8");
            }),
            weir::get<"/echo">([big](const auto& req) { return weir::accept_websocket(req, echo, big); }),
            weir::get<"/small">([small](const auto& req) { return weir::accept_websocket(req, echo, small); }),
            weir::get<"/proto">([protocols](const auto& req) {
                return weir::accept_websocket(
                    req,
                    [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                        co_await ws.send("subprotocol=" + ws.subprotocol());
                        while (co_await ws.read()) {
                        }
                    },
                    protocols);
            }),
            weir::get<"/origin">([origins](const auto& req) { return weir::accept_websocket(req, echo, origins); }),
            weir::get<"/quick">([quick](const auto& req) { return weir::accept_websocket(req, echo, quick); }),
            weir::get<"/refused">([big](const auto& req) { return weir::accept_websocket(req, echo, big); }),
            weir::get<"/server-closes">([](const auto& req) {
                return weir::accept_websocket(req, [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                    co_await ws.send("bye");
                    co_await ws.close(weir::close_code::normal, "done");
                });
            }),
            // Reads nothing for 300 ms (the client fills the inbox meanwhile), then closes.
            weir::get<"/hold-then-close">([](const auto& req) {
                return weir::accept_websocket(req, [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                    asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(300));
                    co_await pause.async_wait(asio::use_awaitable);
                    co_await ws.close(weir::close_code::normal, "held");
                });
            }),
            // Closes with a reason whose 123rd byte is inside a two-byte character.
            weir::get<"/long-reason">([](const auto& req) {
                return weir::accept_websocket(req, [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                    co_await ws.close(weir::close_code::normal, std::string(122, 'a') + "\xc3\xa9 and more");
                });
            }),
            // Another thread sends 200 messages of 64 KiB (12.5 MiB, past the 4 MiB send budget).
            weir::get<"/thread-flood">([](const auto& req) {
                return weir::accept_websocket(req, [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                    std::thread producer([sender = ws.sender()] {
                        auto payload = std::make_shared<const std::string>(64 * 1024, 't');
                        for (int i = 0; i < 200; ++i)
                            if (!sender->send_shared(payload, true)) break;
                    });
                    while (co_await ws.read()) {
                    }
                    producer.join();
                });
            }),
            weir::get<"/stats">([](const auto&) {
                return weir::response(weir::status::ok, std::to_string(sessions_running.load()));
            }),
        },
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
