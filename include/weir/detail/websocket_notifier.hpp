#pragma once

// Wakes the coroutines of one WebSocket session that wait for its state to change (a message arrived, the
// send queue has room, a write finished). Cheaper than a timer used as a signal: no timer queue, no system
// call; a wake-up is one post to the waiter's executor. Not thread-safe: used on the session's executor.

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace weir::detail {

class ws_notifier {
public:
    ws_notifier() = default;
    ws_notifier(const ws_notifier&) = delete;
    ws_notifier& operator=(const ws_notifier&) = delete;
    ~ws_notifier() {
        waiters_.clear();
        ::operator delete(spare_);
    }

    // Completes (with no arguments) at the next notify_all(), or when the operation is cancelled.
    template <class Token>
    auto async_wait(Token&& token) {
        return asio::async_initiate<Token, void()>(
            [this](auto handler) {
                using handler_type = decltype(handler);
                auto slot = asio::get_associated_cancellation_slot(handler);
                static_assert(alignof(waiter<handler_type>) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__);
                std::uint64_t id = ++last_id_;
                void* block = take_block(sizeof(waiter<handler_type>));
                waiters_.emplace_back(new (block) waiter<handler_type>(id, std::move(handler), slot),
                                      releaser{this});
                if (slot.is_connected()) slot.template emplace<canceller>(this, id);
            },
            token);
    }

    // Wakes every waiter; each resumes later, through its own executor.
    void notify_all() {
        if (waiters_.empty()) return;
        // In place: a wake-up only posts, so nothing reaches this notifier meanwhile, and the list keeps its
        // storage (a session that waits once per message does not allocate a list per message).
        for (auto& w : waiters_) w.release()->wake(*this, true, false);
        waiters_.clear();
    }

    // Wakes every waiter; a waiter whose executor is an io_context running in this thread resumes inside this
    // call, as asio::dispatch would run it, others later through a post. For a caller that is at a point where
    // the woken coroutine may act on the session at once (the end of a WebSocket session's read pass).
    void notify_all_here() {
        if (waiters_.size() == 1) {
            // The usual case, one coroutine: taken out of the list, which keeps its storage for the coroutine
            // to wait again at once while it runs here (in the waiter's block, given back before it resumes).
            waiter_base* w = waiters_.back().release();
            waiters_.pop_back();
            w->wake(*this, true, true);
            return;
        }
        auto woken = std::move(waiters_);
        waiters_.clear(); // moved from: now empty for those that wait again
        for (auto& w : woken) w.release()->wake(*this, true, true);
    }

    bool has_waiters() const noexcept { return !waiters_.empty(); }

private:
    struct waiter_base {
        waiter_base(std::uint64_t i, std::size_t bytes) : id(i), size(bytes) {}
        virtual ~waiter_base() = default;
        // Gives the waiter's block back to `owner` (it is destroyed) and resumes its handler: inside this call
        // if `here` and its executor runs in this thread, else through a post. `clear_slot` is false when
        // called from the slot's own handler, which must not destroy itself.
        virtual void wake(ws_notifier& owner, bool clear_slot, bool here) = 0;
        std::uint64_t id;
        std::size_t size; // of its block
    };

    template <class Handler>
    struct waiter final : waiter_base {
        waiter(std::uint64_t i, Handler h, asio::cancellation_slot s)
            : waiter_base(i, sizeof(waiter)), handler(std::move(h)), slot(s) {}
        ~waiter() override {
            if (slot.is_connected()) slot.clear(); // never woken: its canceller must not outlive it
        }
        void wake(ws_notifier& owner, bool clear_slot, bool here) override {
            if (clear_slot && slot.is_connected()) slot.clear();
            slot = asio::cancellation_slot();
            Handler h(std::move(handler));
            releaser{&owner}(this); // *this is gone
            auto ex = asio::get_associated_executor(h);
            if (here && running_in_this_thread(ex)) return std::move(h)();
            // Posted inside a plain function: asio::post of the handler itself would wrap it to track work on
            // its executor, which is the one it is posted to, and dispatch it a second time (two queued
            // operations and two allocations per wake-up instead of one).
            asio::post(ex, [h = std::move(h)]() mutable { std::move(h)(); });
        }
        Handler handler;
        asio::cancellation_slot slot;
    };

    template <class Executor>
    static bool running_in_this_thread(const Executor& ex) noexcept {
        if constexpr (std::is_same_v<Executor, asio::io_context::executor_type>) {
            return ex.running_in_this_thread();
        } else if constexpr (requires { ex.template target<asio::io_context::executor_type>(); }) {
            auto* io = ex.template target<asio::io_context::executor_type>();
            return io && io->running_in_this_thread();
        } else {
            return false;
        }
    }

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
        waiter_base* w = it->release();
        waiters_.erase(it);
        w->wake(*this, false, false);
    }

    // A waiter's block goes back to the notifier, which keeps one: a coroutine that waits once per message
    // then reuses it instead of allocating a waiter per message.
    void* take_block(std::size_t size) {
        if (spare_ && spare_size_ >= size) return std::exchange(spare_, nullptr);
        return ::operator new(size);
    }

    struct releaser {
        ws_notifier* self;
        void operator()(waiter_base* w) const noexcept {
            std::size_t size = w->size;
            w->~waiter_base();
            if (self->spare_ && self->spare_size_ >= size) return ::operator delete(w);
            ::operator delete(self->spare_);
            self->spare_ = w;
            self->spare_size_ = size;
        }
    };

    std::vector<std::unique_ptr<waiter_base, releaser>> waiters_;
    std::uint64_t last_id_ = 0;
    void* spare_ = nullptr;
    std::size_t spare_size_ = 0;
};

} // namespace weir::detail
