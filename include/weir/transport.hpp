#pragma once

#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/compose.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/query.hpp>

#include <array>
#include <cstddef>
#include <iterator>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

namespace weir {

namespace detail {

// What a secure transport (TLS) does on top of the socket. It reads and writes the socket's descriptor itself
// (non-blocking); encrypted bytes the socket could not take yet wait in it (its backlog) until the socket is
// writable. Implemented in <weir/tls.hpp>; used on the connection's executor only.
class secure_layer {
public:
    virtual ~secure_layer() = default;
    // Advances the handshake: true once it is done; false with `would_block` when it waits for the peer, or
    // with another error when it failed (it may have answered a plain HTTP request itself).
    virtual bool handshake(asio::error_code& ec) = 0;
    // Decrypted bytes, as transport::read_some.
    virtual std::size_t read(asio::mutable_buffer buffer, asio::error_code& ec) = 0;
    // Encrypts and sends, as transport::write_some: counts only bytes whose records reached the socket.
    virtual std::size_t write(const asio::const_buffer* buffers, std::size_t count, asio::error_code& ec) = 0;
    // Bytes already read from the socket that a read will return without waiting.
    virtual bool has_buffered_input() const noexcept = 0;
    // Encrypted bytes waiting for the socket.
    virtual bool has_backlog() const noexcept = 0;
    // Sends what the backlog holds; true once it is empty.
    virtual bool send_backlog(asio::error_code& ec) = 0;
    // Sends the closing alert (close_notify).
    virtual void shutdown() noexcept = 0;
    // The protocol chosen by ALPN ("http/1.1"), empty if none.
    virtual std::string_view application_protocol() const noexcept = 0;
    // The handshake failed because a plain HTTP request came instead, and the layer answered it (400).
    virtual bool answered_plain_http() const noexcept = 0;
};

} // namespace detail

/// Makes accepted connections secure: `server_options::tls` holds one. weir::tls_context (<weir/tls.hpp>, CMake
/// target weir::tls) is the TLS implementation on OpenSSL; weir::weir itself never needs OpenSSL.
class transport_security {
public:
    virtual ~transport_security() = default;
    /// The secure layer for one accepted socket, with the settings current now (a reload affects later ones).
    virtual std::unique_ptr<detail::secure_layer> secure(asio::basic_stream_socket<asio::ip::tcp,
                                                         asio::io_context::executor_type>& socket) = 0;
    /// Reads the certificates and keys again, for connections accepted from now on. Thread-safe. Throws if they
    /// cannot be loaded, and then keeps the previous ones.
    virtual void reload() = 0;
};

/// The byte stream under a connection and every protocol session: a non-blocking socket that is read and
/// written when it is ready, optionally secured (TLS). Protocols use this, never the socket, so they work over
/// TLS unchanged. Use on the connection's executor only.
///
/// The model is readiness, not completion: wait until readable, then `read_some` into whatever buffer is at
/// hand (the event loop's shared one), so an idle connection holds no buffer while it waits.
class transport {
public:
    /// The socket underneath: bound to an io_context's executor (an event loop), which keeps it small.
    using socket_type = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;
    using executor_type = socket_type::executor_type;

    /// Takes an open socket and makes it non-blocking; with `secure`, bytes go through that layer (TLS), whose
    /// handshake (async_handshake) must finish before the first read.
    explicit transport(socket_type socket, std::unique_ptr<detail::secure_layer> secure = nullptr)
        : socket_(std::move(socket)), secure_(std::move(secure)) {
        asio::error_code ec;
        socket_.non_blocking(true, ec);
    }

    /// Takes a socket with a polymorphic executor, which must be an io_context's.
    explicit transport(asio::ip::tcp::socket socket, std::unique_ptr<detail::secure_layer> secure = nullptr)
        : transport(adopt(std::move(socket)), std::move(secure)) {}

    executor_type get_executor() noexcept { return socket_.get_executor(); }

    /// Completes (`void(asio::error_code)`) once bytes or the end of the stream can be read. One wait at a time.
    template <class Token>
    auto async_wait_readable(Token&& token) {
        return asio::async_initiate<Token, void(asio::error_code)>(
            [this](auto handler) {
                if (secure_ && secure_->has_buffered_input()) {
                    // Decrypted bytes are waiting in the secure layer: the socket may never become readable.
                    auto executor = asio::get_associated_executor(handler, get_executor());
                    asio::post(executor, [h = std::move(handler)]() mutable { std::move(h)(asio::error_code()); });
                    return;
                }
                socket_.async_wait(asio::socket_base::wait_read, std::move(handler));
            },
            token);
    }

    /// Completes (`void(asio::error_code)`) once a write can make progress (a secure transport has then sent
    /// its backlog). One wait at a time.
    template <class Token>
    auto async_wait_writable(Token&& token) {
        return asio::async_initiate<Token, void(asio::error_code)>(
            [this](auto handler) {
                if (!secure_) {
                    socket_.async_wait(asio::socket_base::wait_write, std::move(handler));
                    return;
                }
                // Wait until the socket takes writes, then send the secure layer's backlog; again while some is
                // left.
                asio::async_compose<decltype(handler), void(asio::error_code)>(
                    [this, waited = false](auto& self, asio::error_code ec = {}) mutable {
                        if (waited && !ec && !secure_->send_backlog(ec) && !ec) {
                            socket_.async_wait(asio::socket_base::wait_write, std::move(self));
                            return;
                        }
                        if (waited || ec) {
                            self.complete(ec);
                            return;
                        }
                        waited = true;
                        socket_.async_wait(asio::socket_base::wait_write, std::move(self));
                    },
                    handler, socket_);
            },
            token);
    }

