// Every standard stage on every reply alternative: a plain response, a pending SSE head and a pending 101.
#include <weir/constant_time.hpp>
#include <weir/middleware.hpp>
#include <weir/middleware/compression.hpp>
#include <weir/router.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_future.hpp>
#include <weir/sse.hpp>
#include <weir/websocket.hpp>

#include <doctest/doctest.h>

#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct user {
    std::string name;
};

weir::http_request base_request(std::string_view path) {
    weir::http_request m;
    m.method_ = "GET";
    m.target_ = m.path_ = path;
    m.version_ = 11;
    m.fields_ = {{"Host", "example.com"},
                 {"Upgrade", "websocket"},
                 {"Connection", "Upgrade"},
                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                 {"Sec-WebSocket-Version", "13"},
                 {"Origin", "https://app.example"},
                 {"Accept-Encoding", "gzip"}};
    return m;
}

// One handler for the three alternatives, chosen by path.
auto handler = [](const auto& req) -> weir::reply<weir::sse, weir::websocket> {
    if (req.path() == "/sse")
        return weir::event_stream(req, [](weir::sse_stream&) -> asio::awaitable<void> { co_return; });
    if (req.path() == "/ws")
        return weir::accept_websocket(
            req, [](weir::websocket_connection&) -> asio::awaitable<void> { co_return; },
            weir::websocket_options{.allowed_origins = {"https://app.example"}}); // the cross-origin page is allowed
    return weir::response(weir::status::ok, std::string(4000, 'a'), "text/plain");
};

const std::vector<std::string> paths = {"/plain", "/sse", "/ws"};

template <class App>
auto run(App& app, std::string_view path, std::vector<weir::request_field> extra = {}, bool over_tls = false) {
    auto m = base_request(path);
    for (auto& f : extra) m.fields_.push_back(f);
    m.secure_ = over_tls;
    return app(weir::request<>(m));
}

} // namespace

TEST_CASE("request_id puts one X-Request-Id on every alternative and keeps a valid incoming one") {
    weir::pipeline app{weir::request_id{}, handler};
    for (auto& p : paths) {
        CAPTURE(p);
        auto r = run(app, p);
        CHECK(r.headers().get_all("X-Request-Id").size() == 1);
        CHECK(r.headers().get("X-Request-Id")->size() == 32);
        auto kept = run(app, p, {{"X-Request-Id", "abc-123"}});
        CHECK(kept.headers().get("X-Request-Id") == "abc-123");
        auto replaced = run(app, p, {{"X-Request-Id", "bad id with spaces"}});
        CHECK(replaced.headers().get("X-Request-Id") != "bad id with spaces");
    }
}

TEST_CASE("request_id is typed context for the handler") {
    weir::pipeline app{weir::request_id{}, [](const auto& req) {
                           return weir::response(weir::status::ok, req.template get<weir::request_id_value>().value);
                       }};
    auto r = run(app, "/plain", {{"X-Request-Id", "given"}});
    CHECK(r.get_if<weir::response>()->body() == "given");
}

TEST_CASE("security_headers reach a plain response, an SSE head and a 101") {
    weir::pipeline app{weir::security_headers{.strict_transport_security = "max-age=60"}, handler};
    for (auto& p : paths) {
        CAPTURE(p);
        auto r = run(app, p, {}, true);
        CHECK(r.headers().get("X-Content-Type-Options") == "nosniff");
        CHECK(r.headers().get("X-Frame-Options") == "DENY");
        CHECK(r.headers().get("Referrer-Policy") == "no-referrer");
        CHECK(r.headers().get("Strict-Transport-Security") == "max-age=60");
        CHECK(!r.headers().contains("Content-Security-Policy"));
    }
}

