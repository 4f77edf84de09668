// Load client for what wrk cannot drive: SSE broadcast fan-out, WebSocket echo round trips, and many idle
// connections (for memory per connection). Loopback only; every mode ends by itself.
//
//   weir_load sse  PORT SUBSCRIBERS EVENTS      deliveries per second to SUBSCRIBERS over /events (chat)
//   weir_load ws   PORT CONNECTIONS MESSAGES [PATH]  echo round trips per second and p99 latency (PATH: /echo)
//   weir_load idle PORT COUNT http|sse|ws       opens COUNT idle connections, prints "ready", waits for stdin

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

tcp::endpoint target(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

std::string ws_handshake_for(const std::string& path) {
    return "GET " + path +
           " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

const std::string ws_handshake = ws_handshake_for("/echo");

std::string masked_text_frame(const std::string& payload) {
    std::string f;
    f += static_cast<char>(0x81);
    f += static_cast<char>(0x80 | payload.size()); // payloads here are < 126 bytes
    const char key[4] = {1, 2, 3, 4};
    f.append(key, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ key[i % 4]);
    return f;
}

asio::awaitable<void> read_head(tcp::socket& s, std::string& rest) {
    std::string buf;
    char tmp[4096];
    while (buf.find("\r\n\r\n") == std::string::npos) {
        auto n = co_await s.async_read_some(asio::buffer(tmp), asio::use_awaitable);
        buf.append(tmp, n);
    }
    rest = buf.substr(buf.find("\r\n\r\n") + 4);
}

int sse_mode(unsigned short port, int subscribers, int events) {
    asio::io_context io{1};
    std::atomic<long> delivered{0};
    std::atomic<int> ready{0};
    const long expected = static_cast<long>(subscribers) * events;
    clock_type::time_point first_publish, last_delivery;
    std::vector<std::shared_ptr<tcp::socket>> sockets;
    for (int i = 0; i < subscribers; ++i) {
        auto s = std::make_shared<tcp::socket>(io);
        sockets.push_back(s);
        asio::co_spawn(io, [&, s]() -> asio::awaitable<void> {
            co_await s->async_connect(target(port), asio::use_awaitable);
            std::string req = "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n";
            co_await asio::async_write(*s, asio::buffer(req), asio::use_awaitable);
            std::string rest;
            co_await read_head(*s, rest);
            ++ready;
            char tmp[65536];
            std::string carry = rest;
            for (;;) {
                std::size_t pos = 0, found;
                while ((found = carry.find("event: message\n", pos)) != std::string::npos) {
                    pos = found + 1;
                    if (++delivered == expected) {
                        last_delivery = clock_type::now();
                        io.stop();
                    }
                }
                carry.erase(0, pos);
                asio::error_code ec;
                auto n = co_await s->async_read_some(asio::buffer(tmp), asio::redirect_error(asio::use_awaitable, ec));
                if (ec) co_return;
                carry.append(tmp, n);
            }
        }, asio::detached);
    }
    // Publisher: waits for every subscriber, then posts the events on one keep-alive connection.
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
        asio::steady_timer t(io);
        while (ready < subscribers) {
            t.expires_after(std::chrono::milliseconds(20));
            co_await t.async_wait(asio::use_awaitable);
        }
        t.expires_after(std::chrono::milliseconds(200));
        co_await t.async_wait(asio::use_awaitable);
        tcp::socket p(io);
        co_await p.async_connect(target(port), asio::use_awaitable);
        first_publish = clock_type::now();
        char tmp[4096];
        for (int e = 0; e < events; ++e) {
            std::string body = "event number " + std::to_string(e);
            std::string req = "POST /messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
            co_await asio::async_write(p, asio::buffer(req), asio::use_awaitable);
            std::string resp;
            while (resp.find("\r\n\r\n") == std::string::npos) {
                auto n = co_await p.async_read_some(asio::buffer(tmp), asio::use_awaitable);
                resp.append(tmp, n);
            }
        }
    }, asio::detached);
    asio::steady_timer guard(io, std::chrono::seconds(120));
    guard.async_wait([&](auto) { io.stop(); });
    io.run();
    double secs = std::chrono::duration<double>(last_delivery - first_publish).count();
    if (delivered < expected) {
        std::printf("incomplete: %ld of %ld deliveries\n", delivered.load(), expected);
        return 1;
    }
    std::printf("deliveries=%ld seconds=%.3f deliveries_per_second=%.0f\n", expected, secs, expected / secs);
    return 0;
}

