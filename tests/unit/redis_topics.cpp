// The Redis Streams topic backend: stream ids packed into event ids, Redis URLs, a publish that fails fast
// when Redis is not there, and, against a redis-server this test starts, publishing, reading, replaying and
// trimming.

#ifdef WEIR_HAS_HIREDIS

#include <weir/detail/redis_stream_id.hpp>
#include <weir/topics/redis.hpp>

#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

std::uint16_t unused_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::address_v4::loopback(), 0});
    return a.local_endpoint().port();
}

// A redis-server of its own on a free loopback port, without persistence; stopped when destroyed.
class redis_server {
public:
    redis_server() : port_(unused_port()) {
        std::vector<std::string> args{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t quiet;
        posix_spawn_file_actions_init(&quiet);
        posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
        if (posix_spawnp(&pid_, "redis-server", &quiet, nullptr, argv.data(), environ) != 0) pid_ = 0;
        posix_spawn_file_actions_destroy(&quiet);
    }
    ~redis_server() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    bool started() const { return pid_ > 0; }
    std::uint16_t port() const { return port_; }

    // Waits until it accepts connections.
    bool ready() const {
        for (int i = 0; i < 200; ++i) {
            asio::io_context io;
            asio::ip::tcp::socket s(io);
            asio::error_code ec;
            s.connect({asio::ip::address_v4::loopback(), port_}, ec);
            if (!ec) return true;
            std::this_thread::sleep_for(25ms);
        }
        return false;
    }

private:
    std::uint16_t port_;
    pid_t pid_ = 0;
};

// Collects what a backend hands on.
struct collected {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<weir::topic_backend::event_ptr> events;

    weir::topic_backend::sink sink() {
        return [this](const weir::topic_backend::event_ptr& e) {
            std::lock_guard lock(mutex);
            events.push_back(e);
            changed.notify_all();
        };
    }
    bool wait_for(std::size_t n) {
        std::unique_lock lock(mutex);
        return changed.wait_for(lock, 10s, [&] { return events.size() >= n; });
    }
};

weir::sse_event message(std::string data, std::string type = {}) {
    weir::sse_event e;
    e.event = std::move(type);
    e.data = std::move(data);
    return e;
}

bool redis_server_installed() {
    return std::filesystem::exists("/usr/bin/redis-server") || std::system("command -v redis-server >/dev/null") == 0;
}

} // namespace

TEST_CASE("stream ids pack into event ids that keep their order and unpack to the same id") {
    using weir::detail::pack_stream_id;
    using weir::detail::stream_id_string;
    CHECK(pack_stream_id("0-0") == 0u);
    CHECK(pack_stream_id("0-1") == 1u);
    CHECK(pack_stream_id("1-0") == (std::uint64_t{1} << 20));
    std::vector<std::string> ordered{"0-1", "0-1048575", "1-0", "1-1", "1700000000000-0", "1700000000000-7",
                                     "1700000000001-0", "17592186044415-1048575"};
    for (std::size_t i = 0; i < ordered.size(); ++i) {
        auto id = pack_stream_id(ordered[i]);
        REQUIRE(id);
        CHECK(stream_id_string(*id) == ordered[i]);
        if (i > 0) CHECK(*pack_stream_id(ordered[i - 1]) < *id);
    }
}

TEST_CASE("what is not a stream id, or lies outside the packing's range, is refused") {
    using weir::detail::pack_stream_id;
    for (const char* bad : {"", "1", "-1", "1-", "-", "a-1", "1-b", "+1-0", "1-+0", " 1-0", "1-0 ", "1--1", "1-2-3",
                            "1-1048576", "17592186044416-0", "99999999999999999999-0"})
        CHECK_MESSAGE(!pack_stream_id(bad), bad);
}

TEST_CASE("a Redis URL gives the host and the port, 6379 by default") {
    auto o = weir::parse_redis_url("redis://10.0.0.5:7000");
    CHECK(o.host == "10.0.0.5");
    CHECK(o.port == 7000);
    o = weir::parse_redis_url("redis://cache.internal");
    CHECK(o.host == "cache.internal");
    CHECK(o.port == 6379);
    o = weir::parse_redis_url("redis://[::1]:6380/");
    CHECK(o.host == "::1");
    CHECK(o.port == 6380);
    for (const char* bad : {"http://x", "redis://", "redis://:6379", "redis://h:0", "redis://h:70000", "redis://h:x",
                            "redis://user:pw@h:1", "redis://h:1/2"})
        CHECK_THROWS_AS_MESSAGE(weir::parse_redis_url(bad), std::invalid_argument, bad);
}

