#pragma once

#include <weir/sse/stream.hpp>

#include <asio/post.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace weir {

/// Options of a broadcast hub.
struct sse_hub_options {
    std::size_t replay_capacity = 1000; ///< published events kept for clients that reconnect with Last-Event-ID
    std::size_t replay_bytes = 8 * 1024 * 1024; ///< and at most this many bytes (the newest event always stays)
    sse_options stream{};                 ///< options of each subscriber's stream
};

/// A broadcast hub: `publish` encodes an event once and shares the bytes with every subscriber, across
/// threads. Subscribers that reconnect with a Last-Event-ID first get the buffered events after it, read from
/// the hub's replay buffer as fast as the client takes them, then the live ones.
/// Event ids are the hub's sequence numbers (1, 2, 3 ...). Thread-safe; subscribe and unsubscribe may churn
/// while events are published, and a hub may outlive the servers its subscribers were on (publishing then
/// reaches no one).
class sse_hub {
public:
    explicit sse_hub(sse_hub_options options = {}) : state_(std::make_shared<state>(std::move(options))) {}

    /// Publishes an event to every subscriber; returns the id it was given. The event's own id is replaced.
    std::uint64_t publish(sse_event event) {
        auto& s = *state_;
        std::lock_guard lock(s.mutex);
        std::uint64_t id = ++s.last_id;
        event.id = std::to_string(id);
        auto bytes = std::make_shared<const std::string>(encode(event));
        s.replay.push_back({id, bytes});
        s.replay_bytes += bytes->size();
        while (s.replay.size() > 1 &&
               (s.replay.size() > s.options.replay_capacity || s.replay_bytes > s.options.replay_bytes)) {
            s.replay_bytes -= s.replay.front().bytes->size();
            s.replay.pop_front();
        }
        if (s.options.replay_capacity == 0) {
            s.replay.clear();
            s.replay_bytes = 0;
        }
        // Each event loop gets one delivery task at a time, which takes the loop's waiting events in id order.
        // (Posting one task per event could reorder them: a post from the loop's own thread is queued apart.)
        // A group exists only while a subscriber on its loop is registered, and a subscriber leaves (under this
        // mutex) before its loop can be destroyed: so this post never reaches a loop that is gone.
        for (auto& g : s.groups) {
            g->waiting.push_back({id, bytes});
            if (!g->scheduled) {
                g->scheduled = true;
                asio::post(g->executor, [st = state_, g] { deliver(*st, *g); });
            }
        }
        return id;
    }

    /// Answers a request with a stream subscribed to this hub.
    template <class Request>
    pending<sse> subscribe(const Request& req) {
        return pending<sse>(sse(
            [st = state_](sse_stream& out) -> asio::awaitable<void> { co_await run_subscriber(st, out); },
            last_event_id(req), state_->options.stream));
    }

    /// The number of subscribers currently connected.
    std::size_t subscriber_count() const {
        std::lock_guard lock(state_->mutex);
        std::size_t n = 0;
        for (auto& g : state_->groups) n += g->subscribers.size();
        return n;
    }

    /// The id of the last published event (0 before the first).
    std::uint64_t last_id() const {
        std::lock_guard lock(state_->mutex);
        return state_->last_id;
    }

private:
    struct buffered {
        std::uint64_t id;
        std::shared_ptr<const std::string> bytes;
    };
    struct subscriber {
        std::weak_ptr<detail::sse_channel> channel;
        // Live events with a greater id are pushed to it; none while it still reads the replay buffer.
        std::uint64_t live_after = UINT64_MAX;
    };
    struct group {
        asio::any_io_executor executor;
        std::vector<std::shared_ptr<subscriber>> subscribers;
        std::vector<buffered> waiting; // published, not yet delivered on this loop
        bool scheduled = false;
    };
    struct state {
        explicit state(sse_hub_options o) : options(std::move(o)) {}
        sse_hub_options options;
        mutable std::mutex mutex;
        std::uint64_t last_id = 0;
        std::deque<buffered> replay;
        std::size_t replay_bytes = 0;
        std::vector<std::shared_ptr<group>> groups;