int ws_mode(unsigned short port, int connections, int messages, const std::string& path) {
    const std::string handshake = ws_handshake_for(path);
    asio::io_context io{1};
    std::vector<double> latencies;
    latencies.reserve(static_cast<std::size_t>(connections) * messages);
    int done = 0;
    auto start = clock_type::now();
    for (int i = 0; i < connections; ++i) {
        asio::co_spawn(io, [&]() -> asio::awaitable<void> {
            tcp::socket s(io);
            co_await s.async_connect(target(port), asio::use_awaitable);
            s.set_option(tcp::no_delay(true));
            co_await asio::async_write(s, asio::buffer(handshake), asio::use_awaitable);
            std::string rest;
            co_await read_head(s, rest);
            auto frame = masked_text_frame("Hello, WebSocket echo benchmark!");
            std::string buf = rest;
            char tmp[4096];
            for (int m = 0; m < messages; ++m) {
                auto t0 = clock_type::now();
                co_await asio::async_write(s, asio::buffer(frame), asio::use_awaitable);
                while (buf.size() < 2 || buf.size() < 2u + static_cast<unsigned char>(buf[1])) {
                    auto n = co_await s.async_read_some(asio::buffer(tmp), asio::use_awaitable);
                    buf.append(tmp, n);
                }
                buf.erase(0, 2u + static_cast<unsigned char>(buf[1]));
                latencies.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
            }
            if (++done == connections) io.stop();
        }, asio::detached);
    }
    asio::steady_timer guard(io, std::chrono::seconds(120));
    guard.async_wait([&](auto) { io.stop(); });
    io.run();
    double secs = std::chrono::duration<double>(clock_type::now() - start).count();
    std::sort(latencies.begin(), latencies.end());
    double p99 = latencies.empty() ? 0 : latencies[latencies.size() * 99 / 100];
    std::printf("messages=%zu seconds=%.3f messages_per_second=%.0f p99_us=%.1f\n", latencies.size(), secs,
                latencies.size() / secs, p99);
    return done == connections ? 0 : 1;
}

int idle_mode(unsigned short port, int count, const std::string& kind) {
    asio::io_context io{1};
    std::vector<std::unique_ptr<tcp::socket>> sockets;
    int ready = 0;
    for (int i = 0; i < count; ++i) {
        sockets.push_back(std::make_unique<tcp::socket>(io));
        auto* s = sockets.back().get();
        asio::co_spawn(io, [&, s]() -> asio::awaitable<void> {
            co_await s->async_connect(target(port), asio::use_awaitable);
            std::string req = kind == "ws"    ? ws_handshake
                              : kind == "sse" ? "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n"
                                              : "GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
            co_await asio::async_write(*s, asio::buffer(req), asio::use_awaitable);
            std::string rest;
            co_await read_head(*s, rest);
            if (++ready == count) {
                std::printf("ready\n");
                std::fflush(stdout);
            }
        }, asio::detached);
    }
    std::thread t([&] { io.run(); });
    std::string line;
    std::getline(std::cin, line);
    io.stop();
    t.join();
    return ready == count ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: weir_load sse|ws|idle PORT N M|KIND\n");
        return 2;
    }
    std::string mode = argv[1];
    auto port = static_cast<unsigned short>(std::stoi(argv[2]));
    int n = std::stoi(argv[3]);
    if (mode == "sse") return sse_mode(port, n, std::stoi(argv[4]));
    if (mode == "ws") return ws_mode(port, n, std::stoi(argv[4]), argc > 5 ? argv[5] : "/echo");
    if (mode == "idle") return idle_mode(port, n, argv[4]);
    return 2;
}
