#pragma once

// Command-line parsing shared by the examples: --bind, --port, --threads, --max-connections,
// --header-timeout-ms, plus example-specific flags.

#include <weir/server_options.hpp>

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>

namespace examples {

// Parses the common flags into `options`; `extra(flag, value)` handles the rest and returns false for an
// unknown flag. Exits with status 2 and a usage line on a bad command line.
inline void parse_command_line(int argc, char** argv, weir::server_options& options, std::string_view usage,
                               const std::function<bool(std::string_view, std::string_view)>& extra = {}) {
    auto fail = [&](std::string_view why) {
        fmt::print(stderr, "{}\nusage: {} {}\n", why, argv[0], usage);
        std::exit(2);
    };
    auto number = [&](std::string_view flag, std::string_view value) {
        unsigned long n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || p != value.data() + value.size()) fail(fmt::format("{} needs a number", flag));
        return n;
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            fmt::print("usage: {} {}\n", argv[0], usage);
            std::exit(0);
        }
        if (i + 1 >= argc) fail(fmt::format("{} needs a value", flag));
        std::string_view value = argv[++i];
        if (flag == "--bind") options.bind = std::string(value);
        else if (flag == "--port") {
            auto n = number(flag, value);
            if (n > 65535) fail("--port is at most 65535");
            options.port = static_cast<unsigned short>(n);
        } else if (flag == "--threads") {
            auto n = number(flag, value);
            if (n == 0 || n > 256) fail("--threads is between 1 and 256");
            options.threads = static_cast<unsigned>(n);
        } else if (flag == "--max-connections") {
            options.max_connections = number(flag, value);
        } else if (flag == "--header-timeout-ms") {
            options.header_timeout = std::chrono::milliseconds(number(flag, value));
        } else if (!extra || !extra(flag, value)) {
            fail(fmt::format("unknown option {}", flag));
        }
    }
}

// The line tests and scripts wait for: "listening on http://ADDR:PORT" (https with TLS), flushed.
inline void announce(const asio::ip::tcp::endpoint& ep, bool secure = false) {
    auto address = ep.address().is_v6() ? fmt::format("[{}]", ep.address().to_string()) : ep.address().to_string();
    fmt::print("listening on {}://{}:{}\n", secure ? "https" : "http", address, ep.port());
    std::fflush(stdout);
}

} // namespace examples
