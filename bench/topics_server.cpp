// The server side of the topics benchmark: one thread, subscribers of one topic over SSE or WebSocket, and a
// publishing endpoint, so that the server's CPU time per delivery is the library's fan-out and nothing else.
//   GET  /events     an SSE stream subscribed to the topic (no heartbeats)
//   GET  /ws         a WebSocket session subscribed to the topic
//   POST /publish    publishes the body to the topic; 202
//   GET  /stats      subscribers
//
//   weir_topics_server [--port N]
//
// Built with WEIR_TOPICS_BASELINE defined (and an older weir's include directory), the same routes use what
// came before topics: the SSE hub and a hand-written broadcast with websocket_sender::send_shared, so
// bench/run.py --only topics can put both side by side.

#include "../examples/example_options.hpp"

#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>
#include <weir/websocket.hpp>
#ifndef WEIR_TOPICS_BASELINE
#include <weir/topics.hpp>
#endif

#include <sys/resource.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

void raise_descriptor_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
}

weir::sse_options stream_options() {
    weir::sse_options o;
    o.heartbeat = std::chrono::milliseconds(0);
    return o;
}

#ifndef WEIR_TOPICS_BASELINE
struct fan_out {
    weir::topics topics{weir::topics_options{.history = {.events = 16}, .stream = stream_options()}};
    std::atomic<std::size_t> sessions{0};

    template <class Request>
    weir::pending<weir::sse> subscribe(const Request& req) { return topics.subscribe(req, {"bench"}); }
    asio::awaitable<void> session(weir::websocket_connection& ws) {
        auto member = topics.join(ws, "bench");
        while (co_await ws.read()) {
        }
    }
    void publish(std::string text) { topics.publish("bench", std::move(text)); }
    std::size_t count() { return topics.subscriber_count(); }
};
#else
struct fan_out {
    weir::sse_hub hub{weir::sse_hub_options{.replay_capacity = 16, .stream = stream_options()}};
    std::mutex mutex;
    std::vector<std::shared_ptr<weir::websocket_sender>> senders;

    template <class Request>
    weir::pending<weir::sse> subscribe(const Request& req) { return hub.subscribe(req); }
    asio::awaitable<void> session(weir::websocket_connection& ws) {
        auto me = ws.sender();
        {
            std::lock_guard lock(mutex);
            senders.push_back(me);
        }
        while (co_await ws.read()) {
        }
        std::lock_guard lock(mutex);
        std::erase(senders, me);
    }
    void publish(std::string text) {
        weir::sse_event e;
        e.data = text;
        hub.publish(std::move(e));
        auto payload = std::make_shared<const std::string>(std::move(text));
        std::lock_guard lock(mutex);
        for (auto& s : senders) s->send_shared(payload);
    }
    std::size_t count() {
        std::lock_guard lock(mutex);
        return hub.subscriber_count() + senders.size();
    }
};
#endif

} // namespace

int main(int argc, char** argv) {
    raise_descriptor_limit();
    weir::server_options options;
    options.max_connections = 100'000;
    examples::parse_command_line(argc, argv, options, "[--port N]");
    auto out = std::make_shared<fan_out>();
    weir::websocket_options ws;
    ws.ping_interval = std::chrono::milliseconds(0);
    ws.idle_timeout = std::chrono::milliseconds(0);

    weir::router app{
        weir::get<"/events">([out](const weir::request<>& req) { return out->subscribe(req); }),
        weir::get<"/ws">([out, ws](const weir::request<>& req) {
            return weir::accept_websocket(
                req, [out](weir::websocket_connection& c) -> asio::awaitable<void> { return out->session(c); }, ws);
        }),
        weir::post<"/publish">([out](const weir::request<>& req) {
            out->publish(std::string(req.body()));
            return weir::response(weir::status::accepted);
        }),
        weir::get<"/stats">([out](const weir::request<>&) {
            return weir::response(weir::status::ok, std::to_string(out->count()));
        }),
    };
    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