        // The first buffered event with an id greater than `after`, or null.
        const buffered* replay_after(std::uint64_t after) const {
            if (replay.empty() || after >= replay.back().id) return nullptr;
            std::uint64_t front = replay.front().id; // ids in the buffer are consecutive
            return after < front ? &replay.front() : &replay[after - front + 1];
        }
    };

    // A subscriber's registration, held by its coroutine: it leaves the hub (under the mutex) however the
    // coroutine ends, including when its event loop is destroyed with the coroutine suspended.
    struct membership {
        std::shared_ptr<state> st;
        std::shared_ptr<group> g;
        std::shared_ptr<subscriber> sub;

        membership(std::shared_ptr<state> s, const asio::any_io_executor& ex, std::weak_ptr<detail::sse_channel> c)
            : st(std::move(s)), sub(std::make_shared<subscriber>(subscriber{std::move(c)})) {
            std::lock_guard lock(st->mutex);
            auto it = std::find_if(st->groups.begin(), st->groups.end(), [&](auto& x) { return x->executor == ex; });
            if (it == st->groups.end())
                it = st->groups.insert(st->groups.end(), std::make_shared<group>(group{ex, {}, {}, false}));
            g = *it;
            g->subscribers.push_back(sub);
        }
        membership(const membership&) = delete;
        membership& operator=(const membership&) = delete;
        ~membership() {
            std::lock_guard lock(st->mutex);
            std::erase(g->subscribers, sub);
            if (g->subscribers.empty()) std::erase(st->groups, g);
        }
    };

    // Runs on the group's loop: delivers what waits, in order, to the subscribers that are live.
    static void deliver(state& st, group& g) {
        std::vector<buffered> events;
        std::vector<std::shared_ptr<subscriber>> subscribers;
        {
            std::lock_guard lock(st.mutex);
            events.swap(g.waiting);
            subscribers = g.subscribers;
            g.scheduled = false;
        }
        for (auto& sub : subscribers)
            if (auto c = sub->channel.lock())
                for (auto& e : events)
                    if (e.id > sub->live_after) c->push(e.bytes);
    }

    static asio::awaitable<void> run_subscriber(std::shared_ptr<state> st, sse_stream& out) {
        std::uint64_t cursor = 0;
        const auto& last = out.last_event_id();
        auto [end, err] = std::from_chars(last.data(), last.data() + last.size(), cursor);
        bool resume = !last.empty() && err == std::errc() && end == last.data() + last.size();
        membership member(st, out.get_executor(), out.channel());
        auto& channel = *out.channel();
        // Replay: walk the hub's buffer from the client's last id, one event at a time, each sent only when
        // the stream has room, so a replay of any length is paced by the client and never trips the
        // slow-consumer policy. (Runs on the loop that delivers live events, so nothing interleaves.)
        for (;;) {
            std::shared_ptr<const std::string> next;
            {
                std::lock_guard lock(st->mutex);
                if (const buffered* b = resume ? st->replay_after(cursor) : nullptr) {
                    next = b->bytes;
                    cursor = b->id;
                } else if (!resume || channel.half_empty()) {
                    member.sub->live_after = st->last_id; // caught up: live events from here on
                    break;
                }
            }
            if (next) {
                if (!co_await out.send_encoded(std::move(next))) co_return;
            } else {
                // Go live with room to spare, so the first live burst does not find the queue full of replay.
                co_await channel.wait_for_half_empty();
                if (!channel.is_open()) co_return;
            }
        }
        // Stay subscribed until the client leaves (this wait is cancelled then) or the stream ends.
        asio::steady_timer forever(out.get_executor(), asio::steady_timer::time_point::max());
        asio::error_code ec;
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    std::shared_ptr<state> state_;
};

} // namespace weir
