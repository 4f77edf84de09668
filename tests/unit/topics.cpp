// weir::topics on real loopback sockets: SSE streams and WebSocket sessions subscribed to topics, replay and
// reset, bounded queues, run-time joins, and publishers on several threads (this file runs under TSan too).

#include <weir/topics.hpp>
#include <weir/websocket.hpp>

#include "socket_pair.hpp"

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <sys/socket.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Just enough of a request for subscribe(): a Last-Event-ID header, or none.
struct fake_request {
    std::optional<std::string> last_id;
    std::optional<std::string_view> header(std::string_view) const {
        if (!last_id) return std::nullopt;
        return std::string_view(*last_id);
    }
    std::optional<std::string> query_param(std::string_view) const { return std::nullopt; }
};

asio::awaitable<void> run_sse(std::shared_ptr<socket_pair> sockets, weir::pending<weir::sse> p) {
    weir::upgraded_connection link(sockets->server, "");
    co_await p.session().run(link);
    sockets->server.close();
}

// A stream's client end: what it read so far, parsed into (id, event, data) triples.
struct sse_client {
    std::shared_ptr<socket_pair> sockets;
    std::string text;

    struct event {
        std::string id, type, data;
    };

    // Reads what arrives within `wait` (the server's loop runs elsewhere, or is run by `pump`).
    void read_for(std::chrono::milliseconds wait, const std::function<void()>& pump = {}) {
        auto until = std::chrono::steady_clock::now() + wait;
        sockets->client.non_blocking(true);
        char buf[65536];
        while (std::chrono::steady_clock::now() < until) {
            if (pump) pump();
            asio::error_code ec;
            std::size_t n = sockets->client.read_some(asio::buffer(buf), ec);
            if (!ec) text.append(buf, n);
            else if (ec == asio::error::would_block) std::this_thread::sleep_for(1ms);
            else break;
        }
    }

    std::vector<event> events() const {
        std::vector<event> out;
        std::size_t at = 0;
        for (std::size_t end; (end = text.find("\n\n", at)) != std::string::npos; at = end + 2) {
            std::string_view block(text.data() + at, end - at);
            event e;
            bool any = false;
            for (std::size_t p = 0; p <= block.size();) {
                std::size_t nl = block.find('\n', p);
                if (nl == std::string_view::npos) nl = block.size();
                auto line = block.substr(p, nl - p);
                if (line.starts_with("id: ")) e.id = line.substr(4), any = true;
                else if (line.starts_with("event: ")) e.type = line.substr(7), any = true;
                else if (line.starts_with("data: ")) e.data = line.substr(6), any = true;
                p = nl + 1;
            }
            if (any) out.push_back(e);
        }
        return out;
    }
};

// Opens an SSE subscription on `io` (its loop) and returns its client end.
sse_client open_sse(asio::io_context& io, weir::pending<weir::sse> p,
                    std::shared_ptr<socket_pair> sockets = nullptr) {
    if (!sockets) sockets = std::make_shared<socket_pair>(io);
    asio::co_spawn(io, run_sse(sockets, std::move(p)), asio::detached);
    return sse_client{sockets, {}};
}

// A WebSocket session on `io` whose handler is `handler`; the client end reads the (unmasked) text frames.
struct ws_client {
    std::shared_ptr<socket_pair> sockets;
    std::string pending;
    std::vector<std::string> messages;
    bool closed = false;

    void read_for(std::chrono::milliseconds wait, const std::function<void()>& pump = {}) {
        auto until = std::chrono::steady_clock::now() + wait;
        sockets->client.non_blocking(true);
        char buf[65536];
        while (std::chrono::steady_clock::now() < until) {
            if (pump) pump();
            asio::error_code ec;
            std::size_t n = sockets->client.read_some(asio::buffer(buf), ec);
            if (!ec) {
                pending.append(buf, n);
                parse();
            } else if (ec == asio::error::would_block) {
                std::this_thread::sleep_for(1ms);
            } else {
                closed = true;
                break;
            }
        }
    }

    void parse() {
        while (pending.size() >= 2) {
            std::size_t len = std::uint8_t(pending[1]) & 0x7f, head = 2;
            if (len == 126) {
                if (pending.size() < 4) return;
                len = (std::size_t(std::uint8_t(pending[2])) << 8) | std::uint8_t(pending[3]);
                head = 4;
            }
            if (pending.size() < head + len) return;
            std::uint8_t opcode = pending[0] & 0x0f;
            if (opcode == 1) messages.push_back(pending.substr(head, len));
            if (opcode == 8) closed = true;
            pending.erase(0, head + len);
        }
    }
};

