// websocket_sender from other threads: every call after its session, or its whole event loop, is gone is a
// harmless no-op that returns false, and a call racing the session's end never touches freed memory (these
// tests run under ASan and TSan too).

#include <weir/websocket.hpp>

#include "socket_pair.hpp"

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

TEST_CASE("a sender used after its session and its event loop are gone does nothing and returns false") {
    std::shared_ptr<weir::websocket_sender> sender;
    {
        asio::io_context io;
        socket_pair sockets(io);
        auto session = std::make_shared<weir::websocket_connection>(sockets.server, weir::websocket_options{});
        sender = session->sender();
        CHECK(sender->alive());
        session.reset();
        CHECK(!sender->alive());
    }
    // The io_context is destroyed: a post to its executor would touch freed memory.
    CHECK(!sender->send("late"));
    CHECK(!sender->send_binary(std::string("late")));
    CHECK(!sender->send_shared(std::make_shared<const std::string>("late")));
    CHECK(!sender->close(weir::close_code::going_away, "late"));
    CHECK(!sender->alive());
}

TEST_CASE("a sender outliving an event loop that still holds its session does nothing once the loop is gone") {
    std::shared_ptr<weir::websocket_sender> sender;
    {
        asio::io_context io;
        socket_pair sockets(io);
        auto session = std::make_shared<weir::websocket_connection>(sockets.server, weir::websocket_options{});
        sender = session->sender();
        // A handler still queued on the loop holds the session: it dies with the loop, unrun.
        asio::post(io, [session] {});
        session.reset();
        CHECK(sender->send("queued while the loop exists"));
    }
    CHECK(!sender->close());
    CHECK(!sender->send("after the loop"));
}

TEST_CASE("senders on other threads racing the session's end and the loop's destruction stay harmless") {
    for (int round = 0; round < 20; ++round) {
        std::vector<std::shared_ptr<weir::websocket_sender>> senders;
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        {
            asio::io_context io;
            socket_pair sockets(io);
            auto session = std::make_shared<weir::websocket_connection>(sockets.server, weir::websocket_options{});
            for (int i = 0; i < 3; ++i) senders.push_back(session->sender());
            auto work = asio::make_work_guard(io);
            std::thread loop([&] { io.run(); });
            for (int i = 0; i < 3; ++i)
                threads.emplace_back([&, s = senders[static_cast<std::size_t>(i)], i] {
                    for (int n = 0; !stop.load(); ++n) {
                        s->send("hello from " + std::to_string(i));
                        if (i == 2 && n == 100) s->close(weir::close_code::going_away);
                        std::this_thread::yield();
                    }
                });
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            // The session ends on its own thread while the senders keep going.
            asio::post(io, [&session] { session.reset(); });
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            work.reset();
            io.stop();
            loop.join();
        } // the loop is destroyed while the senders still run
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        stop = true;
        for (auto& t : threads) t.join();
        for (auto& s : senders) CHECK(!s->send("after"));
    }
}
