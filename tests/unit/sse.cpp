#include <weir/sse.hpp>

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

TEST_CASE("multi-line data becomes one data line per line, whatever the line terminator") {
    weir::sse_event e;
    e.data = "a\nb\r\nc\rd";
    CHECK(weir::encode(e) == "data: a\ndata: b\ndata: c\ndata: d\n\n");
}

TEST_CASE("id, event, retry and comment fields are encoded in order") {
    weir::sse_event e;
    e.comment = "note";
    e.id = "7";
    e.event = "update";
    e.retry = 2500;
    e.data = "x";
    CHECK(weir::encode(e) == ": note\nid: 7\nevent: update\nretry: 2500\ndata: x\n\n");
}

TEST_CASE("CR or LF in an id or event type, or NUL in an id, is refused rather than injecting a field") {
    weir::sse_event e;
    e.data = "x";
    e.id = "1\ndata: injected";
    CHECK_THROWS_AS(weir::encode(e), std::invalid_argument);
    e.id = std::string("1\0", 2);
    CHECK_THROWS_AS(weir::encode(e), std::invalid_argument);
    e.id.reset();
    e.event = "a\rb";
    CHECK_THROWS_AS(weir::encode(e), std::invalid_argument);
}

TEST_CASE("a multi-line comment stays a comment on every line") {
    weir::sse_event e;
    e.comment = "one\ndata: two";
    CHECK(weir::encode(e) == ": one\n: data: two\n\n");
}

TEST_CASE("an empty id is sent, so a client can reset its last event id") {
    weir::sse_event e;
    e.id = "";
    CHECK(weir::encode(e) == "id: \ndata: \n\n");
}

TEST_CASE("a pending SSE upgrade commits for 2xx only") {
    CHECK(weir::sse::commits(weir::status::ok));
    CHECK(weir::sse::commits(weir::status::accepted));
    CHECK(!weir::sse::commits(weir::status::unauthorized));
    CHECK(!weir::sse::commits(weir::status::switching_protocols));
}

TEST_CASE("a pending SSE upgrade is one pointer until its stream starts, so a committed stream keeps nothing of "
          "its setup") {
    static_assert(sizeof(weir::sse) == sizeof(void*));
    weir::sse_options options;
    options.retry = 1500;
    weir::sse s([](weir::sse_stream&) -> asio::awaitable<void> { co_return; }, "41", options);
    CHECK(s.last_event_id() == "41");
    weir::sse moved = std::move(s);
    CHECK(moved.last_event_id() == "41");
}

namespace {

// Just enough of a request for subscribe(): a Last-Event-ID header, or none.
struct fake_request {
    std::string last_id;
    std::optional<std::string_view> header(std::string_view) const {
        if (last_id.empty()) return std::nullopt;
        return std::string_view(last_id);
    }
    std::optional<std::string> query_param(std::string_view) const { return std::nullopt; }
};

// What the connection does after committing: run the session on its transport (both owned by this frame).
asio::awaitable<void> run_session(asio::ip::tcp::socket socket, weir::pending<weir::sse> p) {
    weir::transport transport(std::move(socket));
    weir::upgraded_connection link(transport, "");
    co_await p.session().run(link);
}

} // namespace

TEST_CASE("a hub publishing from another thread while event loops with subscribers end or are destroyed "
          "touches no loop that is gone, and its subscribers leave") {
    // Published as fast as one thread can: drop_oldest keeps the subscribers that cannot keep up.
    weir::sse_options stream;
    stream.on_full = weir::slow_consumer_policy::drop_oldest;
    weir::sse_hub hub(weir::sse_hub_options{.replay_capacity = 64, .stream = stream});
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> published{0};
    std::thread publisher([&] {
        while (!stop) {
            weir::sse_event e;
            e.data = "tick";
            hub.publish(std::move(e));
            ++published;
        }
    });
    for (int round = 0; round < 40; ++round) {
        std::vector<asio::ip::tcp::socket> clients;
        {
            auto io = std::make_unique<asio::io_context>(1);
            asio::ip::tcp::acceptor acceptor(*io, {asio::ip::address_v4::loopback(), 0});
            for (int i = 0; i < 4; ++i) {
                asio::ip::tcp::socket client(*io);
                client.connect(acceptor.local_endpoint());
                asio::ip::tcp::socket server_side = acceptor.accept();
                fake_request req{i % 2 ? std::to_string(hub.last_id() > 10 ? hub.last_id() - 10 : 0) : ""};
                asio::co_spawn(*io, run_session(std::move(server_side), hub.subscribe(req)), asio::detached);
                clients.push_back(std::move(client));
            }
            for (int wait = 0; wait < 5000 && hub.subscriber_count() < 4; ++wait)
                io->run_for(std::chrono::milliseconds(1));
            CHECK(hub.subscriber_count() == 4);
            io->run_for(std::chrono::milliseconds(2)); // deliver some
            if (round % 2) {
                // The clients leave: the streams end on their own and the loop runs out of work.
                for (auto& c : clients) c.close();
                clients.clear();
                io->restart();
                io->run_for(std::chrono::seconds(5));
                CHECK(hub.subscriber_count() == 0);
            } else {
                // The loop is destroyed with its streams suspended, while events are being published.
                for (auto& c : clients) c.close();
                clients.clear();
            }
        }
        CHECK(hub.subscriber_count() == 0);
    }
    stop = true;
    publisher.join();
    CHECK(published.load() > 0);
    weir::sse_event e;
    e.data = "after every loop is gone";
    CHECK(hub.publish(e) == published.load() + 1); // harmless: reaches no one
}

TEST_CASE("idle hub subscribers hold one entry each in the loop's deadline sweep and get an event in one pass") {
    weir::sse_options stream;
    stream.heartbeat = std::chrono::milliseconds(60'000);
    weir::sse_hub hub(weir::sse_hub_options{.stream = stream});
    asio::io_context io(1);
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
    auto& sweep = weir::detail::event_loop::of(io).deadlines();
    std::size_t before = sweep.size();
    std::vector<asio::ip::tcp::socket> clients;
    for (int i = 0; i < 3; ++i) {
        asio::ip::tcp::socket client(io);
        client.connect(acceptor.local_endpoint());
        asio::co_spawn(io, run_session(acceptor.accept(), hub.subscribe(fake_request{})), asio::detached);
        clients.push_back(std::move(client));
    }
    for (int wait = 0; wait < 5000 && hub.subscriber_count() < 3; ++wait) io.run_for(std::chrono::milliseconds(1));
    REQUIRE(hub.subscriber_count() == 3);
    CHECK(sweep.size() == before + 3); // a heartbeat each, and no timer of their own

    weir::sse_event e;
    e.data = "hello";
    hub.publish(e);
    // One delivery task for the loop writes to all three at once: a single handler run is enough.
    io.restart();
    for (int i = 0; i < 100 && io.poll_one() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (auto& c : clients) {
        std::string got(64, '\0');
        c.non_blocking(true);
        asio::error_code ec;
        std::size_t n = c.read_some(asio::buffer(got), ec);
        CHECK(!ec);
        CHECK(std::string_view(got.data(), n) == "id: 1\ndata: hello\n\n");
    }
    CHECK(sweep.size() == before + 3);

    for (auto& c : clients) c.close();
    io.restart();
    for (int wait = 0; wait < 5000 && hub.subscriber_count() > 0; ++wait) io.run_for(std::chrono::milliseconds(1));
    CHECK(hub.subscriber_count() == 0);
    CHECK(sweep.size() == before);
}
