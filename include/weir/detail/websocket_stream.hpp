#pragma once

// The byte stream under a WebSocket session: weir::transport's interface (readiness waits, non-blocking reads
// and writes) over a TCP socket that the connection owns. The session talks only to this interface, so that
// once upgraded_connection hands out its transport the session takes that instead (its `stream_` member
// becomes a `weir::transport&`) and a secure transport fits under it unchanged.

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <utility>

namespace weir::detail {

class ws_socket_stream {
public:
    using executor_type = asio::ip::tcp::socket::executor_type;

    /// Uses an open socket, which it makes non-blocking.
    explicit ws_socket_stream(asio::ip::tcp::socket& socket) : socket_(socket) {
        asio::error_code ec;
        socket_.non_blocking(true, ec);
    }

    executor_type get_executor() noexcept { return socket_.get_executor(); }

    template <class Token>
    auto async_wait_readable(Token&& token) {
        return socket_.async_wait(asio::socket_base::wait_read, std::forward<Token>(token));
    }

    template <class Token>
    auto async_wait_writable(Token&& token) {
        return socket_.async_wait(asio::socket_base::wait_write, std::forward<Token>(token));
    }

    std::size_t read_some(asio::mutable_buffer buffer, asio::error_code& ec) {
        std::size_t n = socket_.read_some(buffer, ec);
        if (ec == asio::error::try_again) ec = asio::error::would_block;
        return n;
    }

    template <class ConstBufferSequence>
    std::size_t write_some(const ConstBufferSequence& buffers, asio::error_code& ec) {
        std::size_t n = socket_.write_some(buffers, ec);
        if (ec == asio::error::try_again) ec = asio::error::would_block;
        return n;
    }

    void cancel() noexcept {
        asio::error_code ec;
        socket_.cancel(ec);
    }

    void shutdown_send() noexcept {
        asio::error_code ec;
        socket_.shutdown(asio::socket_base::shutdown_send, ec);
    }

private:
    asio::ip::tcp::socket& socket_;
};

} // namespace weir::detail
