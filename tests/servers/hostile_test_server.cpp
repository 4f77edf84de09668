// A server for the hostile test: what well-behaved clients use (a page, an endless event stream, a WebSocket
// echo written as examples/websocket_echo.cpp writes it, a POST echo) on one server, so that attackers and
// the clients they must not hurt share its event loops. Limits are the library's defaults unless a flag says.

#include "../../examples/example_options.hpp"

#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>
#include <weir/websocket.hpp>

#include <asio/steady_timer.hpp>

#include <chrono>
#include <string>

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options,
                                 "[--port N] [--threads N] [--header-timeout-ms N]");

    weir::router app{
        weir::get<"/">([](const auto&) { return weir::response(weir::status::ok, "Hello, World!"); }),
        weir::post<"/echo">([](const auto& req) {
            return weir::response(weir::status::ok, std::string(req.body()), "application/octet-stream");
        }),
        // One event every 100 ms, numbered from 1: a subscriber sees at once whether it is served promptly.
        weir::get<"/ticks">([](const auto& req) {
            return weir::event_stream(req, [](weir::sse_stream& out) -> asio::awaitable<void> {
                asio::steady_timer t(out.get_executor());
                for (long i = 1;; ++i) {
                    weir::sse_event e;
                    e.id = std::to_string(i);
                    e.data = "tick " + std::to_string(i);
                    if (!co_await out.send(e)) co_return;
                    t.expires_after(std::chrono::milliseconds(100));
                    co_await t.async_wait(asio::use_awaitable);
                }
            });
        }),
        weir::get<"/ws">([](const auto& req) {
            return weir::accept_websocket(req, [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                while (auto message = co_await ws.read()) {
                    if (message->binary) co_await ws.send_binary(message->data);
                    else co_await ws.send(message->data);
                }
            });
        }),
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
