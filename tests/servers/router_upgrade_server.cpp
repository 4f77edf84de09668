// A server for the router's upgrade tests: generic route handlers whose path parameters are captured by a
// WebSocket session and an SSE stream, and read there, after the request's buffer is gone.

#include "../../examples/example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>
#include <weir/websocket.hpp>

#include <asio/steady_timer.hpp>

#include <chrono>
#include <string>

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--port N] [--threads N]");

    weir::router app{
        weir::get<"/rooms/{room}/ws">([](const auto& req, auto room) {
            return weir::accept_websocket(req, [room](weir::websocket_connection& ws) -> asio::awaitable<void> {
                // Wait for the client's first message, so that the connection has certainly moved on.
                auto first = co_await ws.read();
                if (!first) co_return;
                co_await ws.send("room " + std::string(room) + " got " + first->data);
            });
        }),
        weir::get<"/rooms/{room}/users/{user}/events">([](const auto& req, auto room, auto user) {
            return weir::event_stream(req, [room, user](weir::sse_stream& out) -> asio::awaitable<void> {
                asio::steady_timer pause(out.get_executor(), std::chrono::milliseconds(20));
                co_await pause.async_wait(asio::use_awaitable);
                weir::sse_event e;
                e.data = "room " + std::string(room) + " user " + std::string(user);
                co_await out.send(e);
            });
        }),
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
