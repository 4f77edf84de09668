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
#include <string>

namespace {

std::atomic<int> active_producers{0};

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
    static weir::sse_hub hub(weir::sse_hub_options{.replay_capacity = 1000, .stream = {}});

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
                weir::sse_event e;
                e.event = "message";
                e.data = std::string(req.body());
                auto id = hub.publish(std::move(e));
                return weir::response(weir::status::accepted, std::to_string(id));
            }),
            weir::get<"/stats">([](const auto&) {
                return weir::response(weir::status::ok, std::to_string(hub.subscriber_count()) + " " +
                                                            std::to_string(active_producers.load()));
            }),
        },
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
