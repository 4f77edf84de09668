#pragma once

// Spare objects of one kind kept by an event loop (one io_context, one thread) for its WebSocket sessions: a
// session takes one while it needs it (its send queue and write batch while it sends) and gives it back when
// done, so a quiet session holds none and a busy loop reuses the same few, their buffers included. A part of
// the loop's detail::event_loop, so a session reaches it without a service lookup.

#include <weir/detail/event_loop.hpp>

#include <asio/io_context.hpp>

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace weir::detail {

template <class T>
class ws_spares final {
public:
    // As many as the sessions that send in one turn of a busy loop (64 echoing clients each flush after their
    // read pass, or after their handler's send): fewer, and each turn allocates and frees the difference. More
    // would be memory kept for a burst that has passed (a kept one is trimmed: a few small messages' room).
    static constexpr std::size_t max_kept = 64;

    static ws_spares& of(asio::io_context& io) { return of(event_loop::of(io)); }
    static ws_spares& of(event_loop& loop) { return loop.part<ws_spares>(); }

    std::unique_ptr<T> take() {
        if (kept_.empty()) return std::make_unique<T>();
        auto t = std::move(kept_.back());
        kept_.pop_back();
        return t;
    }

    // `t` must be as take() would want it (emptied).
    void give(std::unique_ptr<T> t) {
        if (kept_.size() < max_kept) kept_.push_back(std::move(t));
    }

    std::size_t kept() const noexcept { return kept_.size(); }

private:
    std::vector<std::unique_ptr<T>> kept_;
};

} // namespace weir::detail
