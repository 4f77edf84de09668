// Boost.Beast peer: single-threaded async HTTP/1.1 server, GET /plaintext with the same three headers.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class session : public std::enable_shared_from_this<session> {
public:
    explicit session(tcp::socket s) : stream_(std::move(s)) {}
    void run() { read(); }

private:
    void read() {
        req_ = {};
        http::async_read(stream_, buffer_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            self->respond();
        });
    }
    void respond() {
        res_ = {};
        res_.version(req_.version());
        res_.keep_alive(req_.keep_alive());
        if (req_.target() == "/plaintext") {
            res_.result(http::status::ok);
            res_.set(http::field::content_type, "text/plain");
            res_.set(http::field::access_control_allow_origin, "*");
            res_.set("X-Content-Type-Options", "nosniff");
            res_.set("X-Frame-Options", "DENY");
            res_.body() = "Hello, World!";
        } else {
            res_.result(http::status::not_found);
        }
        res_.prepare_payload();
        http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec || !self->res_.keep_alive()) return;
            self->read();
        });
    }
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> req_;
    http::response<http::string_body> res_;
};

void accept(tcp::acceptor& a) {
    a.async_accept([&a](beast::error_code ec, tcp::socket s) {
        if (!ec) {
            s.set_option(tcp::no_delay(true));
            std::make_shared<session>(std::move(s))->run();
        }
        accept(a);
    });
}

int main(int argc, char** argv) {
    unsigned short port = argc > 1 ? static_cast<unsigned short>(std::atoi(argv[1])) : 8080;
    net::io_context io{1};
    tcp::acceptor acceptor(io, {net::ip::make_address("127.0.0.1"), port});
    std::printf("listening on http://127.0.0.1:%u\n", acceptor.local_endpoint().port());
    std::fflush(stdout);
    accept(acceptor);
    net::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](auto, int) { io.stop(); });
    io.run();
}
