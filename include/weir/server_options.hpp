#pragma once

#include <weir/http/parser.hpp>
#include <weir/transport.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace weir {

/// How a server listens, how many threads it runs, and the limits and timeouts that protect it from clients.
struct server_options {
    std::string bind = "127.0.0.1"; ///< address to listen on ("0.0.0.0", "::" ...)
    unsigned short port = 8080;     ///< 0 picks a free port; listen() returns the one chosen
    unsigned threads = 1;           ///< event-loop threads; each connection stays on one of them
    bool tcp_nodelay = true;        ///< disable Nagle's algorithm on accepted sockets
    std::size_t max_connections = 10'000; ///< connections over this are closed as soon as accepted

    http_limits limits{}; ///< request line, header, body and chunk extension limits (414, 431, 413, 400)

    std::chrono::milliseconds header_timeout{10'000};   ///< the whole head, from its first byte (408)
    std::chrono::milliseconds body_timeout{30'000};     ///< the whole body, from the end of the head (408)
    std::chrono::milliseconds idle_timeout{60'000};     ///< a keep-alive connection may idle this long
    std::chrono::milliseconds write_timeout{30'000};    ///< a response write must finish within this
    std::chrono::milliseconds shutdown_timeout{10'000}; ///< graceful shutdown waits this long, then cancels (503)

    /// HTTPS: a weir::tls_context (<weir/tls.hpp>, CMake target weir::tls). Null: plain HTTP. The TLS handshake
    /// must finish within header_timeout.
    std::shared_ptr<transport_security> tls{};

    bool handle_signals = true; ///< SIGINT and SIGTERM start a graceful shutdown

    /// Where errors are reported (a handler that threw, a failed session). Default: one line on stderr.
    std::function<void(std::string_view)> error_log{};
};

} // namespace weir
