#pragma once

// A first-in first-out queue on a vector, for a WebSocket session's inbox and send queues. Unlike std::deque
// (libstdc++ allocates a map and a 512-byte block when one is made, even empty), it holds no memory until the
// first push, and release() gives back what it held: an idle session's queues cost only their own size.
// Not thread-safe: used on the session's executor.

#include <cstddef>
#include <utility>
#include <vector>

namespace weir::detail {

template <class T>
class ws_fifo {
public:
    bool empty() const noexcept { return head_ == items_.size(); }
    std::size_t size() const noexcept { return items_.size() - head_; }
    std::size_t capacity() const noexcept { return items_.capacity(); }

    T& front() noexcept { return items_[head_]; }

    void push_back(T value) { items_.push_back(std::move(value)); }

    // The popped element is left moved-from (or as it was) in place until the queue empties or compacts.
    void pop_front() {
        if (++head_ == items_.size()) {
            items_.clear();
            head_ = 0;
        } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
            items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }

    // Drops the newest element.
    void pop_back() noexcept {
        items_.pop_back();
        if (head_ == items_.size()) clear();
    }

    void clear() noexcept {
        items_.clear();
        head_ = 0;
    }

    // Empties the queue and frees its memory.
    void release() noexcept {
        clear();
        std::vector<T>().swap(items_);
    }

    auto begin() noexcept { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    auto end() noexcept { return items_.end(); }
    auto begin() const noexcept { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    auto end() const noexcept { return items_.end(); }

private:
    std::vector<T> items_;
    std::size_t head_ = 0;
};

} // namespace weir::detail