TEST_CASE("Strict-Transport-Security goes only on requests that came over TLS, unless TLS ends at a proxy") {
    weir::pipeline app{weir::security_headers{.strict_transport_security = "max-age=60"}, handler};
    weir::pipeline proxied{
        weir::security_headers{.strict_transport_security = "max-age=60", .strict_transport_security_behind_proxy = true},
        handler};
    for (auto& p : paths) {
        CAPTURE(p);
        auto plain = run(app, p);
        CHECK(!plain.headers().contains("Strict-Transport-Security"));
        CHECK(plain.headers().get("X-Content-Type-Options") == "nosniff");
        CHECK(run(app, p, {}, true).headers().get("Strict-Transport-Security") == "max-age=60");
        CHECK(run(proxied, p).headers().get("Strict-Transport-Security") == "max-age=60");
    }
}

TEST_CASE("cors echoes an allowed origin with credentials and Vary on every alternative") {
    weir::pipeline app{weir::cors<weir::cors_credentials::include>(weir::cors_config{.allowed_origins = {"https://app.example"}}),
                       handler};
    for (auto& p : paths) {
        CAPTURE(p);
        auto r = run(app, p);
        CHECK(r.headers().get("Access-Control-Allow-Origin") == "https://app.example");
        CHECK(r.headers().get("Access-Control-Allow-Credentials") == "true");
        CHECK(r.headers().list_contains("Vary", "Origin"));
    }
    weir::pipeline other{weir::cors<>(weir::cors_config{.allowed_origins = {"https://other.example"}}), handler};
    auto r = run(other, "/plain");
    CHECK(!r.headers().contains("Access-Control-Allow-Origin"));
    CHECK(r.headers().list_contains("Vary", "Origin"));
}

TEST_CASE("cors answers a preflight itself: it never reaches auth") {
    bool reached = false;
    weir::pipeline app{weir::cors<weir::cors_credentials::include>(weir::cors_config{
                           .allowed_origins = {"https://app.example"},
                           .allow_methods = {"GET", "POST"},
                           .allow_headers = {"Authorization", "Content-Type", "Last-Event-ID"},
                           .allow_private_network = true}),
                       [&](const auto&) {
                           reached = true;
                           return weir::response(weir::status::unauthorized);
                       }};
    auto m = base_request("/messages");
    m.method_ = "OPTIONS";
    m.fields_.push_back({"Access-Control-Request-Method", "POST"});
    m.fields_.push_back({"Access-Control-Request-Private-Network", "true"});
    auto r = app(weir::request<>(m));
    CHECK(!reached);
    CHECK(r.status() == weir::status::no_content);
    CHECK(r.headers().get("Access-Control-Allow-Methods") == "GET, POST");
    CHECK(r.headers().get("Access-Control-Allow-Headers") == "Authorization, Content-Type, Last-Event-ID");
    CHECK(r.headers().get("Access-Control-Allow-Private-Network") == "true");
    CHECK(r.headers().get("Access-Control-Max-Age") == "600");
}

TEST_CASE("cors refuses credentials with \"*\" at start-up when the origins are not constant") {
    CHECK_THROWS_AS(weir::cors<weir::cors_credentials::include>(weir::cors_config{.allowed_origins = {"*"}}),
                    std::invalid_argument);
    CHECK_NOTHROW(weir::cors<>(weir::cors_config{.allowed_origins = {"*"}}));
}

TEST_CASE("cors headers reach a rejection from auth, so browsers can read the 401") {
    weir::pipeline app{
        weir::cors<weir::cors_credentials::include>(weir::cors_config{.allowed_origins = {"https://app.example"}}),
        weir::bearer_auth([](std::string_view) -> std::optional<user> { return std::nullopt; }), handler};
    for (auto& p : paths) {
        CAPTURE(p);
        auto r = run(app, p);
        CHECK(r.status() == weir::status::unauthorized);
        CHECK(!r.is_upgrade());
        CHECK(r.headers().get("Access-Control-Allow-Origin") == "https://app.example");
        CHECK(r.headers().get("WWW-Authenticate") == "Bearer realm=\"weir\"");
    }
}

