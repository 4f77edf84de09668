#pragma once

/// Topics carried by Redis Streams between server processes (link weir::redis: hiredis). Every node that
/// publishes to a topic appends to the topic's stream, and every node with subscribers reads the stream, so a
/// message posted to one node reaches subscribers on all of them, in one order, with the stream's ids as event
/// ids; a client resumes on any node with its Last-Event-ID.
///
///     auto bus = std::make_shared<weir::redis_topic_backend>(weir::parse_redis_url("redis://10.0.0.5:6379"));
///     weir::topics rooms(weir::topics_options{.backend = bus});

#include <weir/detail/config.hpp>
#include <weir/topics/backend.hpp>
#include <weir/topics/redis_options.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <utility>

namespace weir {
namespace detail {
class redis_topic_core;
} // namespace detail

/// A topic backend on Redis Streams: one stream per topic. A publish appends to the topic's stream
/// (`XADD key MAXLEN ~ max_length * ...`) and returns the entry's id; one connection of this backend reads every
/// stream it listens to (`XREAD BLOCK`) from the last id it handed on, and hands entries to the topics in stream
/// order, those this process published included. Event ids are stream ids packed into 64 bits (milliseconds
/// << 20 | sequence): increasing within a topic and the same on every node, but not one sequence across
/// topics.
///
/// Failures: a publish fails with topic_publish_error when Redis is down (at once) or does not answer within
/// `timeout`; the reading connection reconnects with backoff and resumes from the last id it handed on, so
/// subscribers miss nothing and get nothing twice. The backend runs its own thread for its two connections.
class redis_topic_backend final : public topic_backend {
public:
    /// Starts the backend's thread; connections are made when first needed (nothing fails if Redis is down).
    WEIR_REDIS_DECL explicit redis_topic_backend(redis_topic_options options = {});

    redis_topic_backend(const redis_topic_backend&) = delete;
    redis_topic_backend& operator=(const redis_topic_backend&) = delete;

    /// Closes the connections and stops the thread; publishes still waiting fail.
    WEIR_REDIS_DECL ~redis_topic_backend() override;

    WEIR_REDIS_DECL void set_sink(sink s) override;

    /// Appends the event to the topic's stream; returns its id. Throws topic_publish_error when Redis is
    /// unreachable, answers with an error or does not answer within the timeout, and std::invalid_argument for an
    /// event type with CR or LF.
    WEIR_REDIS_DECL std::uint64_t publish(std::string_view topic, sse_event event) override;

    /// Starts reading the topic's stream from its end (when it is not read already).
    WEIR_REDIS_DECL void listen(std::string_view topic) override;

    WEIR_REDIS_DECL void unlisten(std::string_view topic) override;

    /// From what this process kept when it covers `after`, else from Redis (`XRANGE`). Not complete when `after`
    /// is older than the stream's first entry (entries after it were trimmed, or the stream was lost and started
    /// over), greater than its last, or Redis cannot be asked. 0 reads from the start of a stream that never lost
    /// an entry.
    WEIR_REDIS_DECL range read_after(std::string_view topic, std::uint64_t after, std::size_t max) override;

    /// The greatest id this process has published or handed on.
    WEIR_REDIS_DECL std::uint64_t last_id() const override;

    /// The last id of a listened topic handed on to the sink (or its stream's end when listening began); later
    /// entries reach the sink after this returns. 0 while Redis could not be asked where the stream ended.
    WEIR_REDIS_DECL std::uint64_t last_id(std::string_view topic) const override;

private:
    std::shared_ptr<detail::redis_topic_core> core_;
    std::thread thread_;
};

} // namespace weir

#if !defined(WEIR_REDIS_SEPARATE_COMPILATION)
#include <weir/impl/redis.ipp>
#endif
