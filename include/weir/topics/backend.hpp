#pragma once

/// Topics' backends: where published events get their ids and their history. The in-process backend is the
/// default; a message bus (Redis Streams) implements the same interface to carry topics between processes.

#include <weir/sse/event.hpp>
#include <weir/detail/websocket_frame.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace weir {

/// One published event, encoded once per protocol; every subscriber shares these bytes.
struct topic_event {
    std::uint64_t id = 0; ///< the event's id: increasing within a topic (across topics, for the in-process backend)
    std::string topic;    ///< the topic it was published to
    /// The SSE encoding, `id:` field included.
    std::shared_ptr<const std::string> sse;
    /// The WebSocket text message's payload (the event's data). Sessions that compress without context share
    /// one compressed copy of it.
    std::shared_ptr<const std::string> websocket;
    /// The whole uncompressed WebSocket text frame of `websocket` (header and payload), written as is by every
    /// session that does not compress; made for payloads up to 1 KiB (null for larger ones, whose header each
    /// session lays out in front of the shared payload).
    std::shared_ptr<const std::string> websocket_frame;
    /// The header's length in `websocket_frame`.
    std::uint8_t websocket_header = 0;
};

/// Builds a topic_event: `event` with its id set to `id`, encoded once for each protocol. Throws
/// std::invalid_argument for an event type that cannot be encoded safely (see weir::encode).
inline std::shared_ptr<const topic_event> make_topic_event(std::uint64_t id, std::string topic, sse_event event) {
    auto e = std::make_shared<topic_event>();
    e->id = id;
    e->topic = std::move(topic);
    event.id = std::to_string(id);
    e->sse = std::make_shared<const std::string>(encode(event));
    if (event.data.size() <= 1024) {
        char header[10];
        std::size_t h = detail::write_ws_frame_header(header, detail::ws_text, event.data.size());
        std::string frame;
        frame.reserve(h + event.data.size());
        frame.append(header, h).append(event.data);
        e->websocket_frame = std::make_shared<const std::string>(std::move(frame));
        e->websocket_header = static_cast<std::uint8_t>(h);
    }
    e->websocket = std::make_shared<const std::string>(std::move(event.data));
    return e;
}

/// Thrown by a publish that the backend could not carry out (a message bus that is down or does not answer in
/// time): the event was not published. A server answers 503 with Retry-After, say, and the client tries again.
class topic_publish_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// What a topics object needs from where events live. Every call is thread-safe.
class topic_backend {
public:
    using event_ptr = std::shared_ptr<const topic_event>;
    /// Receives every event of the topics listened to, in id order within a topic.
    using sink = std::function<void(const event_ptr&)>;

    /// Events of a topic after an id, and whether that is all of them (nothing after the id was forgotten, and
    /// the id is one this backend gave out).
    struct range {
        std::vector<event_ptr> events;
        bool complete = true;
    };

    virtual ~topic_backend() = default;

    /// Sets where events go (once, before anything is published).
    virtual void set_sink(sink s) = 0;
    /// Publishes an event to a topic; returns its id. The sink hears of it if the topic is listened to.
    virtual std::uint64_t publish(std::string_view topic, sse_event event) = 0;
    /// Starts listening to a topic (counted: each call is matched by one unlisten).
    virtual void listen(std::string_view topic) = 0;
    /// Stops listening; a topic nobody listens to keeps nothing.
    virtual void unlisten(std::string_view topic) = 0;
    /// At most `max` events of `topic` with an id greater than `after`, oldest first.
    virtual range read_after(std::string_view topic, std::uint64_t after, std::size_t max) = 0;
    /// The id of the last event published (0 before the first).
    virtual std::uint64_t last_id() const = 0;
    /// The id after which every event of a topic listened to reaches the sink after this call returns (the last
    /// id given out, for a backend that numbers all topics in one sequence).
    virtual std::uint64_t last_id(std::string_view topic) const {
        (void)topic;
        return last_id();
    }
};

/// How much history a topic keeps for resuming subscribers.
struct topic_history_options {
    std::size_t events = 1000;           ///< the last this many events of each topic are kept
    std::size_t bytes = 8 * 1024 * 1024; ///< and at most this many bytes of each (the newest event always stays)
};

/// The default backend: events live in this process. Ids are one sequence for all topics (1, 2, 3 ...), so a
/// stream subscribed to several topics resumes from one Last-Event-ID. A topic keeps history only while it is
/// listened to: publishing to a topic nobody listens to takes an id and nothing else.
class in_process_topic_backend final : public topic_backend {
public:
    explicit in_process_topic_backend(topic_history_options options = {}) : options_(options) {}

    void set_sink(sink s) override {
        std::lock_guard lock(mutex_);
        sink_ = std::move(s);
    }

    std::uint64_t publish(std::string_view topic, sse_event event) override {
        std::lock_guard lock(mutex_);
        auto it = topics_.find(topic);
        if (it == topics_.end()) {
            if (!event.event.empty()) make_topic_event(0, {}, event); // refuse what any topic would refuse
            return ++last_id_;
        }
        auto e = make_topic_event(last_id_ + 1, std::string(topic), std::move(event)); // may throw: no id taken
        ++last_id_;
        history& h = it->second;
        if (options_.events > 0) {
            h.events.push_back(e);
            h.bytes += e->sse->size();
            while (h.events.size() > 1 && (h.events.size() > options_.events || h.bytes > options_.bytes)) forget_oldest(h);
        } else {
            h.lost_through = last_id_;
        }
        // Under the lock, so the sink sees a topic's events in id order, and a reader that found nothing
        // after an id knows every later event reaches the sink after it looked.
        if (sink_) sink_(e);
        return last_id_;
    }

    void listen(std::string_view topic) override {
        std::lock_guard lock(mutex_);
        auto it = topics_.find(topic);
        if (it == topics_.end()) it = topics_.emplace(std::string(topic), history{{}, 0, 0, last_id_}).first;
        ++it->second.listeners;
    }

    void unlisten(std::string_view topic) override {
        std::lock_guard lock(mutex_);
        auto it = topics_.find(topic);
        if (it != topics_.end() && --it->second.listeners == 0) topics_.erase(it);
    }

    range read_after(std::string_view topic, std::uint64_t after, std::size_t max) override {
        std::lock_guard lock(mutex_);
        range r;
        auto it = topics_.find(topic);
        if (it == topics_.end()) {
            r.complete = after == last_id_;
            return r;
        }
        const history& h = it->second;
        r.complete = after >= h.lost_through && after <= last_id_;
        auto first = std::upper_bound(h.events.begin(), h.events.end(), after,
                                      [](std::uint64_t id, const event_ptr& e) { return id < e->id; });
        for (auto i = first; i != h.events.end() && r.events.size() < max; ++i) r.events.push_back(*i);
        return r;
    }

    std::uint64_t last_id() const override {
        std::lock_guard lock(mutex_);
        return last_id_;
    }

private:
    struct history {
        std::deque<event_ptr> events;
        std::size_t bytes = 0;
        std::size_t listeners = 0;
        std::uint64_t lost_through = 0; // events of this topic up to this id may be missing
    };
    struct name_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    static void forget_oldest(history& h) {
        h.bytes -= h.events.front()->sse->size();
        h.lost_through = h.events.front()->id;
        h.events.pop_front();
    }

    topic_history_options options_;
    mutable std::mutex mutex_;
    sink sink_;
    std::uint64_t last_id_ = 0;
    std::unordered_map<std::string, history, name_hash, std::equal_to<>> topics_;
};

} // namespace weir
