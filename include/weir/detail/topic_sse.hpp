#pragma once

// An event stream subscribed to topics: live events from the loop's delivery pass, and, for a client that
// resumes with a Last-Event-ID, the history it missed first (or a `reset` event when that cannot be complete).

#include <weir/reply.hpp>
#include <weir/sse/stream.hpp>
#include <weir/detail/config.hpp>
#include <weir/detail/topic_fanout.hpp>

#include <asio/buffer.hpp>

#include <array>
#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace weir::detail {

// Owned by its stream's channel: it leaves its topics (under the fanout's mutex) when the stream ends,
// including when its event loop is destroyed with the stream open. While it replays, it walks the backend's
// history from the client's last id, queueing an event only when the stream has room, so a replay of any
// length is paced by the client and never trips the slow-consumer policy. (It runs on the loop that delivers
// live events, so nothing interleaves.)
class sse_topic_subscription final : public sse_attachment, public topic_subscriber {
public:
    sse_topic_subscription(std::shared_ptr<topic_fanout> fanout, sse_channel& channel)
        : fanout_(std::move(fanout)), channel_(channel) {
        hot_ = channel.hot_objects();
        writes_runs_ = true;
    }
    sse_topic_subscription(const sse_topic_subscription&) = delete;
    sse_topic_subscription& operator=(const sse_topic_subscription&) = delete;
    ~sse_topic_subscription() override { fanout_->remove_all(*this); }

    // On the stream's loop, when it starts.
    WEIR_DECL void start(const std::vector<std::string>& topics, const std::string& last_event_id);

    void on_room() override { replay(); }

    void queue(const topic_event& e) override { channel_.push(e.sse, false); }
    void flush() override { channel_.flush(); }

    // A stream with nothing waiting to be written takes a pass's events straight from their shared bytes, in
    // one write (the transport copies a few small ones into one buffer): no queue taken from the loop, none
    // given back. Only what the socket does not take is queued, as it would have been. The run must fit the
    // queue's bounds as a whole, so that queueing the rest never meets the slow-consumer policy for bytes
    // already (partly) written.
    bool write_run(const loop_group::waiting_event* first, const loop_group::waiting_event* last,
                   std::uint64_t live_after) override {
        if (!channel_.writes_unqueued()) return false;
        // The live events: counted and checked first, laid out only if there are several (one at a time, the
        // usual case, lays out no list of buffers).
        const std::string* single = nullptr;
        std::size_t count = 0, total = 0;
        for (auto it = first; it != last; ++it) {
            const topic_event& e = *it->event;
            if (e.id <= live_after) continue;
            if (!channel_.fits_behind(count, total, e.sse->size())) return false; // left to queue() and its policy
            single = e.sse.get();
            total += single->size();
            ++count;
        }
        if (count == 0) return true;
        std::size_t n = 0;
        if (count == 1) {
            asio::const_buffer one = asio::buffer(*single);
            n = channel_.write_unqueued(std::span<const asio::const_buffer>(&one, 1), total);
        } else {
            std::array<asio::const_buffer, 32> buffers; // a run has at most 32 events; a longer one is queued
            if (count > buffers.size()) return false;
            std::size_t at = 0;
            for (auto it = first; it != last; ++it)
                if (it->event->id > live_after) buffers[at++] = asio::buffer(*it->event->sse);
            n = channel_.write_unqueued(std::span<const asio::const_buffer>(buffers.data(), count), total);
        }
        if (n == 0) return false; // nothing went: queued and flushed as usual
        if (n == total) return true;
        for (auto it = first; it != last; ++it)
            if (it->event->id > live_after) channel_.push(it->event->sse, false);
        channel_.unqueued_partly_written(n);
        return true;
    }

    // The event a stream gets first when its resume cannot be complete (no id: the client's last id stays).
    static const std::shared_ptr<const std::string>& reset_event() {
        static const auto bytes = std::make_shared<const std::string>("event: reset\ndata: \n\n");
        return bytes;
    }

private:
    WEIR_DECL void go_live_at_topics_end();

    // Caught up with the history: live events after the cursor come from the delivery pass. After a `reset`, a
    // cursor beyond a topic's last id was not an id of it (a server or bus that started over), and the topic's
    // events go live from its end.
    WEIR_DECL void go_live_after_replay();

    WEIR_DECL void replay();

    std::shared_ptr<topic_fanout> fanout_;
    sse_channel& channel_; // owns this
    // Where a resuming client's replay is: kept only while it replays.
    struct replay_state {
        std::uint64_t cursor = 0;
        std::uint64_t reset_at = UINT64_MAX; // the cursor at which a `reset` was sent
    };
    std::unique_ptr<replay_state> replay_;
};

// A pending event stream subscribed to `topics` of `fanout`, with options shared by every such stream.
WEIR_DECL pending<sse> subscribe_sse(std::shared_ptr<topic_fanout> fanout, std::vector<std::string> topics,
                                     std::string last_event_id, std::shared_ptr<const sse_options> options);

} // namespace weir::detail

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/topic_sse.ipp>
#endif