ws_client open_ws(asio::io_context& io, weir::websocket_handler handler, weir::websocket_options options = {},
                  std::shared_ptr<socket_pair> sockets = nullptr) {
    if (!sockets) sockets = std::make_shared<socket_pair>(io);
    auto link = std::make_shared<weir::upgraded_connection>(sockets->server, std::string());
    auto ws = std::make_shared<weir::websocket>(weir::websocket_handshake{"key", ""}, std::move(handler),
                                                std::move(options));
    asio::co_spawn(io, ws->run(*link), [sockets, link, ws](std::exception_ptr) { sockets->server.close(); });
    return ws_client{sockets, {}, {}};
}

// A handler that joins `names` and holds the membership until the peer leaves.
// `joined`, if given, counts the sessions that have joined all their topics (the subscriber count already
// counts one after its first topic).
weir::websocket_handler member_of(weir::topics t, std::vector<std::string> names, std::atomic<int>* joined = nullptr) {
    return [t, names, joined](weir::websocket_connection& ws) -> asio::awaitable<void> {
        auto member = t.join(ws);
        for (auto& n : names) member.join(n);
        if (joined) ++*joined;
        while (co_await ws.read()) {
        }
    };
}

void run_until(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until) {
        io.restart();
        io.run_for(1ms);
    }
}

// The WebSocket clients leave and their sessions end (their handlers return, so their memberships go) before
// the loop is destroyed.
void end_sessions(asio::io_context& io, weir::topics& t, std::vector<ws_client*> clients) {
    for (auto* c : clients) c->sockets->client.close();
    run_until(io, [&] { return t.subscriber_count() == 0; });
    CHECK(t.subscriber_count() == 0);
}

std::vector<std::string> ids_of(const std::vector<sse_client::event>& events) {
    std::vector<std::string> out;
    for (auto& e : events) out.push_back(e.type == "reset" ? "reset" : e.id);
    return out;
}

} // namespace

TEST_CASE("one publish reaches the SSE streams and WebSocket sessions of its topic, and no one else") {
    asio::io_context io;
    weir::topics t;
    auto sse_news = open_sse(io, t.subscribe(fake_request{}, {"news"}));
    auto sse_sport = open_sse(io, t.subscribe(fake_request{}, {"sport"}));
    auto ws_news = open_ws(io, member_of(t, {"news"}));
    auto ws_both = open_ws(io, member_of(t, {"sport", "news"}));
    run_until(io, [&] { return t.subscriber_count() == 4; });
    REQUIRE(t.subscriber_count() == 4);

    auto first = t.publish("news", "hello");
    auto second = t.publish("sport", "goal");
    CHECK(second == first + 1);
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    sse_news.read_for(100ms, pump);
    sse_sport.read_for(50ms, pump);
    ws_news.read_for(50ms, pump);
    ws_both.read_for(50ms, pump);

    CHECK(sse_news.text == "id: " + std::to_string(first) + "\ndata: hello\n\n");
    CHECK(sse_sport.text == "id: " + std::to_string(second) + "\ndata: goal\n\n");
    CHECK(ws_news.messages == std::vector<std::string>{"hello"});
    CHECK(ws_both.messages == std::vector<std::string>{"hello", "goal"});
    sse_news.sockets->client.close();
    sse_sport.sockets->client.close();
    end_sessions(io, t, {&ws_news, &ws_both});
}

TEST_CASE("a burst published between two loop turns reaches each subscriber whole and in order") {
    asio::io_context io;
    weir::topics t;
    auto sse = open_sse(io, t.subscribe(fake_request{}, {"a"}));
    auto ws = open_ws(io, member_of(t, {"a"}));
    run_until(io, [&] { return t.subscriber_count() == 2; });
    std::vector<std::string> published;
    for (int i = 0; i < 10; ++i) published.push_back(std::to_string(t.publish("a", "m" + std::to_string(i))));
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    sse.read_for(100ms, pump);
    ws.read_for(100ms, pump);
    CHECK(ids_of(sse.events()) == published);
    REQUIRE(ws.messages.size() == 10);
    for (int i = 0; i < 10; ++i) CHECK(ws.messages[i] == "m" + std::to_string(i));
    sse.sockets->client.close();
    end_sessions(io, t, {&ws});
}

TEST_CASE("a publish's WebSocket frame is made once for small payloads; frames of every length arrive whole, in "
          "order, in a pass longer than one run") {
    auto event_of = [](std::string data) {
        weir::sse_event e;
        e.data = std::move(data);
        return e;
    };
    auto small = weir::make_topic_event(1, "a", event_of(std::string(126, 'x')));
    REQUIRE(small->websocket_frame);
    CHECK(small->websocket_header == 4);
    CHECK(*small->websocket_frame == std::string("\x81\x7e\x00\x7e", 4) + std::string(126, 'x'));
    auto large = weir::make_topic_event(2, "a", event_of(std::string(1025, 'y')));
    CHECK(!large->websocket_frame); // each session lays out the header in front of the shared payload
    CHECK(*large->websocket == std::string(1025, 'y'));

    asio::io_context io;
    weir::topics t;
    auto ws = open_ws(io, member_of(t, {"a"}));
    auto other = open_ws(io, member_of(t, {"a"}));
    run_until(io, [&] { return t.subscriber_count() == 2; });
    const std::size_t sizes[] = {0, 1, 125, 126, 1024, 1025, 60000};
    std::vector<std::string> published;
    for (int i = 0; i < 40; ++i) { // one pass: more than a run's 32 events
        std::string text(sizes[i % 7], static_cast<char>('a' + i % 26));
        if (!text.empty()) text[0] = static_cast<char>('0' + i % 10);
        published.push_back(text);
        t.publish("a", std::move(text));
    }
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    ws.read_for(300ms, pump);
    other.read_for(100ms, pump);
    CHECK(ws.messages == published);
    CHECK(other.messages == published);
    end_sessions(io, t, {&ws, &other});
}

