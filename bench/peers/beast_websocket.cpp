// Boost.Beast peer: single-threaded async WebSocket echo server (any target), text and binary messages echoed
// as they came, no permessage-deflate; the same job as weir_streams' /echo route for the echo benchmark.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class session : public std::enable_shared_from_this<session> {
public:
    explicit session(tcp::socket s) : ws_(std::move(s)) {}

    void run() {
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
            if (!ec) self->read();
        });
    }

private:
    void read() {
        ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return;
            self->ws_.text(self->ws_.got_text());
            self->ws_.async_write(self->buffer_.data(), [self](beast::error_code ec, std::size_t) {
                if (ec) return;
                self->buffer_.consume(self->buffer_.size());
                self->read();
            });
        });
    }

    websocket::stream<beast::tcp_stream> ws_;
    beast::flat_buffer buffer_;
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
    std::printf("listening on ws://127.0.0.1:%u\n", acceptor.local_endpoint().port());
    std::fflush(stdout);
    accept(acceptor);
    net::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](auto, int) { io.stop(); });
    io.run();
}
