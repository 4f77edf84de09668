// A server for the topics integration tests: SSE streams and WebSocket sessions subscribed to topics, and a
// publishing endpoint. History keeps 50 events per topic (a and b
// always, other topics while someone subscribes), so a resume can be complete or need a reset.
//
// Routes: GET /events?topics=a,b (SSE), GET /ws?topics=a,b (WebSocket; the client sends "join T", "leave T" or
// "publish T text"; joins and leaves are answered "joined T" / "left T"), POST /publish?topic=T[&n=N] (publishes
// the body N times, answers the last id), GET /stats (subscribers).
// A second topics object whose WebSocket subscribers drop the oldest held events when their send queue is full
// (64 KiB of send queue, 64 KiB held back): GET /held/ws?topics=a (as /ws), POST /held/publish?topic=T&n=N
// (publishes "<id> <body>" N times, answers the last id), GET /held/stats.

#include "../../examples/example_options.hpp"

#include <weir/http/request.hpp>
#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/topics.hpp>
#include <weir/websocket.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::vector<std::string> topic_list(std::string_view csv) {
    std::vector<std::string> out;
    while (!csv.empty()) {
        auto comma = csv.find(',');
        out.emplace_back(csv.substr(0, comma));
        csv = comma == std::string_view::npos ? std::string_view{} : csv.substr(comma + 1);
    }
    return out;
}

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--port N] [--threads N]");
    weir::topics_options topic_options;
    topic_options.history.events = 50;
    static weir::topics topics(topic_options);
    topics.retain("a"); // a and b keep history without subscribers; other topics only while subscribed
    topics.retain("b");
    static weir::topics held(weir::topics_options{.websocket_on_full = weir::websocket_subscriber_policy::drop_oldest,
                                                  .websocket_backlog_bytes = 64 * 1024});
    weir::websocket_options held_session;
    held_session.send_queue_bytes = 64 * 1024;

    weir::pipeline app{
        weir::router{
            weir::get<"/events">([](const weir::request<>& req) {
                return topics.subscribe(req, topic_list(req.query_param("topics").value_or("a")));
            }),
            weir::get<"/ws">([](const weir::request<>& req) {
                auto names = topic_list(req.query_param("topics").value_or("a"));
                return weir::accept_websocket(req, [names](weir::websocket_connection& ws) -> asio::awaitable<void> {
                    auto member = topics.join(ws);
                    for (auto& n : names) member.join(n);
                    co_await ws.send("ready");
                    while (auto m = co_await ws.read()) {
                        std::string_view text = m->data;
                        if (text.starts_with("join ")) {
                            member.join(text.substr(5));
                            co_await ws.send("joined " + std::string(text.substr(5)));
                        } else if (text.starts_with("leave ")) {
                            member.leave(text.substr(6));
                            co_await ws.send("left " + std::string(text.substr(6)));
                        } else if (text.starts_with("publish ")) {
                            auto rest = text.substr(8);
                            auto space = rest.find(' ');
                            topics.publish(rest.substr(0, space),
                                           std::string(space == std::string_view::npos ? "" : rest.substr(space + 1)));
                        }
                    }
                });
            }),
            weir::post<"/publish">([](const weir::request<>& req) {
                auto topic = req.query_param("topic").value_or("a");
                int n = std::stoi(req.query_param("n").value_or("1"));
                std::uint64_t id = 0;
                for (int i = 0; i < n; ++i) id = topics.publish(topic, std::string(req.body()));
                return weir::response(weir::status::accepted, std::to_string(id));
            }),
            weir::get<"/stats">([](const weir::request<>&) {
                return weir::response(weir::status::ok, std::to_string(topics.subscriber_count()));
            }),
            weir::get<"/held/ws">([held_session](const weir::request<>& req) {
                auto names = topic_list(req.query_param("topics").value_or("a"));
                return weir::accept_websocket(
                    req,
                    [names](weir::websocket_connection& ws) -> asio::awaitable<void> {
                        auto member = held.join(ws);
                        for (auto& n : names) member.join(n);
                        co_await ws.send("ready");
                        while (auto m = co_await ws.read()) co_await ws.send("echo " + m->data);
                    },
                    held_session);
            }),
            weir::post<"/held/publish">([](const weir::request<>& req) {
                auto topic = req.query_param("topic").value_or("a");
                int n = std::stoi(req.query_param("n").value_or("1"));
                std::uint64_t id = 0;
                for (int i = 0; i < n; ++i)
                    id = held.publish(topic, std::to_string(held.last_id() + 1) + " " + std::string(req.body()));
                return weir::response(weir::status::accepted, std::to_string(id));
            }),
            weir::get<"/held/stats">([](const weir::request<>&) {
                return weir::response(weir::status::ok, std::to_string(held.subscriber_count()));
            }),
        },
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