TEST_CASE("a WebSocket session joins and leaves topics at run time") {
    asio::io_context io;
    weir::topics t;
    std::atomic<int> step{0};
    auto ws = open_ws(io, [&t, &step](weir::websocket_connection& c) -> asio::awaitable<void> {
        auto member = t.join(c, "a");
        CHECK(!member.join("a")); // already joined
        while (auto m = co_await c.read()) {
            if (m->data == "switch") {
                CHECK(member.leave("a"));
                CHECK(!member.leave("a"));
                CHECK(member.join("b"));
                step = 1;
            }
        }
    });
    run_until(io, [&] { return t.subscriber_count() == 1; });
    t.publish("a", "a1");
    t.publish("b", "b1"); // not joined yet
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    ws.read_for(50ms, pump);
    CHECK(ws.messages == std::vector<std::string>{"a1"});
    // A masked text frame "switch" from the client.
    const char mask[4] = {1, 2, 3, 4};
    std::string frame = "\x81\x86";
    frame.append(mask, 4);
    std::string word = "switch";
    for (std::size_t i = 0; i < word.size(); ++i) frame += char(word[i] ^ mask[i % 4]);
    ws.sockets->client.non_blocking(false);
    asio::write(ws.sockets->client, asio::buffer(frame));
    run_until(io, [&] { return step == 1; });
    t.publish("a", "a2");
    t.publish("b", "b2");
    ws.read_for(50ms, pump);
    CHECK(ws.messages == std::vector<std::string>{"a1", "b2"});
    CHECK(t.subscriber_count() == 1);
    end_sessions(io, t, {&ws});
}

TEST_CASE("a stream resuming with Last-Event-ID gets the events it missed, then live ones, with no reset") {
    asio::io_context io;
    weir::topics t;
    t.retain("a");
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(std::to_string(t.publish("a", "e" + std::to_string(i))));
    t.publish("b", "elsewhere");
    auto sse = open_sse(io, t.subscribe(fake_request{ids[1]}, {"a"}));
    run_until(io, [&] { return t.subscriber_count() == 1; });
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    sse.read_for(50ms, pump);
    ids.push_back(std::to_string(t.publish("a", "live")));
    sse.read_for(50ms, pump);
    CHECK(ids_of(sse.events()) == std::vector<std::string>(ids.begin() + 2, ids.end()));
}

TEST_CASE("a resume older than the history, or with an id the topics never gave, starts with one reset event") {
    asio::io_context io;
    weir::topics t(weir::topics_options{.history = {.events = 3}});
    t.retain("a");
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) ids.push_back(std::to_string(t.publish("a", "e" + std::to_string(i))));
    auto old = open_sse(io, t.subscribe(fake_request{ids[1]}, {"a"}));
    auto future = open_sse(io, t.subscribe(fake_request{"99999"}, {"a"}));
    auto garbage = open_sse(io, t.subscribe(fake_request{"not-an-id"}, {"a"}));
    auto fresh = open_sse(io, t.subscribe(fake_request{}, {"a"}));
    run_until(io, [&] { return t.subscriber_count() == 4; });
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    old.read_for(50ms, pump);
    auto live = std::to_string(t.publish("a", "live"));
    for (auto* c : {&old, &future, &garbage, &fresh}) c->read_for(50ms, pump);

    CHECK(ids_of(old.events()) == std::vector<std::string>{"reset", ids[7], ids[8], ids[9], live});
    CHECK(old.text.starts_with("event: reset\ndata: \n\n")); // no id: the client keeps its last id
    CHECK(ids_of(future.events()) == std::vector<std::string>{"reset", live});
    CHECK(ids_of(garbage.events()) == std::vector<std::string>{"reset", live});
    CHECK(ids_of(fresh.events()) == std::vector<std::string>{live});
}

TEST_CASE("a topic nobody subscribes to keeps nothing, so a resume into it is a reset") {
    asio::io_context io;
    weir::topics t;
    auto before = t.publish("quiet", "nobody hears this");
    auto sse = open_sse(io, t.subscribe(fake_request{std::to_string(before - 1)}, {"quiet"}));
    run_until(io, [&] { return t.subscriber_count() == 1; });
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    sse.read_for(50ms, pump);
    CHECK(ids_of(sse.events()) == std::vector<std::string>{"reset"});
}

