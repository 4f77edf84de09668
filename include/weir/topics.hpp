#pragma once

/// Topics: publish once, and every subscriber of a topic receives the event, over Server-Sent Events or a
/// WebSocket alike. Each event is encoded once per protocol and its bytes are shared; each event loop delivers
/// everything published since its last pass in one pass, with one gathering write per subscriber.

#include <weir/reply.hpp>
#include <weir/detail/config.hpp>
#include <weir/sse/event.hpp>
#include <weir/sse/stream.hpp>
#include <weir/topics/backend.hpp>
#include <weir/topics/options.hpp>
#include <weir/websocket/connection.hpp>
#include <weir/detail/topic_fanout.hpp>
#include <weir/detail/topic_sse.hpp>
#include <weir/detail/topic_websocket.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir {

/// A WebSocket session's membership in topics: it receives every event published to the topics it has
/// joined, from when it joined. Made by topics::join on the session's thread; join() and leave() change the
/// topics at run time, on that thread. Destroying it leaves every topic: keep it in the session's handler.
class topic_membership {
public:
    topic_membership(topic_membership&&) noexcept = default;
    topic_membership& operator=(topic_membership&&) = delete;
    WEIR_DECL ~topic_membership();

    /// Joins a topic: events published to it from now on arrive. False if already joined.
    WEIR_DECL bool join(std::string_view topic);

    /// Leaves a topic: nothing more from it arrives (events it already queued still go out). False if not
    /// joined.
    WEIR_DECL bool leave(std::string_view topic);

private:
    friend class topics;
    WEIR_DECL topic_membership(std::shared_ptr<detail::topic_fanout> fanout, websocket_connection& session,
                               const topics_options& options);

    std::shared_ptr<detail::topic_fanout> fanout_;
    std::unique_ptr<detail::websocket_topic_subscriber> subscriber_;
    asio::any_io_executor executor_;
};

/// Named topics that SSE streams and WebSocket sessions subscribe to. `publish` is thread-safe and returns
/// the event's id; SSE clients that reconnect with a Last-Event-ID get what they missed, or a `reset` event
/// first when that cannot be complete. A copy shares the same topics. A topic nobody subscribes to (and
/// nobody retains) costs nothing: publishing to it takes an id and nothing else.
///
///     weir::topics chat;
///     weir::get<"/events">([chat](const weir::request<>& req) { return chat.subscribe(req, {"lobby"}); })
///     // in a WebSocket handler: auto member = chat.join(ws, "lobby"); member.join("room 2");
///     chat.publish("lobby", "hello");
class topics {
public:
    WEIR_DECL explicit topics(topics_options options = {});

    /// Publishes `data` to a topic (an SSE event of type "message", a WebSocket text message); returns its id.
    std::uint64_t publish(std::string_view topic, std::string data) {
        sse_event e;
        e.data = std::move(data);
        return publish(topic, std::move(e));
    }

    /// Publishes an SSE event (its type, data, retry and comment; the id is the topic's) to a topic; WebSocket
    /// subscribers get its data as a text message. Returns its id. Throws std::invalid_argument for an event
    /// type with CR or LF, and topic_publish_error when the backend cannot publish (a message bus that is down).
    std::uint64_t publish(std::string_view topic, sse_event event) {
        return fanout_->backend().publish(topic, std::move(event));
    }

    /// Answers a request with an event stream subscribed to `names`, resuming after the request's
    /// Last-Event-ID.
    template <class Request>
    pending<sse> subscribe(const Request& req, std::vector<std::string> names) const {
        // Every stream points to these options (the aliasing shared_ptr keeps the whole options alive).
        return detail::subscribe_sse(fanout_, std::move(names), last_event_id(req),
                                     std::shared_ptr<const sse_options>(options_, &options_->stream));
    }

    /// The same, with options for this stream.
    template <class Request>
    pending<sse> subscribe(const Request& req, std::vector<std::string> names, const sse_options& stream) const {
        return detail::subscribe_sse(fanout_, std::move(names), last_event_id(req),
                                     std::make_shared<const sse_options>(stream));
    }

    /// Subscribes a WebSocket session to `names` (call it from the session's handler, on its thread); the
    /// session must be owned by a shared_ptr, as the server's are. Keep the membership for as long as the
    /// session should receive events.
    WEIR_DECL topic_membership join(websocket_connection& session,
                                    std::initializer_list<std::string_view> names = {}) const;

    /// Subscribes a WebSocket session to one topic.
    topic_membership join(websocket_connection& session, std::string_view name) const { return join(session, {name}); }

    /// Keeps a topic's history even while nobody subscribes (for clients that resume later), for as long as
    /// this object's topics exist.
    void retain(std::string_view name) const { fanout_->backend().listen(name); }

    /// SSE streams and WebSocket sessions subscribed to at least one topic.
    std::size_t subscriber_count() const { return fanout_->subscriber_count(); }

    /// The id of the last event published (0 before the first).
    std::uint64_t last_id() const { return fanout_->backend().last_id(); }

private:
    std::shared_ptr<const topics_options> options_;
    std::shared_ptr<detail::topic_fanout> fanout_;
};

} // namespace weir

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/topics.ipp>
#endif