TEST_CASE("bearer_auth takes the token from the header or the query and attaches the principal") {
    auto verify = [](std::string_view token) -> std::optional<user> {
        if (token == "s3cret") return user{"ada"};
        return std::nullopt;
    };
    weir::pipeline app{weir::bearer_auth(verify, "token"), [](const auto& req) {
                           return weir::response(weir::status::ok, req.template get<user>().name);
                       }};
    CHECK(run(app, "/plain", {{"Authorization", "Bearer s3cret"}}).get_if<weir::response>()->body() == "ada");
    auto m = base_request("/plain");
    m.query_ = "token=s3cret";
    CHECK(app(weir::request<>(m)).status() == weir::status::ok);
    CHECK(run(app, "/plain", {{"Authorization", "Bearer wrong"}}).status() == weir::status::unauthorized);
}

TEST_CASE("bearer_auth with a coroutine verifier makes the stage a coroutine") {
    auto verify = [](std::string_view token) -> asio::awaitable<std::optional<user>> {
        if (token == "s3cret") co_return user{"ada"};
        co_return std::nullopt;
    };
    weir::pipeline app{weir::security_headers{}, weir::bearer_auth(verify), [](const auto& req) {
                           return weir::response(weir::status::ok, req.template get<user>().name);
                       }};
    auto m = base_request("/plain");
    m.fields_.push_back({"Authorization", "Bearer s3cret"});
    asio::io_context io;
    auto f = asio::co_spawn(io, app(weir::request<>(m)), asio::use_future);
    io.run();
    auto r = f.get();
    CHECK(r.get_if<weir::response>()->body() == "ada");
    CHECK(r.headers().get("X-Frame-Options") == "DENY");
}

TEST_CASE("basic_auth decodes user:password") {
    weir::pipeline app{weir::basic_auth([](std::string_view creds) -> std::optional<user> {
                           if (creds == "ada:lovelace") return user{"ada"};
                           return std::nullopt;
                       }),
                       handler};
    CHECK(run(app, "/plain", {{"Authorization", "Basic YWRhOmxvdmVsYWNl"}}).status() == weir::status::ok);
    auto r = run(app, "/ws", {{"Authorization", "Basic YWRhOndyb25n"}});
    CHECK(r.status() == weir::status::unauthorized);
    CHECK(r.headers().get("WWW-Authenticate") == "Basic realm=\"weir\"");
}

TEST_CASE("rate_limit answers 429 with Retry-After once the bucket is empty, on every alternative") {
    for (auto& p : paths) {
        CAPTURE(p);
        weir::pipeline app{weir::rate_limit({.burst = 2, .per_second = 0.5}), handler};
        CHECK(run(app, p).status() != weir::status::too_many_requests);
        CHECK(run(app, p).status() != weir::status::too_many_requests);
        auto r = run(app, p);
        CHECK(r.status() == weir::status::too_many_requests);
        CHECK(!r.is_upgrade());
        CHECK(r.headers().get("Retry-After") == "2");
    }
}

TEST_CASE("body_limit answers 413 above its limit") {
    weir::pipeline app{weir::body_limit{4}, handler};
    auto m = base_request("/plain");
    m.body_ = "12345";
    CHECK(app(weir::request<>(m)).status() == weir::status::payload_too_large);
    m.body_ = "1234";
    CHECK(app(weir::request<>(m)).status() == weir::status::ok);
}

TEST_CASE("compression gzips a plain response and leaves SSE heads and 101s alone") {
    weir::pipeline app{weir::compression{}, handler};
    auto plain = run(app, "/plain");
    CHECK(plain.headers().get("Content-Encoding") == "gzip");
    CHECK(plain.get_if<weir::response>()->body().size() < 4000);
    for (std::string p : {"/sse", "/ws"}) {
        auto r = run(app, p);
        CHECK(r.is_upgrade());
        CHECK(!r.headers().contains("Content-Encoding"));
    }
}