TEST_CASE("a stream subscribed to two topics resumes both from one id, in id order") {
    asio::io_context io;
    weir::topics t;
    t.retain("a");
    t.retain("b");
    auto start = t.publish("a", "a0");
    std::vector<std::string> ids{std::to_string(t.publish("b", "b1")), std::to_string(t.publish("a", "a2")),
                                 std::to_string(t.publish("c", "c3")), std::to_string(t.publish("b", "b4"))};
    ids.erase(ids.begin() + 2); // c is not subscribed
    auto sse = open_sse(io, t.subscribe(fake_request{std::to_string(start)}, {"a", "b"}));
    run_until(io, [&] { return t.subscriber_count() == 1; });
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    sse.read_for(50ms, pump);
    CHECK(ids_of(sse.events()) == ids);
}

TEST_CASE("a topic named twice in one subscription is one registration: each event once, live and replayed") {
    asio::io_context io;
    weir::topics t;
    t.retain("a");
    auto start = t.publish("a", "a0");
    auto missed = std::to_string(t.publish("a", "a1"));
    auto sse = open_sse(io, t.subscribe(fake_request{std::to_string(start)}, {"a", "a"}));
    run_until(io, [&] { return t.subscriber_count() == 1; });
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    sse.read_for(50ms, pump);
    auto live = std::to_string(t.publish("a", "a2"));
    sse.read_for(50ms, pump);
    CHECK(ids_of(sse.events()) == std::vector<std::string>{missed, live});
}

TEST_CASE("a replay far larger than the stream's queue is paced by the client and never trips the policy") {
    asio::io_context io;
    weir::sse_options stream;
    stream.queue_capacity = 16;
    stream.queue_bytes = 1024;
    weir::topics t(weir::topics_options{.history = {.events = 5000}, .stream = stream});
    t.retain("a");
    auto first = t.publish("a", "first");
    for (int i = 0; i < 3000; ++i) t.publish("a", std::string(40, 'x'));
    auto sse = open_sse(io, t.subscribe(fake_request{std::to_string(first)}, {"a"}));
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    sse.read_for(1500ms, pump);
    auto events = sse.events();
    REQUIRE(events.size() == 3000);
    CHECK(events.front().id == std::to_string(first + 1));
    CHECK(events.back().id == std::to_string(first + 3000));
    CHECK(t.subscriber_count() == 1);
}

TEST_CASE("a subscriber that stops reading hits its byte bound: disconnect closes it, drop_oldest keeps it") {
    for (auto policy : {weir::slow_consumer_policy::disconnect, weir::slow_consumer_policy::drop_oldest}) {
        asio::io_context io;
        weir::sse_options stream;
        stream.queue_bytes = 64 * 1024;
        stream.on_full = policy;
        weir::topics t(weir::topics_options{.history = {.events = 0}, .stream = stream});
        auto sse = open_sse(io, t.subscribe(fake_request{}, {"a"}));
        asio::socket_base::receive_buffer_size small(4096);
        sse.sockets->client.set_option(small);
        run_until(io, [&] { return t.subscriber_count() == 1; });
        // Far more than the socket buffers and the queue hold; the client reads nothing.
        for (int i = 0; i < 200; ++i) {
            for (int k = 0; k < 20; ++k) t.publish("a", std::string(4000, 'x'));
            io.restart();
            io.run_for(1ms);
        }
        run_until(io, [&] { return t.subscriber_count() == 0; }, 500ms);
        if (policy == weir::slow_consumer_policy::disconnect) CHECK(t.subscriber_count() == 0);
        else CHECK(t.subscriber_count() == 1);
    }
}

TEST_CASE("a WebSocket subscriber whose send queue is full is closed with 1008, or misses the event, or misses "
          "the oldest held events") {
    for (auto policy : {weir::websocket_subscriber_policy::close_session, weir::websocket_subscriber_policy::drop_message,
                        weir::websocket_subscriber_policy::drop_oldest}) {
        asio::io_context io;
        weir::topics t(weir::topics_options{.websocket_on_full = policy});
        weir::websocket_options o;
        o.send_queue_bytes = 64 * 1024;
        o.close_timeout = 100ms;
        auto ws = open_ws(io, member_of(t, {"a"}), o);
        asio::socket_base::receive_buffer_size small(4096);
        ws.sockets->client.set_option(small);
        run_until(io, [&] { return t.subscriber_count() == 1; });
        for (int i = 0; i < 200; ++i) {
            for (int k = 0; k < 20; ++k) t.publish("a", std::string(4000, 'x'));
            io.restart();
            io.run_for(1ms);
        }
        run_until(io, [&] { return t.subscriber_count() == 0; }, 1s);
        if (policy == weir::websocket_subscriber_policy::close_session) CHECK(t.subscriber_count() == 0);
        else CHECK(t.subscriber_count() == 1);
        end_sessions(io, t, {&ws});
    }
}

