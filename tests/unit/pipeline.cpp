#include <weir/pipeline.hpp>

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <string>

namespace {

// A protocol that records whether its session ran; it stands in for SSE and WebSocket here.
struct probe_protocol {
    static constexpr weir::status default_status = weir::status::ok;
    static bool commits(weir::status s) { return weir::to_int(s) / 100 == 2; }
    void prepare_head(weir::headers& h) { h.set("Content-Type", "text/x-probe"); }
    void write_protocol_fields(std::string&) const {}
    asio::awaitable<void> run(weir::upgraded_connection&) { co_return; }
};

struct user {
    std::string name;
};

struct add_header {
    const char* name;
    const char* value;
    template <class Req, class Next>
    auto operator()(const Req& req, Next next) const {
        auto r = next(req);
        r.headers().add(name, value);
        return r;
    }
};

weir::http_request make_message(std::string_view method = "GET", std::string_view path = "/") {
    weir::http_request m;
    m.method_ = method;
    m.target_ = path;
    m.path_ = path;
    return m;
}

template <class Awaitable>
auto run_awaitable(Awaitable a) {
    asio::io_context io;
    auto f = asio::co_spawn(io, std::move(a), asio::use_future);
    io.run();
    return f.get();
}

} // namespace

TEST_CASE("a stage adds a header after next, on a plain response and on a pending upgrade alike") {
    auto message = make_message();
    weir::pipeline plain{add_header{"X-A", "1"}, [](const auto&) { return weir::response(weir::status::ok, "hi"); }};
    auto r1 = plain(weir::request<>(message));
    CHECK(r1.headers().get("X-A") == "1");

    weir::pipeline upgrade{add_header{"X-A", "1"},
                           [](const auto&) { return weir::pending<probe_protocol>(probe_protocol{}); }};
    auto r2 = upgrade(weir::request<>(message));
    CHECK(r2.is_upgrade());
    CHECK(r2.headers().get("X-A") == "1");
}

TEST_CASE("stacked stages apply in order, outermost last after next") {
    auto message = make_message();
    weir::pipeline p{add_header{"Vary", "Origin"}, add_header{"Vary", "Accept"},
                     [](const auto&) { return weir::pending<probe_protocol>(probe_protocol{}); }};
    auto r = p(weir::request<>(message));
    auto all = r.headers().get_all("Vary");
    REQUIRE(all.size() == 2);
    CHECK(all[0] == "Accept");
    CHECK(all[1] == "Origin");
}

TEST_CASE("a stage that rejects before next never reaches the handler") {
    auto message = make_message();
    bool reached = false;
    weir::pipeline p{[](const auto& req, auto next) -> weir::reply_of<decltype(next)> {
                         if (!req.header("authorization")) return weir::response(weir::status::unauthorized);
                         return next(req);
                     },
                     [&](const auto&) {
                         reached = true;
                         return weir::pending<probe_protocol>(probe_protocol{});
                     }};
    auto r = p(weir::request<>(message));
    CHECK(r.status() == weir::status::unauthorized);
    CHECK(!r.is_upgrade());
    CHECK(!reached);
}

TEST_CASE("a 401 after next turns a pending upgrade into a plain response that will not commit") {
    auto message = make_message();
    weir::pipeline p{[](const auto& req, auto next) {
                         auto r = next(req);
                         r.set_status(weir::status::unauthorized);
                         return r;
                     },
                     [](const auto&) { return weir::pending<probe_protocol>(probe_protocol{}); }};
    auto r = p(weir::request<>(message));
    CHECK(r.status() == weir::status::unauthorized);
    CHECK(!r.is_upgrade());
}

TEST_CASE("a stage attaches typed context that the handler reads by type") {
    auto message = make_message();
    weir::pipeline p{weir::providing<user>([](const auto& req, auto next) { return next(req.with(user{"ada"})); }),
                     [](const auto& req) { return weir::response(weir::status::ok, req.template get<user>().name); }};
    auto r = p(weir::request<>(message));
    CHECK(r.template get_if<weir::response>()->body() == "ada");
}

TEST_CASE("coroutine stages and handlers compose with plain ones") {
    auto message = make_message();
    weir::pipeline p{
        [](const auto& req, auto next) -> asio::awaitable<weir::reply_of<decltype(next)>> {
            auto r = co_await next(req);
            r.headers().add("X-Outer", "1");
            co_return r;
        },
        [](const auto& req, auto next) -> asio::awaitable<weir::reply_of<decltype(next)>> {
            auto r = co_await next(req);
            r.headers().add("X-Inner", "1");
            co_return r;
        },
        [](const auto&) -> asio::awaitable<weir::response> { co_return weir::response(weir::status::ok, "x"); }};
    auto r = run_awaitable(p(weir::request<>(message)));
    CHECK(r.headers().get("X-Outer") == "1");
    CHECK(r.headers().get("X-Inner") == "1");

    weir::pipeline q{[](const auto& req, auto next) -> asio::awaitable<weir::reply_of<decltype(next)>> {
                         auto r = co_await next(req);
                         r.headers().add("X-Outer", "1");
                         co_return r;
                     },
                     add_header{"X-Plain", "1"}, [](const auto&) { return weir::response(weir::status::ok); }};
    auto r2 = run_awaitable(q(weir::request<>(message)));
    CHECK(r2.headers().get("X-Outer") == "1");
    CHECK(r2.headers().get("X-Plain") == "1");
}

TEST_CASE("a stage cannot set a header that frames the message or the upgrade") {
    weir::headers h;
    CHECK_THROWS_AS(h.add("Content-Length", "5"), weir::protocol_header_error);
    CHECK_THROWS_AS(h.set("upgrade", "websocket"), weir::protocol_header_error);
    CHECK_THROWS_AS(h.add("Sec-WebSocket-Accept", "x"), weir::protocol_header_error);
    CHECK_THROWS_AS(h.add("X-Evil", "a\r\nSet-Cookie: b"), std::invalid_argument);
}

namespace {
// A library-style stage: works in front of a plain downstream and in front of a coroutine alike.
struct require_header {
    template <class Req, class Next>
    weir::next_result_t<Next> operator()(const Req& req, Next next) const {
        if (!req.header("x-key")) return weir::respond(next, weir::response(weir::status::forbidden));
        return weir::after_next(next, req, [](auto& reply) { reply.headers().add("X-Checked", "yes"); });
    }
};
} // namespace

TEST_CASE("a stage written with after_next and respond works before plain and coroutine handlers") {
    auto message = make_message();
    weir::pipeline plain{require_header{}, [](const auto&) { return weir::response(weir::status::ok); }};
    CHECK(plain(weir::request<>(message)).status() == weir::status::forbidden);
    weir::request_field key{"X-Key", "1"};
    message.fields_.push_back(key);
    CHECK(plain(weir::request<>(message)).headers().get("X-Checked") == "yes");

    weir::pipeline async{require_header{}, [](const auto&) -> asio::awaitable<weir::response> {
                             co_return weir::response(weir::status::ok);
                         }};
    CHECK(run_awaitable(async(weir::request<>(message))).headers().get("X-Checked") == "yes");
    message.fields_.clear();
    CHECK(run_awaitable(async(weir::request<>(message))).status() == weir::status::forbidden);
}
