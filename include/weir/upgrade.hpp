#pragma once

#include <weir/http/headers.hpp>
#include <weir/http/status.hpp>
#include <weir/transport.hpp>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace weir {

/// What a committed upgrade gets from the connection: the transport, the bytes that arrived after the request
/// head, and a way to hear of the server's graceful shutdown. The connection closes the transport after the
/// protocol's `run` returns.
class upgraded_connection {
public:
    upgraded_connection(weir::transport& transport, std::string leftover)
        : transport_(&transport), leftover_(std::move(leftover)) {}

    /// The connection's byte stream; its executor is the connection's (one thread at a time).
    weir::transport& transport() noexcept { return *transport_; }

    /// Bytes received after the request head (the first WebSocket frames, say). Take them before reading.
    std::string take_leftover() noexcept { return std::move(leftover_); }

    /// Registers what to do when the server begins a graceful shutdown (close a WebSocket with 1001, end an
    /// event stream). Runs on the connection's executor, at most once. Replaces an earlier callback.
    void on_shutdown(std::function<void()> callback) {
        if (shutting_down_) {
            if (callback) callback();
            return;
        }
        shutdown_ = std::move(callback);
    }

    /// Counts bytes a protocol wrote to the socket, for the summary given to `pending<P>::on_end` callbacks.
    void count_written(std::size_t n) noexcept { written_ += n; }
    std::size_t bytes_written() const noexcept { return written_; }

    /// True once the server has begun to shut down.
    bool shutting_down() const noexcept { return shutting_down_; }

    /// Called by the server (on the connection's executor) when it begins to shut down.
    void begin_shutdown() {
        if (shutting_down_) return;
        shutting_down_ = true;
        if (auto callback = std::move(shutdown_)) callback();
    }

private:
    weir::transport* transport_;
    std::string leftover_;
    std::function<void()> shutdown_;
    std::size_t written_ = 0;
    bool shutting_down_ = false;
};

/// How a committed upgrade went, once its session ended.
struct upgrade_summary {
    std::chrono::steady_clock::duration duration{}; ///< from the head's write to the session's end
    std::size_t bytes_written = 0;                  ///< bytes the session wrote after the head
};

/// A protocol that a reply can upgrade to (SSE, WebSocket ...). The final stage asks it:
/// - `P::commits(status)`: does a head with this status still mean "go"? (SSE: 2xx; WebSocket: 101)
/// - `p.prepare_head(headers)`: set the ordinary headers the protocol needs (Content-Type ...);
/// - `p.write_protocol_fields(out)`: append the framing and upgrade fields that no stage may set
///   ("Upgrade: websocket\r\n" ...), each ending in CRLF;
/// - `p.run(connection)`: run the session after the head is written.
template <class P>
concept protocol = requires(P& p, const P& cp, weir::status s, weir::headers& h, std::string& out,
                            upgraded_connection& c) {
    { P::default_status } -> std::convertible_to<weir::status>;
    { P::commits(s) } -> std::same_as<bool>;
    p.prepare_head(h);
    cp.write_protocol_fields(out);
    { p.run(c) } -> std::same_as<asio::awaitable<void>>;
};

/// What a session that runs from callbacks calls once when it has ended (on the connection's executor), with the
/// error that ended it, if any.
using upgrade_done = std::function<void(std::exception_ptr)>;

/// A protocol whose session can also run from callbacks, with no coroutine kept while it is idle:
/// `p.start(connection, done)` starts it and returns; the session calls `done` once when it has ended, and
/// `connection` lives until then. The final stage prefers `start` to `run` when a protocol has both.
template <class P>
concept callback_protocol = protocol<P> && requires(P& p, upgraded_connection& c, upgrade_done d) {
    p.start(c, std::move(d));
};

namespace detail {

// A callback protocol's `run`: starts the session and waits until it has ended; rethrows what ended it.
template <class P>
asio::awaitable<void> run_started_session(P& protocol, upgraded_connection& connection) {
    asio::steady_timer ended(connection.transport().get_executor(), asio::steady_timer::time_point::max());
    std::exception_ptr error;
    bool over = false;
    protocol.start(connection, [&](std::exception_ptr e) {
        error = std::move(e);
        over = true;
        ended.cancel();
    });
    while (!over) {
        asio::error_code ec;
        co_await ended.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (error) std::rethrow_exception(error);
}

} // namespace detail

} // namespace weir
