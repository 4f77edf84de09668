// chat: a small realtime chat that shows the whole library. Messages are POSTed (or sent over a WebSocket)
// and reach every subscriber over Server-Sent Events and WebSockets; the same stages put their headers on the
// page, the event stream's head and the 101.
//
//   chat [--bind ADDR] [--port N] [--allow-origin ORIGIN]... [--token T] [--heartbeat-ms MS] [--threads N]
//        [--tls-cert FILE --tls-key FILE]... [--no-deflate] [--redis redis://HOST:PORT] [--room NAME]
//
// With --tls-cert and --tls-key it serves HTTPS and WSS (built with weir::tls); repeat the pair for more
// certificates, chosen by the name a client asks for (SNI), the first being the default. SIGHUP reloads them.
// WebSocket messages are compressed (permessage-deflate) when the client offers it, as browsers do, and weir
// was built with zlib; --no-deflate turns that off.
//
// With --redis, the room lives in Redis Streams (built with weir::redis): every chat server with the same Redis
// and --room (default "chat") is one room, and a client resumes on any of them. A message that cannot be
// published while Redis is down is refused: POST answers 503 with Retry-After, a WebSocket is closed with 1013.
//
// Routes: GET / (the page), GET /events (SSE, replays after Last-Event-ID), POST /messages (202), GET /ws.

#include "chat_page.hpp"
#include "example_options.hpp"

#include <weir/weir.hpp>
#ifdef WEIR_HAS_OPENSSL
#include <weir/tls.hpp>
#endif
#ifdef WEIR_HAS_HIREDIS
#include <weir/topics/redis.hpp>
#endif

#include <asio/signal_set.hpp>

#include <charconv>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

// Everyone listening, over SSE and WebSockets alike: one topic. Each message is encoded once per protocol.
class chat_room {
public:
    chat_room(weir::topics_options options, std::string name) : topic(std::move(name)), topics_(std::move(options)) {
        topics_.retain(topic); // clients that reconnect with Last-Event-ID replay what they missed
    }

    // Throws weir::topic_publish_error when the room lives in Redis and Redis cannot take the message.
    void publish(std::string text) {
        weir::sse_event e;
        e.event = "message";
        e.data = std::move(text);
        topics_.publish(topic, std::move(e));
    }

    template <class Request>
    weir::pending<weir::sse> subscribe(const Request& req) const {
        return topics_.subscribe(req, {topic});
    }

    // Call from the session's handler; the session hears the room until the membership is destroyed.
    weir::topic_membership join(weir::websocket_connection& ws) const { return topics_.join(ws, topic); }

private:
    std::string topic;
    weir::topics topics_;
};

// With --token, the event stream, the WebSocket and posting need `Authorization: Bearer T` or `?token=T`
// (browsers cannot put headers on EventSource or WebSocket requests). The page itself is open.
struct require_token {
    std::string token;

    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        // constant_time_equal, not ==: a comparison that stops early tells an attacker, byte by byte, how much of
        // a guess was right.
        if (token.empty() || req.path() == "/" || weir::constant_time_equal(given(req), token)) return next(req);
        weir::response r(weir::status::unauthorized, "Unauthorized\n");
        r.headers().set("WWW-Authenticate", "Bearer realm=\"chat\"");
        return weir::respond(next, std::move(r));
    }

    template <class Request>
    static std::string given(const Request& req) {
        if (auto h = req.header("authorization"); h && h->size() > 7 && h->substr(0, 7) == "Bearer ")
            return std::string(h->substr(7));
        return req.query_param("token").value_or("");
    }
};

constexpr std::size_t max_message = 64 * 1024;

} // namespace

