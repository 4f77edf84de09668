#include <weir/router.hpp>

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <string>
#include <type_traits>

namespace {

weir::http_request make_message(std::string_view method, std::string_view path) {
    weir::http_request m;
    m.method_ = method;
    m.target_ = path;
    m.path_ = path;
    return m;
}

template <class Router>
auto call(Router& r, std::string_view method, std::string_view path) {
    auto m = make_message(method, path);
    return r(weir::request<>(m));
}

std::string body_of(auto& reply) {
    auto* r = reply.template get_if<weir::response>();
    return r ? r->body() : std::string();
}

} // namespace

TEST_CASE("literal routes dispatch by path and method") {
    weir::router r{
        weir::get<"/">([](const auto&) { return weir::response(weir::status::ok, "root"); }),
        weir::get<"/a/b">([](const auto&) { return weir::response(weir::status::ok, "ab"); }),
        weir::post<"/a/b">([](const auto&) { return weir::response(weir::status::created, "posted"); }),
    };
    auto root = call(r, "GET", "/");
    CHECK(body_of(root) == "root");
    auto ab = call(r, "GET", "/a/b");
    CHECK(body_of(ab) == "ab");
    auto posted = call(r, "POST", "/a/b");
    CHECK(posted.status() == weir::status::created);
    CHECK(call(r, "GET", "/a").status() == weir::status::not_found);
    CHECK(call(r, "GET", "/a/b/c").status() == weir::status::not_found);
}

TEST_CASE("a path that matches with another method is a 405 listing the allowed methods") {
    weir::router r{
        weir::get<"/items">([](const auto&) { return weir::response(weir::status::ok); }),
        weir::post<"/items">([](const auto&) { return weir::response(weir::status::ok); }),
    };
    auto res = call(r, "DELETE", "/items");
    CHECK(res.status() == weir::status::method_not_allowed);
    CHECK(res.headers().get("Allow") == "GET, HEAD, POST");
}

TEST_CASE("HEAD is answered by the GET route") {
    weir::router r{weir::get<"/x">([](const auto&) { return weir::response(weir::status::ok, "x"); })};
    CHECK(call(r, "HEAD", "/x").status() == weir::status::ok);
}

TEST_CASE("path parameters convert to the handler's parameter types") {
    weir::router r{
        weir::get<"/users/{id}">([](const weir::request<>&, int id) {
            return weir::response(weir::status::ok, "user " + std::to_string(id + 1));
        }),
        weir::get<"/files/{name}/raw">([](const weir::request<>&, std::string name) {
            return weir::response(weir::status::ok, name);
        }),
        weir::get<"/static/{rest...}">([](const auto&, std::string_view rest) {
            return weir::response(weir::status::ok, std::string(rest));
        }),
    };
    auto u = call(r, "GET", "/users/41");
    CHECK(body_of(u) == "user 42");
    CHECK(call(r, "GET", "/users/abc").status() == weir::status::not_found);
    auto f = call(r, "GET", "/files/a%20b/raw");
    CHECK(body_of(f) == "a b");
    auto s = call(r, "GET", "/static/css/site.css");
    CHECK(body_of(s) == "css/site.css");
}

TEST_CASE("a router with one coroutine handler answers every route through an awaitable") {
    weir::router r{
        weir::get<"/sync">([](const auto&) { return weir::response(weir::status::ok, "sync"); }),
        weir::get<"/async">([](const auto&) -> asio::awaitable<weir::response> {
            co_return weir::response(weir::status::ok, "async");
        }),
    };
    auto run = [&](std::string_view path) {
        auto m = make_message("GET", path);
        asio::io_context io;
        auto f = asio::co_spawn(io, r(weir::request<>(m)), asio::use_future);
        io.run();
        return f.get();
    };
    auto a = run("/async");
    CHECK(body_of(a) == "async");
    auto s = run("/sync");
    CHECK(body_of(s) == "sync");
    CHECK(run("/none").status() == weir::status::not_found);
}

TEST_CASE("a generic handler's path parameters are owning, percent-decoded std::string values") {
    // A generic handler may capture its parameters into an SSE stream or WebSocket session, which runs after the
    // request's buffer is gone: views into that buffer would dangle there.
    weir::router r{
        weir::get<"/rooms/{room}/users/{user}">([](const auto&, auto room, const auto& user) {
            static_assert(std::is_same_v<decltype(room), std::string>);
            static_assert(std::is_same_v<std::remove_cvref_t<decltype(user)>, std::string>);
            return weir::response(weir::status::ok, room + "|" + user);
        }),
    };
    auto res = call(r, "GET", "/rooms/blue%20room/users/ada");
    CHECK(body_of(res) == "blue room|ada");
}