TEST_CASE("drop_oldest: a WebSocket subscriber that stops reading keeps its session, loses the oldest held "
          "events and gets the newest once it reads again") {
    asio::io_context io;
    weir::topics t(weir::topics_options{.websocket_on_full = weir::websocket_subscriber_policy::drop_oldest,
                                        .websocket_backlog_bytes = 64 * 1024});
    weir::websocket_options o;
    o.send_queue_bytes = 64 * 1024;
    auto ws = open_ws(io, member_of(t, {"a"}), o);
    run_until(io, [&] { return t.subscriber_count() == 1; });
    // 2,000 events of 4 KB in one delivery pass: the send queue takes 64 KiB, the backlog keeps the newest
    // 64 KiB, the rest is dropped. The client reads nothing until all of it has been handed out.
    constexpr int total = 2000;
    for (int i = 0; i < total; ++i) t.publish("a", std::to_string(i) + " " + std::string(4000, 'x'));
    run_until(io, [] { return false; }, 200ms);
    CHECK(t.subscriber_count() == 1);
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    ws.read_for(3000ms, pump); // the held events are offered as the session's queue drains
    REQUIRE(!ws.messages.empty());
    std::vector<int> got;
    for (auto& m : ws.messages) got.push_back(std::stoi(m.substr(0, m.find(' '))));
    CHECK(got.front() == 0);          // what reached the send queue before it filled went out
    CHECK(got.back() == total - 1);   // the newest arrived
    CHECK(got.size() < std::size_t(total));
    std::size_t gaps = 0;
    for (std::size_t i = 1; i < got.size(); ++i) {
        CHECK(got[i] > got[i - 1]);
        if (got[i] != got[i - 1] + 1) ++gaps;
    }
    CHECK(gaps == 1); // the oldest held events, and only they, were dropped
    // What the backlog held came after the gap (events of 4 KB, 64 KiB held).
    std::size_t after_gap = got.end() - std::adjacent_find(got.begin(), got.end(), [](int a, int b) { return b != a + 1; }) - 1;
    CHECK(after_gap >= 10);
    CHECK(after_gap <= 20);
    CHECK(!ws.closed);
    CHECK(t.subscriber_count() == 1);
    end_sessions(io, t, {&ws});
}

namespace {

// The server's end of a connection that takes at most `limit` bytes a write (what a socket whose buffer is
// nearly full does), sent as they are.
struct trickle_layer final : weir::detail::secure_layer {
    explicit trickle_layer(std::size_t limit) : limit(limit) {}
    int fd = -1;
    std::size_t limit;
    std::size_t partial_writes = 0; // writes that took less than they were offered

    bool handshake(asio::error_code&) override { return true; }
    std::size_t read(asio::mutable_buffer b, asio::error_code& ec) override {
        ssize_t n = ::recv(fd, b.data(), b.size(), MSG_DONTWAIT);
        if (n > 0) return std::size_t(n);
        if (n == 0) ec = asio::error::eof;
        else if (errno == EAGAIN || errno == EWOULDBLOCK) ec = asio::error::would_block;
        else ec = asio::error_code(errno, asio::system_category());
        return 0;
    }
    std::size_t write(const asio::const_buffer* buffers, std::size_t count, asio::error_code& ec) override {
        std::string bytes;
        for (std::size_t i = 0; i < count; ++i)
            bytes.append(static_cast<const char*>(buffers[i].data()), buffers[i].size());
        std::size_t offered = std::min(bytes.size(), limit);
        ssize_t n = ::send(fd, bytes.data(), offered, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            ec = errno == EAGAIN || errno == EWOULDBLOCK ? asio::error::would_block
                                                         : asio::error_code(errno, asio::system_category());
            return 0;
        }
        if (std::size_t(n) < bytes.size()) ++partial_writes;
        return std::size_t(n);
    }
    bool has_buffered_input() const noexcept override { return false; }
    bool has_backlog() const noexcept override { return false; }
    bool send_backlog(asio::error_code&) override { return true; }
    void shutdown() noexcept override {}
    std::string_view application_protocol() const noexcept override { return {}; }
    bool answered_plain_http() const noexcept override { return false; }
};

// A socket pair whose server end writes through a trickle_layer of `limit` bytes a write; `layer` is set to it.
std::shared_ptr<socket_pair> trickling_pair(asio::io_context& io, std::size_t limit, trickle_layer*& layer) {
    auto owned = std::make_unique<trickle_layer>(limit);
    layer = owned.get();
    auto sockets = std::make_shared<socket_pair>(io, std::move(owned));
    layer->fd = sockets->server.lowest_layer().native_handle();
    return sockets;
}

} // namespace

