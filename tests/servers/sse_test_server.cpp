// A server for the SSE integration tests: finite and endless streams, a hub, and stages that add headers to
// the stream's head or refuse it after next.

#include "../../examples/example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>

#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<int> active_producers{0};
std::atomic<int> stalled_producers{0};
std::mutex flood_mutex;
std::vector<std::thread> floods; // publishers on threads of their own, joined before exit

struct cookies_and_id {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [](auto& reply) {
            reply.headers().add("Set-Cookie", "a=1; Path=/");
            reply.headers().add("Set-Cookie", "b=2; Path=/");
            reply.headers().set("X-Request-Id", "test-id-1");
            reply.headers().set("Access-Control-Allow-Origin", "*");
        });
    }
};

struct refuse_after_next {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [&](auto& reply) {
            if (req.path() == "/refused") reply.set_status(weir::status::unauthorized);
        });
    }
};

constexpr std::string_view page = R"(<!doctype html><meta charset="utf-8"><title>sse</title>
<ul id="log"></ul>
<script>
  const es = new EventSource("/events?n=5");
  window.received = [];
  es.addEventListener("tick", (e) => { window.received.push({id: e.lastEventId, data: e.data}); });
  es.onerror = () => { window.done = true; es.close(); };
</script>)";

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--port N] [--threads N]");
    // A replay buffer larger than a stream's queue: a resume may replay more than a queue holds.
    static weir::sse_hub hub(weir::sse_hub_options{.replay_capacity = 2000, .stream = {}});
    // A busy hub with large events, published from another thread (default stream bounds).
    static weir::sse_hub busy(weir::sse_hub_options{.replay_capacity = 16, .stream = {}});

    weir::pipeline app{
        cookies_and_id{},
        refuse_after_next{},
        weir::router{
            weir::get<"/page">([](const auto&) {
                return weir::response(weir::status::ok, std::string(page), "text/html; charset=utf-8");
            }),
            weir::get<"/events">([](const auto& req) {
                int n = std::stoi(req.query_param("n").value_or("3"));
                return weir::event_stream(req, [n](weir::sse_stream& out) -> asio::awaitable<void> {
                    for (int i = 1; i <= n; ++i) {
                        weir::sse_event e;
                        e.id = std::to_string(i);
                        e.event = "tick";
                        e.data = "event " + std::to_string(i) + "\nsecond line\r\nthird";
                        if (!co_await out.send(e)) co_return;
                    }
                });
            }),
            weir::any<"/stream">([](const auto& req) {
                std::string prompt(req.body());
                return weir::event_stream(req, [prompt](weir::sse_stream& out) -> asio::awaitable<void> {
                    for (char c : prompt) {
                        weir::sse_event e;
                        e.data = std::string(1, c);
                        if (!co_await out.send(e)) co_return;
                    }
                    weir::sse_event done;
                    done.data = "[DONE]";
                    co_await out.send(done);
                });
            }),
            weir::get<"/forever">([](const auto& req) {
                return weir::event_stream(req, [](weir::sse_stream& out) -> asio::awaitable<void> {
                    ++active_producers;
                    struct leave {
                        ~leave() { --active_producers; }
                    } guard;
                    asio::steady_timer t(out.get_executor());
                    for (int i = 0;; ++i) {
                        weir::sse_event e;
                        e.data = std::to_string(i);
                        if (!co_await out.send(e)) co_return;
                        t.expires_after(std::chrono::milliseconds(50));
                        co_await t.async_wait(asio::use_awaitable);
                    }
                });
            }),
            weir::get<"/refused">([](const auto& req) {
                return weir::event_stream(req, [](weir::sse_stream& out) -> asio::awaitable<void> {
                    weir::sse_event e;
                    e.data = "must never be sent";
                    co_await out.send(e);
                });
            }),
            weir::get<"/hub">([](const auto& req) { return hub.subscribe(req); }),
            weir::post<"/publish">([](const auto& req) {
                // ?n=N publishes the body N times; the answer is the last id.
                int n = std::stoi(req.query_param("n").value_or("1"));
                std::uint64_t id = 0;
                for (int i = 0; i < n; ++i) {
                    weir::sse_event e;
                    e.event = "message";
                    e.data = std::string(req.body());
                    id = hub.publish(std::move(e));
                }
                return weir::response(weir::status::accepted, std::to_string(id));
            }),
            weir::get<"/busy">([](const auto& req) { return busy.subscribe(req); }),
            weir::post<"/flood">([](const auto& req) {
                // Publishes n events of `size` bytes to the busy hub from another thread, one per interval.
                int n = std::stoi(req.query_param("n").value_or("100"));
                std::size_t size = std::stoul(req.query_param("size").value_or("65536"));
                int interval = std::stoi(req.query_param("interval_ms").value_or("5"));
                std::lock_guard lock(flood_mutex);
                floods.emplace_back([n, size, interval] {
                    for (int i = 0; i < n; ++i) {
                        weir::sse_event e;
                        e.data = std::string(size, 'x');
                        busy.publish(std::move(e));
                        std::this_thread::sleep_for(std::chrono::milliseconds(interval));
                    }
                });
                return weir::response(weir::status::accepted, "flooding");
            }),
            weir::get<"/stall">([](const auto& req) {
                // One event larger than any socket buffer, then silence: a client that never reads leaves
                // the write unfinished for ever, and no later event trips the queue's bounds.
                weir::sse_options o;
                o.write_timeout = std::chrono::milliseconds(1000);
                return weir::event_stream(
                    req,
                    [](weir::sse_stream& out) -> asio::awaitable<void> {
                        ++stalled_producers;
                        struct leave {
                            ~leave() { --stalled_producers; }
                        } guard;
                        weir::sse_event e;
                        e.data = std::string(16 * 1024 * 1024, 's');
                        if (!co_await out.send(e)) co_return;
                        asio::steady_timer t(out.get_executor(), asio::steady_timer::time_point::max());
                        co_await t.async_wait(asio::use_awaitable);
                    },
                    o);
            }),
            weir::get<"/quiet">([](const auto& req) {
                // Sends nothing: only heartbeats, every 200 ms.
                weir::sse_options o;
                o.heartbeat = std::chrono::milliseconds(200);
                return weir::event_stream(
                    req,
                    [](weir::sse_stream& out) -> asio::awaitable<void> {
                        ++active_producers;
                        struct leave {
                            ~leave() { --active_producers; }
                        } guard;
                        asio::steady_timer t(out.get_executor(), asio::steady_timer::time_point::max());
                        co_await t.async_wait(asio::use_awaitable);
                    },
                    o);
            }),
            weir::get<"/stats">([](const auto& req) {
                if (req.query_param("of") == "busy")
                    return weir::response(weir::status::ok, std::to_string(busy.subscriber_count()));
                if (req.query_param("of") == "stall")
                    return weir::response(weir::status::ok, std::to_string(stalled_producers.load()));
                return weir::response(weir::status::ok, std::to_string(hub.subscriber_count()) + " " +
                                                            std::to_string(active_producers.load()));
            }),
        },
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    std::lock_guard lock(flood_mutex);
    for (auto& t : floods) t.join();
    return 0;
}