    /// Completes (`void(asio::error_code)`) once a secure transport's handshake is done (at once for a plain
    /// one). Bound it with a deadline that cancel()s. A plain HTTP request sent to a TLS port fails it, after
    /// a `400` answer in plain text (see answered_plain_http()).
    template <class Token>
    auto async_handshake(Token&& token) {
        return asio::async_compose<Token, void(asio::error_code)>(
            [this, started = false](auto& self, asio::error_code ec = {}) mutable {
                if (!started) {
                    started = true;
                    // The client speaks first, so the first step waits: completion is never inline.
                    if (secure_) socket_.async_wait(asio::socket_base::wait_read, std::move(self));
                    else asio::post(socket_.get_executor(), std::move(self));
                    return;
                }
                if (!ec && secure_ && !secure_->handshake(ec) && ec == asio::error::would_block) {
                    socket_.async_wait(secure_->has_backlog() ? asio::socket_base::wait_write
                                                              : asio::socket_base::wait_read,
                                       std::move(self));
                    return;
                }
                self.complete(ec);
            },
            token, socket_);
    }

    /// The last handshake failed on a plain HTTP request, which was answered `400` in plain text.
    bool answered_plain_http() const noexcept { return secure_ && secure_->answered_plain_http(); }

    /// Reads what is there without waiting. Nothing there: returns 0 with `asio::error::would_block`; the
    /// peer closed: `asio::error::eof`.
    std::size_t read_some(asio::mutable_buffer buffer, asio::error_code& ec) {
        if (secure_) return secure_->read(buffer, ec);
        return socket_.read_some(buffer, ec);
    }

    /// A write of several buffers that total at most this many bytes is copied into one and sent with `send()`.
    static constexpr std::size_t small_gather = 2048;

    /// Writes what fits without waiting, gathering `buffers` into one call. Nothing fits: returns 0 with
    /// `asio::error::would_block`.
    template <class ConstBufferSequence>
    std::size_t write_some(const ConstBufferSequence& buffers, asio::error_code& ec) {
        if (secure_) {
            // The secure layer takes an array: gather up to 64 buffers per call, the rest go next time.
            std::array<asio::const_buffer, 64> list;
            std::size_t count = 0;
            for (auto it = asio::buffer_sequence_begin(buffers), end = asio::buffer_sequence_end(buffers);
                 it != end && count < list.size(); ++it)
                list[count++] = asio::const_buffer(*it);
            return secure_->write(list.data(), count, ec);
        }
        std::size_t n = 0;
        auto first = asio::buffer_sequence_begin(buffers), end = asio::buffer_sequence_end(buffers);
        if (first != end && std::next(first) == end) {
            // One buffer goes as send(): sendmsg() makes the kernel copy a msghdr and an iovec array first, about
            // 0.2 us of a small loopback write's 4.5 us.
            n = socket_.write_some(asio::const_buffer(*first), ec);
        } else if (std::size_t size = asio::buffer_size(buffers); size <= small_gather) {
            // Several small buffers (a burst of events) are copied into one: each iovec costs the kernel about
            // 40 ns more than its bytes cost to copy here.
            std::array<char, small_gather> gathered;
            std::size_t copied = asio::buffer_copy(asio::buffer(gathered), buffers);
            n = socket_.write_some(asio::buffer(gathered.data(), copied), ec);
        } else {
            n = socket_.write_some(buffers, ec);
        }
        if (ec == asio::error::try_again) ec = asio::error::would_block;
        return n;
    }

    /// Ends pending waits with `asio::error::operation_aborted`.
    void cancel() noexcept {
        asio::error_code ec;
        socket_.cancel(ec);
    }

    /// Says the server will send nothing more (a secure transport sends close_notify first); reads go on.
    void shutdown_send() noexcept {
        asio::error_code ec;
        if (secure_) {
            secure_->shutdown();
            secure_->send_backlog(ec);
        }
        socket_.shutdown(asio::socket_base::shutdown_send, ec);
    }

    /// Closes at once; pending waits end with `operation_aborted`. A secure transport sends close_notify first if
    /// the socket takes it now.
    void close() noexcept {
        asio::error_code ec;
        if (secure_ && socket_.is_open()) {
            secure_->shutdown();
            secure_->send_backlog(ec);
        }
        socket_.shutdown(asio::socket_base::shutdown_both, ec);
        socket_.close(ec);
    }

    bool is_open() const noexcept { return socket_.is_open(); }

    /// True when the bytes are encrypted (TLS).
    bool is_secure() const noexcept { return secure_ != nullptr; }

    /// The protocol the client and server agreed on during a TLS handshake (ALPN), or empty.
    std::string_view application_protocol() const noexcept {
        return secure_ ? secure_->application_protocol() : std::string_view();
    }

    /// The peer's address, or a default endpoint if the socket is no longer connected.
    asio::ip::tcp::endpoint remote_endpoint() const noexcept {
        asio::error_code ec;
        return socket_.remote_endpoint(ec);
    }

    /// The TCP socket underneath, for socket options.
    socket_type& lowest_layer() noexcept { return socket_; }

private:
    static socket_type adopt(asio::ip::tcp::socket socket) {
        auto& io = static_cast<asio::io_context&>(asio::query(socket.get_executor(), asio::execution::context));
        if (!socket.is_open()) return socket_type(io);
        auto protocol = socket.local_endpoint().protocol();
        return socket_type(io, protocol, socket.release());
    }

    socket_type socket_;
    std::unique_ptr<detail::secure_layer> secure_;
};

} // namespace weir
