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
    sse_options stream{};                 ///< options of each subscriber's stream
};

/// A broadcast hub: `publish` encodes an event once and shares the bytes with every subscriber, across
/// threads. Subscribers that reconnect with a Last-Event-ID first get the buffered events after it.
/// Event ids are the hub's sequence numbers (1, 2, 3 ...). Thread-safe; subscribe and unsubscribe may churn
/// while events are published.
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
        while (s.replay.size() > s.options.replay_capacity) s.replay.pop_front();
        s.prune();
        // Each event loop gets one delivery task at a time, which takes the loop's waiting events in id order.
        // (Posting one task per event could reorder them: a post from the loop's own thread is queued apart.)
        for (auto& g : s.groups) {
            if (g->subscribers.empty()) continue;
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
        for (auto& g : state_->groups)
            for (auto& sub : g->subscribers)
                if (!sub.channel.expired()) ++n;
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
        std::uint64_t joined_after; // the last id published before it joined: it gets only later ones live
    };
    struct group {
        asio::any_io_executor executor;
        std::vector<subscriber> subscribers;
        std::vector<buffered> waiting; // published, not yet delivered on this loop
        bool scheduled = false;
    };
    struct state {
        explicit state(sse_hub_options o) : options(std::move(o)) {}
        sse_hub_options options;
        mutable std::mutex mutex;
        std::uint64_t last_id = 0;
        std::deque<buffered> replay;
        std::vector<std::shared_ptr<group>> groups;

        void prune() {
            for (auto& g : groups)
                std::erase_if(g->subscribers, [](auto& sub) { return sub.channel.expired(); });
        }
    };

    // Runs on the group's loop: delivers what waits, in order.
    static void deliver(state& st, group& g) {
        std::vector<buffered> events;
        std::vector<subscriber> subscribers;
        {
            std::lock_guard lock(st.mutex);
            events.swap(g.waiting);
            subscribers = g.subscribers;
            g.scheduled = false;
        }
        for (auto& sub : subscribers)
            if (auto c = sub.channel.lock())
                for (auto& e : events)
                    if (e.id > sub.joined_after) c->push(e.bytes);
    }

    static asio::awaitable<void> run_subscriber(std::shared_ptr<state> st, sse_stream& out) {
        std::uint64_t after = 0;
        const auto& last = out.last_event_id();
        auto [end, err] = std::from_chars(last.data(), last.data() + last.size(), after);
        bool resume = !last.empty() && err == std::errc() && end == last.data() + last.size();
        std::vector<std::shared_ptr<const std::string>> replay;
        {
            std::lock_guard lock(st->mutex);
            st->prune();
            auto ex = out.get_executor();
            auto it = std::find_if(st->groups.begin(), st->groups.end(), [&](auto& g) { return g->executor == ex; });
            if (it == st->groups.end()) it = st->groups.insert(st->groups.end(), std::make_shared<group>(group{ex, {}, {}, false}));
            (*it)->subscribers.push_back({out.channel(), st->last_id});
            if (resume)
                for (auto& b : st->replay)
                    if (b.id > after) replay.push_back(b.bytes);
        }
        // Runs on the subscriber's executor before any posted publish, so replay comes first, in order.
        for (auto& b : replay) out.channel()->push(b);
        // Stay subscribed until the client leaves (this wait is cancelled then) or the stream ends.
        asio::steady_timer forever(out.get_executor(), asio::steady_timer::time_point::max());
        asio::error_code ec;
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    std::shared_ptr<state> state_;
};

} // namespace weir
