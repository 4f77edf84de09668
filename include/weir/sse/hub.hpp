#pragma once

#include <weir/reply.hpp>
#include <weir/sse/event.hpp>
#include <weir/sse/stream.hpp>
#include <weir/topics/backend.hpp>
#include <weir/detail/topic_fanout.hpp>
#include <weir/detail/topic_sse.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace weir {

/// Options of a broadcast hub.
struct sse_hub_options {
    std::size_t replay_capacity = 1000; ///< published events kept for clients that reconnect with Last-Event-ID
    std::size_t replay_bytes = 8 * 1024 * 1024; ///< and at most this many bytes (the newest event always stays)
    sse_options stream{};                 ///< options of each subscriber's stream
};

/// A broadcast hub for event streams only: one topic of weir::topics (<weir/topics.hpp>), which also reaches
/// WebSocket sessions and has many topics. `publish` encodes an event once and shares the bytes with every
/// subscriber, across threads. Subscribers that reconnect with a Last-Event-ID first get the buffered events
/// after it, read from the hub's history as fast as the client takes them, then the live ones; when events
/// after that id were already forgotten, the stream starts with an event named `reset` (no id).
/// Event ids are the hub's sequence numbers (1, 2, 3 ...). Thread-safe; subscribe and unsubscribe may churn
/// while events are published, and a hub may outlive the servers its subscribers were on (publishing then
/// reaches no one).
class sse_hub {
public:
    explicit sse_hub(sse_hub_options options = {}) : stream_(std::make_shared<const sse_options>(options.stream)) {
        backend_ = std::make_shared<in_process_topic_backend>(
            topic_history_options{options.replay_capacity, options.replay_bytes});
        fanout_ = std::make_shared<detail::topic_fanout>(backend_);
        fanout_->connect();
        backend_->listen(topic); // history is kept with or without subscribers
    }

    /// Publishes an event to every subscriber; returns the id it was given. The event's own id is replaced.
    std::uint64_t publish(sse_event event) { return backend_->publish(topic, std::move(event)); }

    /// Answers a request with a stream subscribed to this hub. The stream has no producer coroutine: the hub
    /// writes to it, on its loop, when events are published.
    template <class Request>
    pending<sse> subscribe(const Request& req) {
        return detail::subscribe_sse(fanout_, {std::string(topic)}, last_event_id(req), stream_);
    }

    /// The number of subscribers currently connected.
    std::size_t subscriber_count() const { return fanout_->subscriber_count(); }

    /// The id of the last published event (0 before the first).
    std::uint64_t last_id() const { return backend_->last_id(); }

private:
    static constexpr std::string_view topic = "sse_hub";

    std::shared_ptr<const sse_options> stream_; // shared by every subscriber's stream
    std::shared_ptr<in_process_topic_backend> backend_;
    std::shared_ptr<detail::topic_fanout> fanout_;
};

} // namespace weir
