// The smallest weir server with every kind of connection the benchmark measures, so that memory per connection
// and stream throughput are the library's, without an application's middleware:
//   GET  /plaintext  "Hello, World!" (idle keep-alive connections)
//   GET  /events     an SSE stream subscribed to one broadcast hub
//   POST /messages   publishes the body to the hub as an event named "message"; 202
//   GET  /echo       WebSocket echo (a coroutine handler)
//   GET  /echo-callbacks  the same echo written as websocket_callbacks
//
//   weir_streams [--port N] [--max-connections N]     (one thread)
//
// It raises its own soft limit on open files (RLIMIT_NOFILE) to the hard limit, so that the number of idle
// connections it can hold is the machine's limit, not the shell's default soft limit (often 1,024).

#include "../examples/example_options.hpp"

#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>
#include <weir/websocket.hpp>

#include <string>
#include <utility>

int main(int argc, char** argv) {
    weir::raise_open_file_limit();
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--port N] [--max-connections N]");
    options.threads = 1;

    weir::sse_hub hub;
    weir::router app{
        weir::get<"/plaintext">([](const auto&) { return weir::response(weir::status::ok, "Hello, World!"); }),
        weir::get<"/events">([&hub](const auto& req) { return hub.subscribe(req); }),
        weir::post<"/messages">([&hub](const auto& req) {
            weir::sse_event e;
            e.event = "message";
            e.data = std::string(req.body());
            hub.publish(std::move(e));
            return weir::response(weir::status::accepted);
        }),
        weir::get<"/echo">([](const auto& req) {
            return weir::accept_websocket(req, [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                while (auto message = co_await ws.read()) {
                    if (message->binary) co_await ws.send_binary(std::move(message->data));
                    else co_await ws.send(std::move(message->data));
                }
            });
        }),
        // The same echo written as callbacks: no coroutine per session.
        weir::get<"/echo-callbacks">([](const auto& req) {
            weir::websocket_callbacks callbacks;
            callbacks.on_message = [](weir::websocket_connection& ws, weir::websocket_message message) {
                if (message.binary) ws.try_send_binary(std::move(message.data));
                else ws.try_send(std::move(message.data));
            };
            return weir::accept_websocket(req, std::move(callbacks));
        }),
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
