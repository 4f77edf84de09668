// The compile-time baseline: the smallest HTTP "hello" written directly with Asio coroutines.
#include <asio.hpp>

#include <string>

asio::awaitable<void> session(asio::ip::tcp::socket s) {
    char buf[4096];
    std::string pending;
    for (;;) {
        asio::error_code ec;
        auto n = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
        pending.append(buf, n);
        std::size_t end;
        while ((end = pending.find("\r\n\r\n")) != std::string::npos) {
            pending.erase(0, end + 4);
            static const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
            co_await asio::async_write(s, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
        }
    }
}

asio::awaitable<void> listen(asio::ip::tcp::acceptor& a) {
    for (;;) {
        auto s = co_await a.async_accept(asio::use_awaitable);
        asio::co_spawn(a.get_executor(), session(std::move(s)), asio::detached);
    }
}

int main() {
    asio::io_context io{1};
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 8080});
    asio::co_spawn(io, listen(a), asio::detached);
    io.run();
}