TEST_CASE("a WebSocket subscriber whose socket takes only part of a pass's frames gets the rest after it, whole "
          "and in order, with the passes that follow") {
    asio::io_context io;
    weir::topics t;
    // Every write takes at most 1,000 bytes: each pass's one write (straight from the events' frames) is cut
    // short, and what it did not write waits in the send queue, ahead of the next passes' events.
    trickle_layer* trickle = nullptr;
    auto sockets = trickling_pair(io, 1000, trickle);
    auto ws = open_ws(io, member_of(t, {"a"}), {}, sockets);
    run_until(io, [&] { return t.subscriber_count() == 1; });
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    std::vector<std::string> published;
    for (int pass = 0; pass < 10; ++pass) {
        for (int k = 0; k < 5 + pass; ++k) { // each a frame made by the publish (at most 1 KiB)
            published.push_back(std::to_string(published.size()) + " " + std::string(300 + 10 * k, 'x'));
            t.publish("a", published.back());
        }
        // The pass, and (on every other pass) the rest written before the next: so passes find the session
        // both idle and still writing.
        if (pass % 2 == 0) ws.read_for(30ms, pump);
        else pump();
    }
    CHECK(t.subscriber_count() == 1);
    for (int i = 0; i < 100 && ws.messages.size() < published.size(); ++i) ws.read_for(20ms, pump);
    CHECK(trickle->partial_writes >= 5);
    CHECK(ws.messages == published);
    CHECK(ws.pending.empty());
    // And a pass after the queue has drained is written at once again.
    t.publish("a", "after");
    ws.read_for(50ms, pump);
    REQUIRE(!ws.messages.empty());
    CHECK(ws.messages.back() == "after");
    end_sessions(io, t, {&ws});
}

TEST_CASE("a pass larger than the send queue's bounds meets the slow-consumer policy even when the session's "
          "socket could take it all") {
    // The send queue's bounds count a pass's events as they are handed to an idle session, as they did when every
    // event was queued before the write: with drop_message, what comes once 4 KiB wait is dropped.
    asio::io_context io;
    weir::topics t(weir::topics_options{.websocket_on_full = weir::websocket_subscriber_policy::drop_message});
    weir::websocket_options o;
    o.send_queue_bytes = 4096;
    auto ws = open_ws(io, member_of(t, {"a"}), o);
    run_until(io, [&] { return t.subscriber_count() == 1; });
    for (int i = 0; i < 20; ++i) t.publish("a", std::to_string(i) + std::string(999, 'x')); // 1000-byte messages
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    ws.read_for(100ms, pump);
    REQUIRE(ws.messages.size() == 5); // queued with 0, 1000, 2000, 3000 and 4000 bytes waiting ahead
    for (int i = 0; i < 5; ++i) CHECK(ws.messages[i] == std::to_string(i) + std::string(999, 'x'));
    // The queue's message count bounds a pass the same way.
    o.send_queue_bytes = 4 * 1024 * 1024;
    o.send_queue_capacity = 3;
    auto counted = open_ws(io, member_of(t, {"a"}), o);
    run_until(io, [&] { return t.subscriber_count() == 2; });
    for (int i = 0; i < 10; ++i) t.publish("a", "c" + std::to_string(i));
    counted.read_for(100ms, pump);
    CHECK(counted.messages == std::vector<std::string>{"c0", "c1", "c2"});
    end_sessions(io, t, {&ws, &counted});
}

TEST_CASE("an SSE subscriber whose socket takes only part of a pass's events gets the rest after it, whole and "
          "in order, with the passes that follow") {
    asio::io_context io;
    weir::topics t;
    // Every write takes at most 1,000 bytes: each pass's one write (straight from the events' bytes) is cut
    // short, and what it did not write waits in the stream's queue, ahead of the next passes' events.
    trickle_layer* trickle = nullptr;
    auto sockets = trickling_pair(io, 1000, trickle);
    auto sse = open_sse(io, t.subscribe(fake_request{}, {"a"}), sockets);
    run_until(io, [&] { return t.subscriber_count() == 1; });
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    std::vector<std::string> published;
    for (int pass = 0; pass < 10; ++pass) {
        for (int k = 0; k < 1 + pass; ++k) { // one alone first, then runs of several
            published.push_back(std::to_string(published.size()) + " " + std::string(700 + 10 * k, 'x'));
            t.publish("a", published.back());
        }
        // The pass, and (on every other pass) the rest written before the next: so passes find the stream both
        // idle and still writing.
        if (pass % 2 == 0) sse.read_for(30ms, pump);
        else pump();
    }
    for (int i = 0; i < 100 && sse.events().size() < published.size(); ++i) sse.read_for(20ms, pump);
    CHECK(trickle->partial_writes >= 5);
    auto events = sse.events();
    REQUIRE(events.size() == published.size());
    for (std::size_t i = 0; i < events.size(); ++i) CHECK(events[i].data == published[i]);
    // And a pass after the queue has drained is written at once again.
    t.publish("a", "after");
    sse.read_for(50ms, pump);
    CHECK(sse.events().back().data == "after");
    CHECK(t.subscriber_count() == 1);
}

