// websocket_echo: echoes every WebSocket message at /echo, text as text and binary as binary.
//
//   websocket_echo [--bind ADDR] [--port N] [--threads N]

#include "example_options.hpp"

#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/websocket.hpp>

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--bind ADDR] [--port N] [--threads N]");

    weir::websocket_options ws_options;
    ws_options.max_message_size = 16 * 1024 * 1024;

    weir::router app{
        weir::get<"/echo">([ws_options](const auto& req) {
            return weir::accept_websocket(
                req,
                [](weir::websocket_connection& ws) -> asio::awaitable<void> {
                    while (auto message = co_await ws.read()) {
                        if (message->binary) co_await ws.send_binary(std::move(message->data));
                        else co_await ws.send(std::move(message->data));
                    }
                },
                ws_options);
        }),
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
