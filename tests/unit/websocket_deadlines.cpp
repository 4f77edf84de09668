// A session's deadlines (ping after quiet, idle timeout, close timeout) come from its event loop's deadline
// sweep: they fire on time, within the sweep's granularity, without a timer per session.

#include <weir/websocket.hpp>

#include "socket_pair.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;


struct frame_seen {
    std::uint8_t opcode;
    clock_type::duration at;
};

// Runs a session on the server end (as a committed upgrade would) and records, on the client end, the frames
// the server sends and when the connection ends, until `io` runs out of work or `limit` passes.
struct session_run {
    asio::io_context io;
    socket_pair sockets{io};
    clock_type::time_point start = clock_type::now();
    std::vector<frame_seen> frames;
    std::optional<clock_type::duration> session_ended, connection_ended;
    std::string pending;
    char buffer[512];

    void run(weir::websocket_handler handler, weir::websocket_options options, clock_type::duration limit) {
        auto link = std::make_shared<weir::upgraded_connection>(sockets.server, std::string());
        auto ws = std::make_shared<weir::websocket>(weir::websocket_handshake{"key", ""}, std::move(handler),
                                                    std::move(options));
        asio::co_spawn(io, ws->run(*link), [this, link, ws](std::exception_ptr) {
            session_ended = clock_type::now() - start;
            asio::error_code ec;
            sockets.server.close(); // as the connection does once run returns
        });
        read_frames();
        io.run_for(limit);
    }

    void read_frames() {
        sockets.client.async_read_some(asio::buffer(buffer), [this](asio::error_code ec, std::size_t n) {
            if (ec) {
                connection_ended = clock_type::now() - start;
                return;
            }
            pending.append(buffer, n);
            // Server frames are unmasked; these tests see only short ones.
            while (pending.size() >= 2 && pending.size() >= 2 + std::size_t(pending[1] & 0x7f)) {
                frames.push_back({std::uint8_t(pending[0] & 0x0f), clock_type::now() - start});
                pending.erase(0, 2 + std::size_t(pending[1] & 0x7f));
            }
            read_frames();
        });
    }

    // Sends a masked client frame (with a zero key, so the payload goes as it is).
    void send(std::uint8_t opcode, std::string payload = {}) {
        std::string f;
        f.push_back(static_cast<char>(0x80 | opcode));
        f.push_back(static_cast<char>(0x80 | payload.size()));
        f.append(4, '\0');
        f += payload;
        asio::write(sockets.client, asio::buffer(f));
    }

    // Closes the way a client does: a close frame (1000), then the end of what it sends.
    void send_close() {
        send(0x8, std::string("\x03\xe8", 2));
        sockets.client.shutdown(asio::socket_base::shutdown_send);
    }
};

asio::awaitable<void> read_all(weir::websocket_connection& ws) {
    while (auto message = co_await ws.read()) {
    }
}

std::size_t count(const std::vector<frame_seen>& frames, std::uint8_t opcode) {
    std::size_t n = 0;
    for (auto& f : frames) n += f.opcode == opcode;
    return n;
}

} // namespace

TEST_CASE("a quiet session is pinged after ping_interval and dropped after idle_timeout when the peer is silent") {
    session_run r;
    weir::websocket_options o;
    o.ping_interval = 200ms;
    o.idle_timeout = 700ms;
    r.run(read_all, o, 5s);
    REQUIRE(!r.frames.empty());
    CHECK(r.frames[0].opcode == 0x9);
    CHECK(r.frames[0].at >= 200ms);
    CHECK(r.frames[0].at < 450ms); // ping_interval plus the sweep's granularity, with room for a slow machine
    // Quiet goes on: one ping per interval, and nothing else (no close: a silent peer is simply dropped).
    CHECK(count(r.frames, 0x9) >= 2);
    CHECK(count(r.frames, 0x9) == r.frames.size());
    REQUIRE(r.session_ended);
    CHECK(*r.session_ended >= 700ms);
    CHECK(*r.session_ended < 1200ms);
    REQUIRE(r.connection_ended);
}

TEST_CASE("a peer that keeps talking is neither pinged nor dropped") {
    session_run r;
    weir::websocket_options o;
    o.ping_interval = 300ms;
    o.idle_timeout = 500ms;
    // Every 100 ms the peer pings (and the session answers); after 1.2 s it closes.
    asio::steady_timer tick(r.io);
    int sent = 0;
    std::function<void()> next = [&] {
        tick.expires_after(100ms);
        tick.async_wait([&](asio::error_code ec) {
            if (ec) return;
            if (++sent < 12) {
                r.send(0x9, "still here");
                next();
            } else {
                r.send_close();
            }
        });
    };
    next();
    r.run(read_all, o, 5s);
    CHECK(count(r.frames, 0x9) == 0);
    CHECK(count(r.frames, 0xA) == 11);
    CHECK(count(r.frames, 0x8) == 1);
    REQUIRE(r.session_ended);
    CHECK(*r.session_ended >= 1200ms);
}

TEST_CASE("a close the peer never answers ends the session after close_timeout") {
    session_run r;
    weir::websocket_options o;
    o.close_timeout = 300ms;
    r.run([](weir::websocket_connection& ws) -> asio::awaitable<void> { co_await ws.close(); }, o, 5s);
    REQUIRE(!r.frames.empty());
    CHECK(r.frames[0].opcode == 0x8);
    REQUIRE(r.session_ended);
    CHECK(*r.session_ended >= 300ms);
    CHECK(*r.session_ended < 800ms);
}

TEST_CASE("an idle session arms deadlines on its loop's sweep and none once it ended") {
    session_run r;
    weir::websocket_options o;
    o.ping_interval = 10s;
    o.idle_timeout = 20s;
    auto& sweep = weir::detail::event_loop::of(r.io).deadlines();
    std::size_t while_idle = 0;
    asio::steady_timer look(r.io, 100ms);
    look.async_wait([&](asio::error_code) {
        while_idle = sweep.size();
        r.send_close();
    });
    r.run(read_all, o, 5s);
    CHECK(while_idle == 2); // ping and idle; no timer of its own
    REQUIRE(r.session_ended);
    CHECK(sweep.size() == 0);
}
