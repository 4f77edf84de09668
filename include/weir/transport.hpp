#pragma once

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <utility>

namespace weir {

/// The byte stream under a connection and every protocol session: a non-blocking socket that is read and
/// written when it is ready. Protocols use this, never the socket, so a secure transport (TLS) fits under
/// all of them unchanged. Use on the connection's executor only.
///
/// The model is readiness, not completion: wait until readable, then `read_some` into whatever buffer is at
/// hand (the event loop's shared one), so an idle connection holds no buffer while it waits.
class transport {
public:
    using executor_type = asio::ip::tcp::socket::executor_type;

    /// Takes an open socket and makes it non-blocking.
    explicit transport(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
        asio::error_code ec;
        socket_.non_blocking(true, ec);
    }

    executor_type get_executor() noexcept { return socket_.get_executor(); }

    /// Completes (`void(asio::error_code)`) once bytes or the end of the stream can be read. One wait at a time.
    template <class Token>
    auto async_wait_readable(Token&& token) {
        return socket_.async_wait(asio::socket_base::wait_read, std::forward<Token>(token));
    }

    /// Completes (`void(asio::error_code)`) once a write can make progress. One wait at a time.
    template <class Token>
    auto async_wait_writable(Token&& token) {
        return socket_.async_wait(asio::socket_base::wait_write, std::forward<Token>(token));
    }

    /// Reads what is there without waiting. Nothing there: returns 0 with `asio::error::would_block`; the
    /// peer closed: `asio::error::eof`.
    std::size_t read_some(asio::mutable_buffer buffer, asio::error_code& ec) {
        return socket_.read_some(buffer, ec);
    }

    /// Writes what fits without waiting, gathering `buffers` into one call. Nothing fits: returns 0 with
    /// `asio::error::would_block`.
    template <class ConstBufferSequence>
    std::size_t write_some(const ConstBufferSequence& buffers, asio::error_code& ec) {
        std::size_t n = socket_.write_some(buffers, ec);
        if (ec == asio::error::try_again) ec = asio::error::would_block;
        return n;
    }

    /// Ends pending waits with `asio::error::operation_aborted`.
    void cancel() noexcept {
        asio::error_code ec;
        socket_.cancel(ec);
    }

    /// Says the server will send nothing more (a TLS transport sends close_notify first); reads go on.
    void shutdown_send() noexcept {
        asio::error_code ec;
        socket_.shutdown(asio::socket_base::shutdown_send, ec);
    }

    /// Closes at once; pending waits end with `operation_aborted`.
    void close() noexcept {
        asio::error_code ec;
        socket_.shutdown(asio::socket_base::shutdown_both, ec);
        socket_.close(ec);
    }

    bool is_open() const noexcept { return socket_.is_open(); }

    /// True when the bytes are encrypted (TLS).
    bool is_secure() const noexcept { return false; }

    /// The peer's address, or a default endpoint if the socket is no longer connected.
    asio::ip::tcp::endpoint remote_endpoint() const noexcept {
        asio::error_code ec;
        return socket_.remote_endpoint(ec);
    }

    /// The TCP socket underneath, for socket options.
    asio::ip::tcp::socket& lowest_layer() noexcept { return socket_; }

private:
    asio::ip::tcp::socket socket_;
};

} // namespace weir