TEST_CASE("access_log writes one line per request, naming upgrades") {
    std::vector<std::string> lines;
    weir::pipeline app{weir::request_id{}, weir::access_log{[&](std::string_view l) { lines.emplace_back(l); }},
                       handler};
    run(app, "/plain");
    run(app, "/sse");
    run(app, "/ws");
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].find("status=200 ") != std::string::npos);
    CHECK(lines[0].find("kind=response") != std::string::npos);
    CHECK(lines[1].find("kind=sse") != std::string::npos);
    CHECK(lines[2].find("status=101 ") != std::string::npos);
    CHECK(lines[2].find("kind=websocket") != std::string::npos);
    CHECK(lines[2].find("request_id=-") == std::string::npos);
}

TEST_CASE("time_limit answers 503 when a coroutine handler takes too long, and cancels it") {
    static bool finished = false;
    weir::pipeline app{weir::time_limit{std::chrono::milliseconds(50)},
                       weir::router{weir::get<"/slow">([](const weir::request<>&) -> asio::awaitable<weir::response> {
                                        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::seconds(5));
                                        co_await t.async_wait(asio::use_awaitable);
                                        finished = true;
                                        co_return weir::response(weir::status::ok);
                                    }),
                                    weir::get<"/fast">([](const weir::request<>&) -> asio::awaitable<weir::response> {
                                        co_return weir::response(weir::status::ok, "fast");
                                    })}};
    auto call = [&](std::string_view path) {
        auto m = base_request(path);
        asio::io_context io;
        auto f = asio::co_spawn(io, app(weir::request<>(m)), asio::use_future);
        io.run();
        return f.get();
    };
    auto slow = call("/slow");
    CHECK(slow.status() == weir::status::service_unavailable);
    CHECK(slow.headers().get("Retry-After") == "1");
    CHECK(!finished);
    CHECK(call("/fast").status() == weir::status::ok);
}

TEST_CASE("access_log adds a line with duration and bytes when a committed upgrade ends") {
    std::vector<std::string> lines;
    weir::pipeline app{weir::access_log{[&](std::string_view l) { lines.emplace_back(l); }}, handler};
    auto r = run(app, "/sse");
    auto* p = r.get_if<weir::pending<weir::sse>>();
    REQUIRE(p != nullptr);
    p->ended(weir::upgrade_summary{std::chrono::milliseconds(1500), 4096});
    REQUIRE(lines.size() == 2);
    CHECK(lines[1].find("kind=sse") != std::string::npos);
    CHECK(lines[1].find("event=end stream_ms=1500 stream_bytes=4096") != std::string::npos);
}

TEST_CASE("access_log writes the path without the query by default, so query tokens never reach the log") {
    std::vector<std::string> lines;
    weir::pipeline app{weir::access_log{[&](std::string_view l) { lines.emplace_back(l); }},
                       weir::bearer_auth([](std::string_view t) -> std::optional<user> {
                           if (weir::constant_time_equal(t, "s3cret")) return user{"ada"};
                           return std::nullopt;
                       },
                                         "token"),
                       handler};
    auto call = [&](std::string_view target) {
        auto m = base_request("/me");
        m.target_ = target;
        m.query_ = target.substr(target.find('?') + 1);
        return app(weir::request<>(m));
    };
    CHECK(call("/me?token=s3cret").status() == weir::status::ok);
    CHECK(call("/me?token=guess1&x=1").status() == weir::status::unauthorized);
    REQUIRE(lines.size() == 2);
    for (auto& l : lines) {
        CAPTURE(l);
        CHECK(l.find("target=\"/me\"") != std::string::npos);
        CHECK(l.find("s3cret") == std::string::npos);
        CHECK(l.find("guess1") == std::string::npos);
    }
}

TEST_CASE("access_log with log_query writes the query with secret-looking parameters redacted") {
    std::vector<std::string> lines;
    weir::access_log log{[&](std::string_view l) { lines.emplace_back(l); }};
    log.log_query = true;
    log.redacted_parameters.emplace_back("sid");
    weir::pipeline app{log, handler};
    auto m = base_request("/plain");
    m.target_ = "/plain?page=2&token=s3cret&Access_Token=abc&sid=xyz&api_key&q=a%20b&to%6Ben=t2";
    m.query_ = "page=2&token=s3cret&Access_Token=abc&sid=xyz&api_key&q=a%20b&to%6Ben=t2";
    app(weir::request<>(m));
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("target=\"/plain?page=2&token=[redacted]&Access_Token=[redacted]&sid=[redacted]&"
                        "api_key&q=a%20b&to%6Ben=[redacted]\"") != std::string::npos);
}

