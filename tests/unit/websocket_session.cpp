// A WebSocket session over a real socket pair, as a committed upgrade runs it (weir::websocket::start): driven by
// callbacks, reading as the socket becomes readable, ending through its `done` callback.

#include <weir/websocket.hpp>

#include "socket_pair.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct frame_seen {
    std::uint8_t opcode;
    std::string payload;
};

// A masked client frame (with a zero key, so the payload goes as it is); short payloads only.
std::string client_frame(std::uint8_t opcode, std::string_view payload) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | opcode));
    f.push_back(static_cast<char>(0x80 | payload.size()));
    f.append(4, '\0');
    f += payload;
    return f;
}

const std::string close_1000("\x03\xe8", 2);

// Starts `ws` on the server end with `leftover` as the bytes that came with the handshake, and records on the
// client end the frames the server sends, until `io` runs out of work or `limit` passes.
struct session_run {
    asio::io_context io;
    socket_pair sockets{io};
    std::vector<frame_seen> frames;
    bool ended = false;
    std::exception_ptr error;
    bool connection_ended = false;
    std::string pending;
    char buffer[512];

    void run(weir::websocket ws, std::string leftover, std::chrono::milliseconds limit) {
        auto link = std::make_shared<weir::upgraded_connection>(sockets.server, std::move(leftover));
        auto protocol = std::make_shared<weir::websocket>(std::move(ws));
        protocol->start(*link, [this, link, protocol](std::exception_ptr e) {
            ended = true;
            error = std::move(e);
            sockets.server.close(); // as the connection does once the session ended
        });
        read_frames();
        io.run_for(limit);
    }

    void read_frames() {
        sockets.client.async_read_some(asio::buffer(buffer), [this](asio::error_code ec, std::size_t n) {
            if (ec) {
                connection_ended = true;
                return;
            }
            pending.append(buffer, n);
            while (pending.size() >= 2 && pending.size() >= 2 + std::size_t(pending[1] & 0x7f)) {
                std::size_t size = std::size_t(pending[1] & 0x7f);
                frames.push_back({std::uint8_t(pending[0] & 0x0f), pending.substr(2, size)});
                pending.erase(0, 2 + size);
            }
            read_frames();
        });
    }

    void send(std::uint8_t opcode, std::string_view payload = {}) {
        asio::write(sockets.client, asio::buffer(client_frame(opcode, payload)));
    }

    // The client sends its close (1000) and its FIN after `delay`, answering the server's close as a client does
    // or starting the handshake itself.
    void close_from_client_after(std::chrono::milliseconds delay) {
        client_close.expires_after(delay);
        client_close.async_wait([this](asio::error_code) {
            send(0x8, close_1000);
            sockets.client.shutdown(asio::socket_base::shutdown_send);
        });
    }
    asio::steady_timer client_close{io};
};

weir::websocket with_callbacks(weir::websocket_callbacks callbacks, weir::websocket_options options = {}) {
    return weir::websocket(weir::websocket_handshake{"key", ""}, std::move(callbacks), std::move(options));
}

} // namespace

TEST_CASE("a session driven by callbacks opens, answers each message in order and hears the peer's close") {
    session_run r;
    std::vector<std::string> seen;
    std::optional<weir::websocket_close_status> closed;
    bool opened = false;
    weir::websocket_callbacks cb;
    cb.on_open = [&](weir::websocket_connection&) { opened = true; };
    cb.on_message = [&](weir::websocket_connection& ws, weir::websocket_message m) {
        seen.push_back(m.data);
        CHECK(ws.try_send("echo " + m.data));
    };
    cb.on_close = [&](weir::websocket_connection&, const weir::websocket_close_status& s) { closed = s; };
    // The first message came with the handshake; the others arrive later in one piece, the close after them
    // (a close read with them would drop the answers still queued: RFC 6455 lets a closing side stop sending).
    std::string later = client_frame(0x1, "two") + client_frame(0x1, "three");
    asio::post(r.io, [&] { asio::write(r.sockets.client, asio::buffer(later)); });
    r.close_from_client_after(200ms);
    r.run(with_callbacks(cb), client_frame(0x1, "one"), 5000ms);
    CHECK(opened);
    CHECK(seen == std::vector<std::string>{"one", "two", "three"});
    REQUIRE(r.frames.size() == 4);
    CHECK(r.frames[0].payload == "echo one");
    CHECK(r.frames[2].payload == "echo three");
    CHECK(r.frames[3].opcode == 0x8);
    CHECK(r.frames[3].payload == close_1000); // the peer's code, answered
    REQUIRE(closed);
    CHECK(closed->code == weir::close_code::normal);
    CHECK(closed->by_peer);
    CHECK(r.ended);
    CHECK(!r.error);
    CHECK(r.connection_ended);
}