int main(int argc, char** argv) {
    weir::raise_open_file_limit(); // every subscriber holds a connection
    weir::server_options options;
    options.port = 8080;
    std::vector<std::string> origins;
    std::string token;
    unsigned long heartbeat_ms = 15'000;
    std::vector<std::string> tls_certs, tls_keys;
    std::string redis_url;
    std::string room_name = "chat";
    // --no-deflate takes no value: it is taken out before the common flags, which all do, are parsed.
    bool deflate = true;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (i > 0 && std::string_view(argv[i]) == "--no-deflate") deflate = false;
        else args.push_back(argv[i]);
    }
    examples::parse_command_line(
        static_cast<int>(args.size()), args.data(), options,
        "[--bind ADDR] [--port N] [--allow-origin ORIGIN]... [--token T] [--heartbeat-ms MS] [--threads N] "
        "[--tls-cert FILE --tls-key FILE]... [--no-deflate] [--redis redis://HOST:PORT] [--room NAME]",
        [&](std::string_view flag, std::string_view value) {
            if (flag == "--allow-origin") origins.emplace_back(value);
            else if (flag == "--tls-cert") tls_certs.emplace_back(value);
            else if (flag == "--tls-key") tls_keys.emplace_back(value);
            else if (flag == "--token") token = std::string(value);
            else if (flag == "--redis") redis_url = std::string(value);
            else if (flag == "--room") room_name = std::string(value);
            else if (flag == "--heartbeat-ms") {
                auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), heartbeat_ms);
                if (ec != std::errc() || p != value.data() + value.size()) return false;
            } else return false;
            return true;
        });

    if (tls_certs.size() != tls_keys.size()) {
        fmt::print(stderr, "each --tls-cert needs its --tls-key\n");
        return 2;
    }
    if (!tls_certs.empty()) {
#ifdef WEIR_HAS_OPENSSL
        weir::tls_options tls;
        for (std::size_t i = 0; i < tls_certs.size(); ++i)
            tls.certificates.push_back({.certificate_chain_file = tls_certs[i], .private_key_file = tls_keys[i]});
        try {
            options.tls = std::make_shared<weir::tls_context>(std::move(tls));
        } catch (const weir::tls_error& e) {
            fmt::print(stderr, "{}\n", e.what());
            return 1;
        }
#else
        fmt::print(stderr, "this chat was built without TLS: build it with weir::tls (OpenSSL 3)\n");
        return 2;
#endif
    }

    weir::topics_options room_options;
    room_options.history.events = 1000;
    room_options.stream.heartbeat = std::chrono::milliseconds(heartbeat_ms);
    if (!redis_url.empty()) {
#ifdef WEIR_HAS_HIREDIS
        try {
            room_options.backend = std::make_shared<weir::redis_topic_backend>(weir::parse_redis_url(redis_url));
        } catch (const std::invalid_argument& e) {
            fmt::print(stderr, "--redis: {}\n", e.what());
            return 2;
        }
#else
        fmt::print(stderr, "this chat was built without Redis: build it with weir::redis (hiredis)\n");
        return 2;
#endif
    }
    auto room = std::make_shared<chat_room>(room_options, room_name);

    weir::websocket_options ws_options;
    ws_options.max_message_size = max_message;
    ws_options.allowed_origins = origins; // and the page's own (check_origin is on by default)
    // A chat broadcasts: without a server context each message is compressed once for all its readers, and
    // an idle member holds no compressor.
    ws_options.deflate.enabled = deflate;
    ws_options.deflate.server_context_takeover = false;
    ws_options.deflate.client_context_takeover = false;
    ws_options.deflate.threshold = 256;

    weir::cors_config cors_config;
    cors_config.allowed_origins = origins;
    cors_config.allow_methods = {"GET", "POST"};
    cors_config.allow_headers = {"Authorization", "Content-Type", "Last-Event-ID"};

    weir::pipeline app{
        weir::request_id{},
        // Strict-Transport-Security goes only on answers over TLS (browsers ignore it over plain HTTP).
        weir::security_headers{.strict_transport_security = "max-age=31536000"},
        weir::cors<weir::cors_credentials::include>(cors_config),
        require_token{token},
        weir::router{
            weir::get<"/">([](const auto&) {
                // The page is open even with --token: it reads the token from its own URL.
                return weir::response(weir::status::ok, std::string(examples::chat_page), "text/html; charset=utf-8");
            }),
            weir::get<"/events">([room](const auto& req) { return room->subscribe(req); }),
            weir::post<"/messages">(weir::pipeline{
                weir::body_limit{max_message},
                [room](const auto& req) {
                    if (!weir::is_valid_utf8(req.body()))
                        return weir::response(weir::status::bad_request, "messages are UTF-8 text\n");
                    try {
                        room->publish(std::string(req.body()));
                    } catch (const weir::topic_publish_error&) {
                        weir::response busy(weir::status::service_unavailable, "the room cannot take messages now\n");
                        busy.headers().set("Retry-After", "1");
                        return busy;
                    }
                    return weir::response(weir::status::accepted);
                },
            }),
            weir::get<"/ws">([room, ws_options](const auto& req) {
                return weir::accept_websocket(
                    req,
                    [room](weir::websocket_connection& ws) -> asio::awaitable<void> {
                        auto membership = room->join(ws);
                        while (auto message = co_await ws.read()) {
                            if (message->binary) continue;
                            bool published = true;
                            try {
                                room->publish(std::move(message->data));
                            } catch (const weir::topic_publish_error&) {
                                published = false; // (no co_await in a handler)
                            }
                            if (!published) {
                                co_await ws.close(weir::close_code::try_again_later,
                                                  "the room cannot take messages now");
                                break;
                            }
                        }
                    },
                    ws_options);
            }),
        },
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen(), server.is_secure());

    // SIGHUP reloads the certificates (renewed by certbot, say): new connections get them, open ones keep
    // theirs. A reload that fails keeps the previous certificates and says why.
    asio::io_context reloads;
    asio::signal_set hangup(reloads, SIGHUP);
    std::function<void()> on_hangup = [&] {
        hangup.async_wait([&](const asio::error_code& ec, int) {
            if (ec) return;
            try {
                server.reload_tls();
                fmt::print(stderr, "chat: TLS certificates reloaded\n");
            } catch (const std::exception& e) {
                fmt::print(stderr, "chat: TLS reload failed, still serving the previous certificates: {}\n",
                           e.what());
            }
            on_hangup();
        });
    };
    std::thread reloader;
    if (server.is_secure()) {
        on_hangup();
        reloader = std::thread([&] { reloads.run(); });
    }
    server.run();
    reloads.stop();
    if (reloader.joinable()) reloader.join();
    return 0;
}
