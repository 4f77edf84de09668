#pragma once

// What one event loop (one io_context, one thread) keeps for all its connections, so that a connection keeps
// nothing it does not need while idle:
// - one receive buffer: a connection reads into it when its socket is readable and copies out only the bytes
//   of a message that is not complete yet;
// - one deadline sweep: a deadline is an intrusive list entry, so arming, moving and cancelling it allocate
//   nothing. Entries are kept in one list per duration; deadlines armed with the same duration expire in the
//   order they were armed, so each list stays sorted by appending to its tail, and the sweep looks only at list
//   heads. One steady timer per loop wakes for the earliest head.

#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/query.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace weir::detail {

class deadline_sweep;

/// A deadline that a connection or session holds. Not copyable or movable while armed (the sweep links it).
class deadline {
public:
    using clock = std::chrono::steady_clock;
    using callback = void (*)(void* context);

    /// `on_expiry(context)` runs on the loop's thread when the deadline passes; it may re-arm or destroy the
    /// deadline (and its owner).
    deadline(callback on_expiry, void* context) noexcept : on_expiry_(on_expiry), context_(context) {}
    deadline(const deadline&) = delete;
    deadline& operator=(const deadline&) = delete;
    ~deadline() { cancel(); }

    bool armed() const noexcept { return list_ != nullptr; }
    clock::time_point expiry() const noexcept { return at_; }

    /// Arms (or moves) the deadline to now + `after` on `sweep`.
    inline void arm(deadline_sweep& sweep, std::chrono::milliseconds after);
    /// Disarms the deadline; nothing runs.
    inline void cancel() noexcept;

private:
    friend class deadline_sweep;
    struct list;
    deadline* prev_ = nullptr;
    deadline* next_ = nullptr;
    list* list_ = nullptr;
    clock::time_point at_{};
    callback on_expiry_;
    void* context_;
};

struct deadline::list {
    std::chrono::milliseconds duration{};
    deadline* head = nullptr;
    deadline* tail = nullptr;
    deadline_sweep* owner = nullptr;

    void push_back(deadline& d) noexcept {
        d.prev_ = tail;
        d.next_ = nullptr;
        if (tail) tail->next_ = &d;
        else head = &d;
        tail = &d;
        d.list_ = this;
    }
    void unlink(deadline& d) noexcept {
        if (d.prev_) d.prev_->next_ = d.next_;
        else head = d.next_;
        if (d.next_) d.next_->prev_ = d.prev_;
        else tail = d.prev_;
        d.prev_ = d.next_ = nullptr;
        d.list_ = nullptr;
    }
};

/// The deadlines of one event loop, swept by one timer. Use only on the loop's thread.
class deadline_sweep {
public:
    using clock = deadline::clock;

    /// Deadlines that expire within `granularity` of each other are handled by one wake-up.
    explicit deadline_sweep(asio::io_context& io, std::chrono::milliseconds granularity = std::chrono::milliseconds(50))
        : timer_(io), granularity_(granularity) {}

    deadline_sweep(const deadline_sweep&) = delete;
    deadline_sweep& operator=(const deadline_sweep&) = delete;

    ~deadline_sweep() {
        for (auto& l : lists_)
            while (l->head) l->unlink(*l->head);
    }

    /// The number of armed deadlines (for tests and metrics).
    std::size_t size() const noexcept { return size_; }

private:
    friend class deadline;

    deadline::list& list_for(std::chrono::milliseconds duration) {
        // A server uses a handful of distinct durations (idle, head, body, write, ping ...): a linear search
        // over a few entries beats any map.
        for (auto& l : lists_)
            if (l->duration == duration) return *l;
        auto l = std::make_unique<deadline::list>();
        l->duration = duration;
        l->owner = this;
        lists_.push_back(std::move(l));
        return *lists_.back();
    }

    void arm(deadline& d, std::chrono::milliseconds after) {
        if (d.list_ && d.list_->duration == after && waiting_) {
            // Moved later in its own list (a session that heard its peer again): the list stays in order, and
            // the pending wake-up, due no later than this deadline was, sweeps and re-arms for what is left.
            d.at_ = clock::now() + after;
            if (d.list_->tail != &d) {
                deadline::list& l = *d.list_;
                l.unlink(d);
                l.push_back(d);
            }
            return;
        }
        if (d.list_) {
            d.list_->unlink(d);
            --size_;
        }
        d.at_ = clock::now() + after;
        list_for(after).push_back(d);
        ++size_;
        schedule(d.at_);
    }

    void cancel(deadline& d) noexcept {
        d.list_->unlink(d);
        if (--size_ == 0 && waiting_) {
            // Nothing left to wait for: a pending wake-up would keep the loop's run() from returning (a server
            // that shuts down would wait for its last idle timeout).
            waiting_ = false;
            timer_.cancel();
        }
    }