TEST_CASE("a callback that throws closes the session with 1011, no later callback runs, and done gets the error") {
    session_run r;
    int messages = 0;
    bool close_heard = false;
    weir::websocket_callbacks cb;
    cb.on_message = [&](weir::websocket_connection&, weir::websocket_message) {
        ++messages;
        throw std::runtime_error("handler failed");
    };
    cb.on_close = [&](weir::websocket_connection&, const weir::websocket_close_status&) { close_heard = true; };
    std::string frames = client_frame(0x1, "a") + client_frame(0x1, "b");
    asio::post(r.io, [&] { asio::write(r.sockets.client, asio::buffer(frames)); });
    // The client answers the server's close, as a client does.
    r.close_from_client_after(200ms);
    r.run(with_callbacks(cb), {}, 5000ms);
    CHECK(messages == 1);
    CHECK(!close_heard);
    REQUIRE(!r.frames.empty());
    CHECK(r.frames.back().opcode == 0x8);
    CHECK(r.frames.back().payload.substr(0, 2) == std::string("\x03\xf3", 2)); // 1011
    CHECK(r.ended);
    CHECK(r.error);
}

TEST_CASE("a coroutine handler that reads nothing stops the reading once the inbox is full; reading resumes with it") {
    session_run r;
    weir::websocket_options o;
    o.inbox_bytes = 10; // two 8-byte messages fill it
    std::shared_ptr<weir::websocket_connection> session;
    std::vector<std::string> seen;
    bool go = false;
    asio::steady_timer gate(r.io, std::chrono::steady_clock::time_point::max());
    weir::websocket_handler handler = [&](weir::websocket_connection& ws) -> asio::awaitable<void> {
        asio::error_code ec;
        while (!go) co_await gate.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        while (auto m = co_await ws.read()) seen.push_back(m->data);
    };
    std::string frames;
    for (int i = 0; i < 5; ++i) frames += client_frame(0x1, "message" + std::to_string(i));
    frames += client_frame(0x8, close_1000);
    asio::post(r.io, [&] {
        asio::write(r.sockets.client, asio::buffer(frames));
        r.sockets.client.shutdown(asio::socket_base::shutdown_send);
    });
    asio::steady_timer later(r.io, 200ms);
    later.async_wait([&](asio::error_code) {
        CHECK(r.frames.empty()); // the close is not read yet: it waits behind the messages
        go = true;
        gate.cancel();
    });
    r.run(weir::websocket(weir::websocket_handshake{"key", ""}, handler, o), {}, 5000ms);
    CHECK(seen == std::vector<std::string>{"message0", "message1", "message2", "message3", "message4"});
    REQUIRE(r.frames.size() == 1);
    CHECK(r.frames[0].opcode == 0x8);
    CHECK(r.ended);
}

TEST_CASE("a coroutine handler answers every message of one packet in order and may close in the middle of it") {
    // The handler resumes once the read pass that brought the messages ends; whatever it does then (send,
    // close) acts on the session at once.
    session_run r;
    std::vector<std::string> seen;
    weir::websocket_handler handler = [&](weir::websocket_connection& ws) -> asio::awaitable<void> {
        while (auto m = co_await ws.read()) {
            seen.push_back(m->data);
            if (m->data == "quit") {
                co_await ws.close(weir::close_code::going_away, "bye");
                break;
            }
            CHECK(co_await ws.send("echo " + m->data));
        }
    };
    std::string frames;
    for (auto* text : {"a", "b", "c", "quit", "unread"}) frames += client_frame(0x1, text);
    asio::post(r.io, [&] { asio::write(r.sockets.client, asio::buffer(frames)); });
    r.close_from_client_after(200ms);
    r.run(weir::websocket(weir::websocket_handshake{"key", ""}, handler, {}), {}, 5000ms);
    CHECK(seen == std::vector<std::string>{"a", "b", "c", "quit"});
    REQUIRE(r.frames.size() == 4);
    CHECK(r.frames[0].payload == "echo a");
    CHECK(r.frames[1].payload == "echo b");
    CHECK(r.frames[2].payload == "echo c");
    CHECK(r.frames[3].opcode == 0x8);
    CHECK(r.frames[3].payload == std::string("\x03\xe9", 2) + "bye"); // 1001
    CHECK(r.ended);
    CHECK(!r.error);
    CHECK(r.connection_ended);
}

