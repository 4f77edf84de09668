#pragma once

/// Options of weir::topics: the history kept for resuming clients, the SSE subscribers' streams, and what
/// happens to a WebSocket subscriber that reads slower than events are published.

#include <weir/sse/stream.hpp>
#include <weir/topics/backend.hpp>

#include <cstddef>
#include <memory>

namespace weir {

/// What happens to an event for a WebSocket subscriber whose send queue (websocket_options::send_queue_bytes
/// and send_queue_capacity) cannot take it.
enum class websocket_subscriber_policy {
    close_session, ///< close the session with 1008 "send queue full": the client reconnects and catches up
    drop_message,  ///< drop the new event (the client silently misses it)
    /// hold events back until the send queue has room, at most topics_options::websocket_backlog_bytes of
    /// them; past that the oldest held events are dropped, so the client gets the newest (the session stays)
    drop_oldest,
};

/// Options of a topics object.
struct topics_options {
    /// History kept per topic for SSE clients that resume with Last-Event-ID (in-process backend).
    topic_history_options history{};
    /// Options of each SSE subscriber's stream, its byte-bounded queue and slow-consumer policy included.
    sse_options stream{};
    /// What happens to a WebSocket subscriber whose send queue cannot take an event.
    websocket_subscriber_policy websocket_on_full = websocket_subscriber_policy::close_session;
    /// With `drop_oldest`: bytes of events a WebSocket subscriber holds back while its send queue is full (the
    /// newest event is always held, whatever its size).
    std::size_t websocket_backlog_bytes = 1024 * 1024;
    /// Where events get their ids and history; null means an in_process_topic_backend with `history`.
    std::shared_ptr<topic_backend> backend{};
};

} // namespace weir
