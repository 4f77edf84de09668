// A consumer that serves: starts a server on a free port, asks it for one page over loopback and stops it.
// Built with WEIR_SEPARATE_COMPILATION against weir's compiled library (CMake weir::separate, pkg-config
// weir-separate, meson weir_separate_dep), so it checks that the library and the headers fit together.
#include <weir/weir.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <cstdio>
#include <string>
#include <thread>

#ifndef WEIR_SEPARATE_COMPILATION
#error "serve.cpp checks the separately compiled weir: build it with WEIR_SEPARATE_COMPILATION"
#endif

int main() {
    weir::server_options options;
    options.port = 0;
    options.handle_signals = false;
    weir::server server(weir::pipeline{[](const weir::request<>& req) {
                            return weir::response(weir::status::ok, "served " + std::string(req.path()));
                        }},
                        options);
    auto port = server.listen().port();
    std::thread loop([&] { server.run(); });

    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::address_v4::loopback(), port});
    asio::write(socket, asio::buffer(std::string("GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")));
    std::string answer;
    asio::error_code ec;
    asio::read(socket, asio::dynamic_buffer(answer), ec);
    server.stop();
    loop.join();

    bool ok = answer.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 && answer.find("served /page") != std::string::npos;
    std::printf("separately compiled weir: %s\n", ok ? "served" : answer.c_str());
    return ok ? 0 : 1;
}