TEST_CASE("a pass larger than an SSE stream's queue bounds meets its slow-consumer policy even when its socket "
          "could take it all") {
    // The queue's bounds count a pass's events as they are handed to an idle stream, as they did when every
    // event was queued before the write.
    asio::io_context io;
    auto pump = [&] { io.restart(); io.run_for(1ms); };
    std::vector<std::string> published;
    for (int i = 0; i < 20; ++i) published.push_back(std::to_string(i) + std::string(999, 'x'));
    for (auto policy : {weir::slow_consumer_policy::disconnect, weir::slow_consumer_policy::drop_oldest}) {
        weir::sse_options stream;
        stream.queue_bytes = 4096;
        stream.on_full = policy;
        weir::topics t(weir::topics_options{.history = {.events = 0}, .stream = stream});
        auto sse = open_sse(io, t.subscribe(fake_request{}, {"a"}));
        run_until(io, [&] { return t.subscriber_count() == 1; });
        for (auto& p : published) t.publish("a", p); // one pass of 20 events of about 1 KB
        sse.read_for(100ms, pump);
        auto events = sse.events();
        if (policy == weir::slow_consumer_policy::disconnect) {
            CHECK(events.empty()); // closed when the fifth did not fit, before anything was written
            CHECK(t.subscriber_count() == 0);
        } else {
            // The oldest made room for the newest: the last four fit 4 KiB.
            REQUIRE(events.size() == 4);
            for (std::size_t i = 0; i < 4; ++i) CHECK(events[i].data == published[16 + i]);
            CHECK(t.subscriber_count() == 1);
        }
    }
    // The queue's event count bounds a pass the same way.
    weir::sse_options stream;
    stream.queue_capacity = 3;
    stream.on_full = weir::slow_consumer_policy::drop_oldest;
    weir::topics t(weir::topics_options{.history = {.events = 0}, .stream = stream});
    auto counted = open_sse(io, t.subscribe(fake_request{}, {"a"}));
    run_until(io, [&] { return t.subscriber_count() == 1; });
    for (int i = 0; i < 10; ++i) t.publish("a", "c" + std::to_string(i));
    counted.read_for(100ms, pump);
    auto events = counted.events();
    REQUIRE(events.size() == 3);
    CHECK(events[0].data == "c7");
    CHECK(events[2].data == "c9");
}