TEST_CASE("a publish fails fast with topic_publish_error when no Redis listens, and listening does not fail") {
    weir::redis_topic_options o;
    o.port = unused_port();
    weir::redis_topic_backend backend(o);
    backend.listen("room");
    auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(backend.publish("room", message("lost")), weir::topic_publish_error);
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    auto r = backend.read_after("room", 5, 10);
    CHECK(!r.complete);
    CHECK(r.events.empty());
    CHECK(backend.last_id("room") == 0);
    backend.unlisten("room");
}

TEST_CASE("events published to Redis reach every backend listening, in order, and replay from memory or Redis") {
    if (!redis_server_installed()) {
        MESSAGE("redis-server is not installed: skipped");
        return;
    }
    redis_server redis;
    REQUIRE(redis.started());
    REQUIRE(redis.ready());
    weir::redis_topic_options o;
    o.port = redis.port();
    o.key_prefix = "unit:";
    o.max_length = 10; // MAXLEN ~ trims whole nodes of 100 entries: see the trimming below
    o.kept_events = 3;
    weir::redis_topic_backend a(o), b(o);
    collected at_a, at_b;
    a.set_sink(at_a.sink());
    b.set_sink(at_b.sink());
    a.listen("t");
    b.listen("t");
    b.listen("other");

    std::vector<std::uint64_t> ids;
    for (int i = 0; i < 5; ++i) ids.push_back((i % 2 ? a : b).publish("t", message(std::to_string(i))));
    b.publish("other", message("elsewhere", "note"));
    for (std::size_t i = 1; i < ids.size(); ++i) CHECK(ids[i - 1] < ids[i]);
    REQUIRE(at_a.wait_for(5));
    REQUIRE(at_b.wait_for(6));
    std::this_thread::sleep_for(100ms);
    {
        std::lock_guard la(at_a.mutex);
        REQUIRE(at_a.events.size() == 5); // a does not listen to "other"
        for (int i = 0; i < 5; ++i) {
            CHECK(at_a.events[static_cast<std::size_t>(i)]->id == ids[static_cast<std::size_t>(i)]);
            CHECK(*at_a.events[static_cast<std::size_t>(i)]->websocket == std::to_string(i));
        }
    }
    CHECK(a.last_id("t") == ids.back());

    // The last 3 are kept in memory; earlier ones come from Redis; both are complete.
    auto kept = a.read_after("t", ids[1], 10);
    CHECK(kept.complete);
    REQUIRE(kept.events.size() == 3);
    CHECK(kept.events[0]->id == ids[2]);
    auto fetched = a.read_after("t", ids[0], 2);
    CHECK(fetched.complete);
    REQUIRE(fetched.events.size() == 2);
    CHECK(fetched.events[0]->id == ids[1]);
    CHECK(fetched.events[1]->id == ids[2]);
    CHECK(fetched.events[0]->sse->find("id: " + std::to_string(ids[1]) + "\n") != std::string::npos);
    // Not an id the stream gave out: greater than its last, or older than its first (a stream that started over).
    CHECK(!a.read_after("t", ids.back() + 1, 10).complete);
    CHECK(!a.read_after("t", ids.front() - 1, 10).complete);
    CHECK(!b.read_after("other", 5, 10).complete); // b kept all of "other": its first entry came after 5
    CHECK(a.read_after("t", 0, 10).complete);      // from the start: nothing was trimmed
    // No such stream: complete only from 0.
    CHECK(!a.read_after("nothing here", 7, 10).complete);
    CHECK(a.read_after("nothing here", 0, 10).complete);

    // Trimming: MAXLEN ~ drops whole nodes (100 entries by default), so 300 more leave the first ones gone.
    a.listen("long");
    auto first = a.publish("long", message("first"));
    for (int i = 0; i < 300; ++i) a.publish("long", message("x"));
    a.unlisten("long"); // nothing kept in memory: the read goes to Redis
    auto trimmed = a.read_after("long", first, 10);
    CHECK(!trimmed.complete);
    REQUIRE(!trimmed.events.empty());
    // From the first entry kept on, nothing is missing.
    CHECK(a.read_after("long", trimmed.events.front()->id, 10).complete);

    // The last owner may let go from the sink, on the backend's own thread (a topics object destroyed while an
    // event is handed on): the backend cannot join its thread there, and must not try.
    auto doomed = std::make_shared<weir::redis_topic_backend>(o);
    std::promise<void> gone;
    auto gone_future = gone.get_future();
    doomed->set_sink([holder = &doomed, &gone](const weir::topic_backend::event_ptr&) {
        holder->reset(); // the only reference: the backend is destroyed here
        gone.set_value();
    });
    doomed->listen("self");
    a.publish("self", message("the last event"));
    CHECK(gone_future.wait_for(10s) == std::future_status::ready);
}

#endif