TEST_CASE("a coroutine handler that throws on a message closes the session with 1011 and done gets the error") {
    session_run r;
    int messages = 0;
    weir::websocket_handler handler = [&](weir::websocket_connection& ws) -> asio::awaitable<void> {
        while (auto m = co_await ws.read()) {
            ++messages;
            if (m->data == "b") throw std::runtime_error("handler failed");
            co_await ws.send("echo " + m->data);
        }
    };
    std::string frames = client_frame(0x1, "a") + client_frame(0x1, "b") + client_frame(0x1, "c");
    asio::post(r.io, [&] { asio::write(r.sockets.client, asio::buffer(frames)); });
    r.close_from_client_after(200ms);
    r.run(weir::websocket(weir::websocket_handshake{"key", ""}, handler, {}), {}, 5000ms);
    CHECK(messages == 2);
    REQUIRE(r.frames.size() == 2);
    CHECK(r.frames[0].payload == "echo a");
    CHECK(r.frames[1].opcode == 0x8);
    CHECK(r.frames[1].payload.substr(0, 2) == std::string("\x03\xf3", 2)); // 1011
    CHECK(r.ended);
    CHECK(r.error);
}

TEST_CASE("a started session lets go of what only its start needed, and the protocol object stays small") {
    // The connection keeps the committed pending<websocket> for as long as the session runs.
    CHECK(sizeof(weir::pending<weir::websocket>) <= 128);
    CHECK(sizeof(weir::websocket_connection) <= 480);
    session_run r;
    weir::websocket_callbacks cb;
    auto protocol = std::make_shared<weir::websocket>(
        weir::websocket(weir::websocket_handshake{"key", "chat"}, std::move(cb), weir::websocket_options{}));
    CHECK(protocol->subprotocol() == "chat");
    weir::upgraded_connection link(r.sockets.server, {});
    bool ended = false;
    protocol->start(link, [&](std::exception_ptr) { ended = true; });
    CHECK(protocol->subprotocol() == "chat"); // now the session's
    r.send(0x8, close_1000);
    r.sockets.client.shutdown(asio::socket_base::shutdown_send);
    r.read_frames();
    r.io.run_for(2000ms);
    CHECK(ended);
}

TEST_CASE("sessions on one event loop share one copy of equal limits, and different limits get their own") {
    asio::io_context io;
    socket_pair a(io), b(io), c(io);
    weir::websocket_options options;
    weir::websocket_connection first(a.server, options), second(b.server, options);
    auto& table = weir::detail::ws_limits_table::of(io);
    CHECK(table.kept() == 1);
    options.idle_timeout = 1234ms;
    weir::websocket_connection third(c.server, options);
    CHECK(table.kept() == 2);
}

TEST_CASE("a session keeps answering after its send queue went back to the loop between messages") {
    session_run r;
    std::vector<std::string> seen;
    weir::websocket_callbacks cb;
    cb.on_message = [&](weir::websocket_connection& ws, weir::websocket_message m) {
        seen.push_back(m.data);
        CHECK(ws.try_send("echo " + m.data));
    };
    asio::steady_timer later(r.io, 100ms);
    later.async_wait([&](asio::error_code) {
        CHECK(r.frames.size() == 1); // answered, then quiet: the next answer takes a queue from the loop again
        r.send(0x1, "two");
    });
    r.close_from_client_after(300ms);
    r.run(with_callbacks(cb), client_frame(0x1, "one"), 5000ms);
    CHECK(seen == std::vector<std::string>{"one", "two"});
    REQUIRE(r.frames.size() == 3);
    CHECK(r.frames[0].payload == "echo one");
    CHECK(r.frames[1].payload == "echo two");
    CHECK(r.frames[2].opcode == 0x8);
    CHECK(r.ended);
}
