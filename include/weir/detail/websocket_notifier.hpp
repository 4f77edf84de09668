#pragma once

// Wakes the coroutines of one WebSocket session that wait for its state to change (a message arrived, the
// send queue has room, a write finished). Cheaper than a timer used as a signal: no timer queue, no system
// call; a wake-up is one post to the waiter's executor. Not thread-safe: used on the session's executor.

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace weir::detail {

class ws_notifier {
public:
    ws_notifier() = default;
    ws_notifier(const ws_notifier&) = delete;
    ws_notifier& operator=(const ws_notifier&) = delete;
    ~ws_notifier() = default;

    // Completes (with no arguments) at the next notify_all(), or when the operation is cancelled.
    template <class Token>
    auto async_wait(Token&& token) {
        return asio::async_initiate<Token, void()>(
            [this](auto handler) {
                using handler_type = decltype(handler);
                auto slot = asio::get_associated_cancellation_slot(handler);
                std::uint64_t id = ++last_id_;
                waiters_.push_back(std::make_unique<waiter<handler_type>>(id, std::move(handler), slot));
                if (slot.is_connected()) slot.template emplace<canceller>(this, id);
            },
            token);
    }

    // Wakes every waiter; each resumes later, through its own executor.
    void notify_all() {
        if (waiters_.empty()) return;
        // In place: a wake-up only posts, so nothing reaches this notifier meanwhile, and the list keeps its
        // storage (a session that waits once per message does not allocate a list per message).
        for (auto& w : waiters_) w->wake(true);
        waiters_.clear();
    }

    bool has_waiters() const noexcept { return !waiters_.empty(); }

private:
    struct waiter_base {
        explicit waiter_base(std::uint64_t i) : id(i) {}
        virtual ~waiter_base() = default;
        // `clear_slot` is false when called from the slot's own handler, which must not destroy itself.
        virtual void wake(bool clear_slot) = 0;
        std::uint64_t id;
    };

    template <class Handler>
    struct waiter final : waiter_base {
        waiter(std::uint64_t i, Handler h, asio::cancellation_slot s)
            : waiter_base(i), handler(std::move(h)), slot(s) {}
        ~waiter() override {
            if (slot.is_connected()) slot.clear(); // never woken: its canceller must not outlive it
        }
        void wake(bool clear_slot) override {
            if (clear_slot && slot.is_connected()) slot.clear();
            slot = asio::cancellation_slot();
            auto ex = asio::get_associated_executor(handler);
            asio::post(ex, std::move(handler));
        }
        Handler handler;
        asio::cancellation_slot slot;
    };

    struct canceller {
        // A constructor, not an aggregate: emplace constructs it with parentheses (clang 14 lacks P0960).
        canceller(ws_notifier* s, std::uint64_t i) noexcept : self(s), id(i) {}
        ws_notifier* self;
        std::uint64_t id;
        void operator()(asio::cancellation_type type) {
            if (type != asio::cancellation_type::none) self->cancel(id);
        }
    };

    void cancel(std::uint64_t id) {
        auto it = std::find_if(waiters_.begin(), waiters_.end(), [id](auto& w) { return w->id == id; });
        if (it == waiters_.end()) return;
        auto w = std::move(*it);
        waiters_.erase(it);
        w->wake(false);
    }

    std::vector<std::unique_ptr<waiter_base>> waiters_;
    std::uint64_t last_id_ = 0;
};

} // namespace weir::detail