    // Wakes the loop's timer no later than `at` (rounded up to the granularity, so close deadlines share one
    // wake-up). A timer already due earlier is left alone: the sweep re-arms for what is left.
    void schedule(clock::time_point at) {
        if (waiting_ && timer_.expiry() <= at + granularity_) return;
        waiting_ = true;
        timer_.expires_at(at + granularity_);
        timer_.async_wait([this](const asio::error_code& ec) {
            if (ec == asio::error::operation_aborted) return; // re-armed earlier, or the loop is going away
            waiting_ = false;
            sweep();
        });
    }

    void sweep() {
        auto now = clock::now();
        clock::time_point next = clock::time_point::max();
        for (std::size_t i = 0; i < lists_.size(); ++i) {
            deadline::list& l = *lists_[i];
            while (l.head && l.head->at_ <= now) {
                deadline& d = *l.head;
                l.unlink(d);
                --size_;
                d.on_expiry_(d.context_); // may arm deadlines (and so add lists) or destroy d
            }
            if (l.head && l.head->at_ < next) next = l.head->at_;
        }
        if (next != clock::time_point::max()) schedule(next);
    }

    asio::steady_timer timer_;
    std::chrono::milliseconds granularity_;
    std::vector<std::unique_ptr<deadline::list>> lists_;
    std::size_t size_ = 0;
    bool waiting_ = false;
};

inline void deadline::arm(deadline_sweep& sweep, std::chrono::milliseconds after) { sweep.arm(*this, after); }

inline void deadline::cancel() noexcept {
    if (list_) list_->owner->cancel(*this);
}

// The io_context an executor of it runs on.
template <class Executor>
asio::io_context& io_context_of(const Executor& ex) {
    return static_cast<asio::io_context&>(asio::query(ex, asio::execution::context));
}

// The allocator for the handler of a wait that may stay pending for hours (an idle stream's wait for its client):
// Asio then allocates the operation at its own size. With the default allocator it takes a block from a small
// per-thread cache instead, sized for the largest operation the thread ran recently (an accept awaited by a
// coroutine, about 250 bytes), and keeps it for as long as the wait is pending.
template <class T = void>
struct own_size_allocator {
    using value_type = T;
    own_size_allocator() noexcept = default;
    template <class U>
    own_size_allocator(const own_size_allocator<U>&) noexcept {} // NOLINT(google-explicit-constructor)
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
    template <class U>
    bool operator==(const own_size_allocator<U>&) const noexcept { return true; }
};

/// Everything an event loop shares among its connections; one per io_context (an Asio service).
class event_loop final : public asio::execution_context::service {
public:
    using key_type = event_loop;
    static inline asio::execution_context::id id;

    /// Big enough for a whole pipelined batch of small requests or a burst of WebSocket frames in one read.
    static constexpr std::size_t receive_buffer_size = 64 * 1024;

    explicit event_loop(asio::execution_context& context)
        : asio::execution_context::service(context), sweep_(static_cast<asio::io_context&>(context)) {}

    /// The loop's receive buffer. Valid until the next read by anyone on this loop: copy what must be kept
    /// before suspending.
    std::span<char> receive_buffer() noexcept {
        if (!receive_) receive_ = std::make_unique<char[]>(receive_buffer_size);
        return {receive_.get(), receive_buffer_size};
    }

    deadline_sweep& deadlines() noexcept { return sweep_; }

    /// The loop's one T, made on first use: for what other parts of the library keep per loop (the WebSocket
    /// sessions' spare send queues, their shared limits). Found by an index, without the lock and the list
    /// walk of asio::use_service, so a session may ask for it per message. On the loop's thread only.
    template <class T>
    T& part() {
        static const std::size_t index = next_part_index();
        while (parts_.size() <= index) parts_.emplace_back(nullptr, nullptr);
        auto& p = parts_[index];
        if (!p) p = part_ptr(new T(), [](void* t) { delete static_cast<T*>(t); });
        return *static_cast<T*>(p.get());
    }

    /// The loop state of the io_context `io`.
    static event_loop& of(asio::io_context& io) { return asio::use_service<event_loop>(io); }

private:
    using part_ptr = std::unique_ptr<void, void (*)(void*)>;

    static std::size_t next_part_index() noexcept {
        static std::atomic<std::size_t> next{0};
        return next.fetch_add(1, std::memory_order_relaxed);
    }

    void shutdown() override { parts_.clear(); }

    std::vector<part_ptr> parts_;
    std::unique_ptr<char[]> receive_;
    deadline_sweep sweep_;
};

} // namespace weir::detail