TEST_CASE("publishers on four threads reach SSE and WebSocket subscribers on four loops: every event once, in "
          "order, while other subscribers come and go") {
    constexpr int loops = 4, per_loop = 6, publishers = 4, per_publisher = 150;
    weir::topics t(weir::topics_options{.history = {.events = 10}});
    std::vector<std::unique_ptr<asio::io_context>> ios;
    std::vector<sse_client> streams;
    std::vector<ws_client> sessions;
    std::atomic<int> joined{0};
    for (int l = 0; l < loops; ++l) {
        ios.push_back(std::make_unique<asio::io_context>(1));
        for (int i = 0; i < per_loop; ++i) {
            streams.push_back(open_sse(*ios.back(), t.subscribe(fake_request{}, {"all", "loop" + std::to_string(l)})));
            sessions.push_back(open_ws(*ios.back(), member_of(t, {"loop" + std::to_string(l), "all"}, &joined)));
        }
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (auto& io : ios)
        threads.emplace_back([&, io = io.get()] {
            auto work = asio::make_work_guard(*io);
            while (!stop) io->run_for(10ms);
        });
    // Every session has joined "all" too, not only its first topic: events published before would not be its.
    for (int wait = 0; wait < 5000 && (t.subscriber_count() < loops * per_loop * 2 || joined < loops * per_loop); ++wait)
        std::this_thread::sleep_for(1ms);
    REQUIRE(t.subscriber_count() == loops * per_loop * 2);
    REQUIRE(joined == loops * per_loop);

    // Churn: short-lived subscribers on every loop while the events are published.
    std::thread churn([&] {
        for (int round = 0; round < 20; ++round)
            for (auto& io : ios) {
                auto c = std::make_shared<sse_client>(open_sse(*io, t.subscribe(fake_request{}, {"all"})));
                std::this_thread::sleep_for(1ms);
                asio::post(*io, [c] { c->sockets->client.close(); });
            }
    });
    std::vector<std::thread> pubs;
    for (int p = 0; p < publishers; ++p)
        pubs.emplace_back([&, p] {
            for (int i = 0; i < per_publisher; ++i) t.publish("all", "p" + std::to_string(p) + " " + std::to_string(i));
        });
    for (auto& th : pubs) th.join();
    churn.join();

    constexpr std::size_t total = publishers * per_publisher;
    for (auto& s : streams) {
        // Up to 10 s: a sanitized build on a loaded two-core machine is slow; a complete stream ends the wait.
        for (int wait = 0; wait < 500 && s.events().size() < total; ++wait) s.read_for(20ms);
        auto events = s.events();
        CHECK(events.size() == total);
        bool ordered = true;
        for (std::size_t i = 1; i < events.size(); ++i) ordered = ordered && std::stoull(events[i - 1].id) < std::stoull(events[i].id);
        CHECK(ordered);
    }
    for (auto& s : sessions) {
        for (int wait = 0; wait < 500 && s.messages.size() < total; ++wait) s.read_for(20ms);
        CHECK(s.messages.size() == total);
        // Each publisher's events arrive in the order it published them.
        std::vector<int> next(publishers, 0);
        bool ordered = true;
        for (auto& m : s.messages) {
            int p = m[1] - '0';
            ordered = ordered && m == "p" + std::to_string(p) + " " + std::to_string(next[p]++);
        }
        CHECK(ordered);
    }
    // The WebSocket clients leave and their sessions end; the streams stay open while their loops are destroyed.
    for (auto& c : sessions) c.sockets->client.close();
    for (int wait = 0; wait < 5000 && t.subscriber_count() > streams.size(); ++wait) std::this_thread::sleep_for(1ms);
    CHECK(t.subscriber_count() == streams.size());
    stop = true;
    for (auto& th : threads) th.join();
    sessions.clear();
    streams.clear(); // the socket pairs stay with the streams' sessions, open
    ios.clear();     // the loops are destroyed with their streams open: the streams leave
    CHECK(t.subscriber_count() == 0);
    CHECK(t.publish("all", "to no one") > total);
}

namespace {

// A subscriber of the delivery pass itself: records the ids it is handed, and may leave from inside a pass
// (as a stream whose write fails, or a session its slow-consumer policy closes, does).
struct recording_subscriber final : weir::detail::topic_subscriber {
    explicit recording_subscriber(std::shared_ptr<weir::detail::topic_fanout> f) : fanout(std::move(f)) {}
    ~recording_subscriber() override { fanout->remove_all(*this); }

    void queue(const weir::topic_event& e) override {
        ids.push_back(e.id);
        if (leave_on_queue) fanout->remove_all(*this);
    }
    void flush() override {
        ++flushes;
        if (leave_on_flush) fanout->remove_all(*this);
        if (on_flush) on_flush();
    }

    std::shared_ptr<weir::detail::topic_fanout> fanout;
    std::vector<std::uint64_t> ids;
    int flushes = 0;
    bool leave_on_queue = false, leave_on_flush = false;
    std::function<void()> on_flush;
};

weir::sse_event event_with(std::string data) {
    weir::sse_event e;
    e.data = std::move(data);
    return e;
}

} // namespace

TEST_CASE("subscribers that leave during a delivery pass make no other subscriber miss an event") {
    asio::io_context io;
    auto fanout = std::make_shared<weir::detail::topic_fanout>(
        std::make_shared<weir::in_process_topic_backend>(weir::topic_history_options{}));
    fanout->connect();
    auto executor = asio::any_io_executor(io.get_executor());
    std::vector<std::unique_ptr<recording_subscriber>> subs;
    for (int i = 0; i < 6; ++i) {
        subs.push_back(std::make_unique<recording_subscriber>(fanout));
        fanout->add(*subs.back(), executor, "t");
        fanout->go_live(*subs.back(), 0);
    }
    // The first leaves as its event is queued, the third once it has written: with the last member moved into
    // their places, the members after them would be passed over.
    subs[0]->leave_on_queue = true;
    subs[2]->leave_on_flush = true;
    // The fourth, as it writes, ends the fifth (a user's callback may close another session).
    subs[3]->on_flush = [&] { subs[4].reset(); };
    auto first = fanout->backend().publish("t", event_with("a"));
    io.run();
    io.restart();
    CHECK(subs[0]->ids == std::vector<std::uint64_t>{first});
    CHECK(subs[1]->ids == std::vector<std::uint64_t>{first});
    CHECK(subs[2]->ids == std::vector<std::uint64_t>{first});
    CHECK(subs[3]->ids == std::vector<std::uint64_t>{first});
    CHECK(!subs[4]);
    CHECK(subs[5]->ids == std::vector<std::uint64_t>{first});
    CHECK(fanout->subscriber_count() == 3);

    // Later passes reach those left, once each, the list's holes closed; a pass longer than one run
    // (flushes at its end) with a subscriber that leaves during it.
    subs[3]->on_flush = nullptr;
    subs[1]->leave_on_queue = true;
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back(fanout->backend().publish("t", event_with("b")));
    io.run();
    CHECK(subs[1]->ids == std::vector<std::uint64_t>{first, ids[0]});
    std::vector<std::uint64_t> all{first};
    all.insert(all.end(), ids.begin(), ids.end());
    CHECK(subs[3]->ids == all);
    CHECK(subs[5]->ids == all);
    CHECK(subs[3]->flushes == 2); // the first pass; then its two runs, flushed once at the pass's end
    CHECK(fanout->subscriber_count() == 2);
}
