// weir::server end to end on loopback: the connection core with a plain application (its fast path and its
// coroutine path), with a coroutine application, and an error answer. tests/CMakeLists.txt builds this file
// header-only and again with WEIR_SEPARATE_COMPILATION (weir::separate), so both modes serve these requests.

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>

#include <doctest/doctest.h>

#include <asio/awaitable.hpp>
#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace {

// Runs `server` on a thread of its own until the test ends.
template <class Server>
struct running {
    explicit running(Server& s) : server(s), port(s.listen().port()), thread([this] { server.run(); }) {}
    ~running() {
        server.stop();
        thread.join();
    }
    Server& server;
    unsigned short port;
    std::thread thread;
};

// Sends `request` in pieces (each written on its own, a moment apart), then reads until the server closes.
std::string exchange(unsigned short port, std::initializer_list<std::string_view> pieces) {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::address_v4::loopback(), port});
    for (auto piece : pieces) {
        asio::write(socket, asio::buffer(piece));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string answer;
    asio::error_code ec;
    asio::read(socket, asio::dynamic_buffer(answer), ec);
    return answer;
}

weir::server_options test_options() {
    weir::server_options options;
    options.port = 0;
    options.handle_signals = false;
    options.error_log = [](std::string_view) {};
    return options;
}

std::size_t count(std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

} // namespace

TEST_CASE("a plain application answers whole, split and pipelined requests in order, then closes") {
    weir::router app{
        weir::get<"/hello/{name}">([](const weir::request<>&, std::string name) {
            return weir::response(weir::status::ok, "hello " + name);
        }),
    };
    static_assert(weir::detail::serves_plain_v<decltype(app)>, "this test is about the plain application's paths");
    weir::server server(std::move(app), test_options());
    running run(server);

    auto whole = exchange(run.port, {"GET /hello/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
    CHECK(whole.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(whole.ends_with("hello a"));

    // A head split across reads goes from the fast path to the connection's coroutine.
    auto split = exchange(run.port, {"GET /hello/b HT", "TP/1.1\r\nHost: x\r\n", "Connection: close\r\n\r\n"});
    CHECK(split.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(split.ends_with("hello b"));

    auto pipelined = exchange(run.port, {"GET /hello/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/2 HTTP/1.1\r\nHost: x\r\n"
                                         "\r\nGET /hello/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
    CHECK(count(pipelined, "HTTP/1.1 200 OK\r\n") == 3);
    auto first = pipelined.find("hello 1"), second = pipelined.find("hello 2"), third = pipelined.find("hello 3");
    CHECK(first < second);
    CHECK(second < third);
    CHECK(third != std::string::npos);

    auto missing = exchange(run.port, {"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
    CHECK(missing.starts_with("HTTP/1.1 404 "));
}

TEST_CASE("a malformed request is answered 400 and the connection closes") {
    weir::server server([](const weir::request<>&) { return weir::response(weir::status::ok, "never"); },
                        test_options());
    running run(server);
    auto answer = exchange(run.port, {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"});
    CHECK(answer.starts_with("HTTP/1.1 400 "));
    CHECK(answer.find("never") == std::string::npos);
}

TEST_CASE("a coroutine application is dispatched through the connection core, and a throwing one gets 500") {
    weir::server server(
        [](const weir::request<>& req) -> asio::awaitable<weir::response> {
            if (req.path() == "/throw") throw std::runtime_error("handler failed");
            co_return weir::response(weir::status::ok, "async " + std::string(req.path()));
        },
        test_options());
    running run(server);
    auto answer = exchange(run.port, {"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n",
                                      "Connection: close\r\n\r\n"});
    CHECK(count(answer, "HTTP/1.1 200 OK\r\n") == 2);
    CHECK(answer.find("async /a") < answer.find("async /b"));
    auto failed = exchange(run.port, {"GET /throw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
    CHECK(failed.starts_with("HTTP/1.1 500 "));
}

TEST_CASE("a HEAD request gets the head of the response and no body") {
    weir::server server([](const weir::request<>&) { return weir::response(weir::status::ok, "body text"); },
                        test_options());
    running run(server);
    auto answer = exchange(run.port, {"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
    CHECK(answer.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(answer.find("Content-Length: 9\r\n") != std::string::npos);
    CHECK(answer.ends_with("\r\n\r\n"));
}

TEST_CASE("a response is written whole: status line, Date, fields in order, framing, then the body") {
    weir::server server(
        [](const weir::request<>& req) {
            auto path = req.path();
            if (path == "/empty") return weir::response(weir::status::no_content);
            std::size_t size = path == "/small" ? 13 : path == "/1024" ? 1024 : path == "/1025" ? 1025 : 70000;
            weir::response r(weir::status::ok, std::string(size, 'b'));
            r.headers().add("X-Long-Name-Over-Fifteen", "a value longer than fifteen bytes");
            r.headers().add("X-A", "1");
            return r;
        },
        test_options());
    running run(server);
    // The Date value is the one part that varies: it is cut out before comparing.
    auto without_date = [](std::string s) {
        std::size_t dates = 0;
        for (auto at = s.find("\r\nDate: "); at != std::string::npos; at = s.find("\r\nDate: ", at + 8)) {
            auto end = s.find("\r\n", at + 2);
            CHECK(end - (at + 8) == 29); // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
            s.erase(at + 8, end - (at + 8));
            ++dates;
        }
        CHECK(dates > 0);
        return s;
    };
    for (std::size_t size : {13, 1024, 1025, 70000}) {
        CAPTURE(size);
        std::string path = size == 13 ? "/small" : "/" + std::to_string(size);
        auto answer = exchange(run.port, {"GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
        CHECK(without_date(answer) == "HTTP/1.1 200 OK\r\nDate: \r\nContent-Type: text/plain; charset=utf-8\r\n"
                                      "X-Long-Name-Over-Fifteen: a value longer than fifteen bytes\r\nX-A: 1\r\n"
                                      "Content-Length: " + std::to_string(size) + "\r\nConnection: close\r\n\r\n" +
                                          std::string(size, 'b'));
    }
    auto head = exchange(run.port, {"HEAD /1025 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
    CHECK(without_date(head) == "HTTP/1.1 200 OK\r\nDate: \r\nContent-Type: text/plain; charset=utf-8\r\n"
                                "X-Long-Name-Over-Fifteen: a value longer than fifteen bytes\r\nX-A: 1\r\n"
                                "Content-Length: 1025\r\nConnection: close\r\n\r\n");
    auto empty = exchange(run.port, {"GET /empty HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                     "GET /empty HTTP/1.0\r\n\r\n"});
    CHECK(without_date(empty) == "HTTP/1.1 204 No Content\r\nDate: \r\nConnection: keep-alive\r\n\r\n"
                               "HTTP/1.1 204 No Content\r\nDate: \r\nConnection: close\r\n\r\n");
}
