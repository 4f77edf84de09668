#pragma once

// What a running WebSocket session consults of its websocket_options: the limits and timeouts, without what
// only the handshake needs (subprotocols, origins) or what is used once at the start (deflate settings).
// Sessions share one immutable copy per distinct set of limits on their event loop, so that each holds a
// pointer rather than the values.

#include <weir/websocket/options.hpp>
#include <weir/detail/event_loop.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

namespace weir::detail {

struct ws_limits {
    explicit ws_limits(const websocket_options& o) noexcept
        : send_queue_capacity(o.send_queue_capacity), send_queue_bytes(o.send_queue_bytes),
          inbox_bytes(o.inbox_bytes), ping_interval(o.ping_interval), idle_timeout(o.idle_timeout),
          close_timeout(o.close_timeout), on_full(o.on_full) {}
    bool operator==(const ws_limits&) const = default;

    std::size_t send_queue_capacity, send_queue_bytes, inbox_bytes;
    std::chrono::milliseconds ping_interval, idle_timeout, close_timeout;
    websocket_full_queue_policy on_full;
};

// The shared copies of one event loop (one io_context, one thread). A server uses a few distinct sets of
// limits (one per route, typically): the first few are kept for the loop's lifetime; past those, sessions
// get a copy of their own.
class ws_limits_table final {
public:
    static constexpr std::size_t max_kept = 16;

    static ws_limits_table& of(asio::io_context& io) { return of(event_loop::of(io)); }
    static ws_limits_table& of(event_loop& loop) { return loop.part<ws_limits_table>(); }

    std::shared_ptr<const ws_limits> get(const websocket_options& options) {
        ws_limits wanted(options);
        for (auto& l : kept_)
            if (*l == wanted) return l;
        auto made = std::make_shared<const ws_limits>(wanted);
        if (kept_.size() < max_kept) kept_.push_back(made);
        return made;
    }

    std::size_t kept() const noexcept { return kept_.size(); }

private:
    std::vector<std::shared_ptr<const ws_limits>> kept_;
};

} // namespace weir::detail