TEST_CASE("compression uses gzip only when its most specific Accept-Encoding entry has a valid q above 0, not below identity") {
    for (std::string_view ae : {"gzip;q=0", "gzip;q=0.0", "gzip; q=0.000", "gzip ; Q=0", "identity, *;q=0.5, gzip;q=0",
                                "*;q=0", "*;q=0.0, identity", "deflate, br", "", "gzip;q=0, *", "x-gzip;q=0, *;q=1",
                                "gzip;q=1.5", "gzip;q=-1", "gzip;q=0.0001", "gzip;q=abc", "gzip;q=", "gzip;q=1.001",
                                "identity;q=1, gzip;q=0.5", "identity, *;q=0.5"}) {
        CAPTURE(ae);
        CHECK_FALSE(weir::compression::accepts_gzip(ae));
    }
    for (std::string_view ae : {"gzip", "GZIP", "gzip;q=1", "gzip;q=1.000", "gzip;q=0.001", "gzip; q=0.5 , br",
                                "*", "*;q=0.1", "identity;q=0, *;q=0.5", "deflate;q=0, gzip", "gzip;q=0.5",
                                "x-gzip", "gzip;q=0.5, identity;q=0.5", "br;q=1, gzip;level=1;q=0.8"}) {
        CAPTURE(ae);
        CHECK(weir::compression::accepts_gzip(ae));
    }
}

TEST_CASE("compression leaves the body alone when Accept-Encoding refuses gzip with q=0.0") {
    weir::pipeline app{weir::compression{}, handler};
    for (std::string_view ae : {"gzip;q=0.0", "gzip; q=0.000", "identity, *;q=0.5, gzip;q=0"}) {
        CAPTURE(ae);
        auto m = base_request("/plain");
        m.fields_.back().value = ae; // Accept-Encoding
        auto r = app(weir::request<>(m));
        CHECK(!r.headers().contains("Content-Encoding"));
        CHECK(r.get_if<weir::response>()->body().size() == 4000);
        CHECK(r.headers().list_contains("Vary", "Accept-Encoding"));
    }
}

TEST_CASE("rate_limit refuses a zero, negative or non-finite rate, a burst below one and max_keys = 0") {
    using opts = weir::rate_limit::options;
    CHECK_THROWS_AS(weir::rate_limit(opts{.burst = 20, .per_second = 0}), std::invalid_argument);
    CHECK_THROWS_AS(weir::rate_limit(opts{.burst = 20, .per_second = -1}), std::invalid_argument);
    CHECK_THROWS_AS(weir::rate_limit(opts{.burst = 20, .per_second = std::numeric_limits<double>::quiet_NaN()}),
                    std::invalid_argument);
    CHECK_THROWS_AS(weir::rate_limit(opts{.burst = 20, .per_second = std::numeric_limits<double>::infinity()}),
                    std::invalid_argument);
    CHECK_THROWS_AS(weir::rate_limit(opts{.burst = 0.5, .per_second = 1}), std::invalid_argument);
    CHECK_THROWS_AS(weir::rate_limit(opts{.burst = 1, .per_second = 1, .max_keys = 0}), std::invalid_argument);
    CHECK_NOTHROW(weir::rate_limit(opts{.burst = 1, .per_second = 0.001}));
}

TEST_CASE("rate_limit with a slow refill still answers a finite Retry-After") {
    weir::pipeline app{weir::rate_limit({.burst = 1, .per_second = 0.001}), handler};
    CHECK(run(app, "/plain").status() == weir::status::ok);
    auto r = run(app, "/plain");
    CHECK(r.status() == weir::status::too_many_requests);
    CHECK(r.headers().get("Retry-After") == "1000");
}
