#pragma once

#include <weir/sse/stream.hpp>

#include <asio/post.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
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

    /// Answers a request with a stream subscribed to this hub. The stream has no producer coroutine: the hub
    /// writes to it, on its loop, when events are published.
    template <class Request>
    pending<sse> subscribe(const Request& req) {
        return pending<sse>(sse(sse_subscription([st = state_](const std::shared_ptr<detail::sse_channel>& c,
                                                               const std::string& last) { attach(st, c, last); }),
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

    // A subscriber's registration, owned by its stream's channel: it leaves the hub (under the mutex) when the
    // stream ends, including when its event loop is destroyed with the stream open. While it replays, it
    // walks the hub's buffer from the client's last id, one event at a time, each queued only when the stream
    // has room, so a replay of any length is paced by the client and never trips the slow-consumer policy.
    // (It runs on the loop that delivers live events, so nothing interleaves.)
    class subscription final : public detail::sse_attachment {
    public:
        subscription(std::shared_ptr<state> s, detail::sse_channel& c, std::optional<std::uint64_t> resume_after)
            : st_(std::move(s)), channel_(c), cursor_(resume_after.value_or(0)), replaying_(resume_after.has_value()) {
            auto ex = c.get_executor();
            auto sub = std::make_shared<subscriber>(subscriber{c.weak_from_this()});
            std::lock_guard lock(st_->mutex);
            if (!replaying_) sub->live_after = st_->last_id;
            auto it = std::find_if(st_->groups.begin(), st_->groups.end(), [&](auto& x) { return x->executor == ex; });
            if (it == st_->groups.end())
                it = st_->groups.insert(st_->groups.end(), std::make_shared<group>(group{ex, {}, {}, false}));
            g_ = *it;
            g_->subscribers.push_back(sub);
            sub_ = std::move(sub);
        }
        subscription(const subscription&) = delete;
        subscription& operator=(const subscription&) = delete;
        ~subscription() override {
            std::lock_guard lock(st_->mutex);
            std::erase(g_->subscribers, sub_);
            if (g_->subscribers.empty()) std::erase(st_->groups, g_);
        }

        void on_room() override { replay(); }

        void replay() {
            while (replaying_ && channel_.is_open()) {
                std::shared_ptr<const std::string> next;
                {
                    std::lock_guard lock(st_->mutex);
                    if (const buffered* b = st_->replay_after(cursor_)) {
                        if (!channel_.fits(b->bytes->size())) return; // on_room() goes on
                        next = b->bytes;
                        cursor_ = b->id;
                    } else if (channel_.half_empty()) {
                        // Caught up with room to spare, so the first live burst does not find the queue full of
                        // replay: live events from here on.
                        sub_->live_after = st_->last_id;
                        replaying_ = false;
                        return;
                    } else {
                        return; // on_room() goes on
                    }
                }
                channel_.push(std::move(next));
            }
        }

    private:
        std::shared_ptr<state> st_;
        detail::sse_channel& channel_; // owns this
        std::shared_ptr<group> g_;
        std::shared_ptr<subscriber> sub_;
        std::uint64_t cursor_;
        bool replaying_;
    };

    // Runs on the stream's loop when it starts.
    static void attach(const std::shared_ptr<state>& st, const std::shared_ptr<detail::sse_channel>& c,
                       const std::string& last) {
        std::optional<std::uint64_t> resume;
        std::uint64_t cursor = 0;
        auto [end, err] = std::from_chars(last.data(), last.data() + last.size(), cursor);
        if (!last.empty() && err == std::errc() && end == last.data() + last.size()) resume = cursor;
        auto sub = std::make_unique<subscription>(st, *c, resume);
        auto& s = *sub;
        c->attach(std::move(sub));
        s.replay();
    }

    // Runs on the group's loop: delivers what waits, in order, to the subscribers that are live, each with one
    // gathering write for the whole batch.
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
            if (auto c = sub->channel.lock()) {
                bool queued = false;
                for (auto& e : events)
                    if (e.id > sub->live_after && c->push(e.bytes, false)) queued = true;
                if (queued) c->flush();
            }
    }

    std::shared_ptr<state> state_;
};

} // namespace weir
