#pragma once

// An event stream subscribed to topics: live events from the loop's delivery pass, and, for a client that
// resumes with a Last-Event-ID, the history it missed first (or a `reset` event when that cannot be complete).

#include <weir/reply.hpp>
#include <weir/sse/stream.hpp>
#include <weir/detail/topic_fanout.hpp>

#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
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
    }
    sse_topic_subscription(const sse_topic_subscription&) = delete;
    sse_topic_subscription& operator=(const sse_topic_subscription&) = delete;
    ~sse_topic_subscription() override { fanout_->remove_all(*this); }

    // On the stream's loop, when it starts.
    void start(const std::vector<std::string>& topics, const std::string& last_event_id) {
        auto executor = channel_.get_executor();
        for (auto& t : topics) fanout_->add(*this, executor, t); // a topic named twice is registered once
        // Read after registering: every later event reaches this loop's delivery pass.
        if (last_event_id.empty()) return go_live_at_topics_end();
        std::uint64_t resume = 0;
        auto [end, err] = std::from_chars(last_event_id.data(), last_event_id.data() + last_event_id.size(), resume);
        if (err != std::errc() || end != last_event_id.data() + last_event_id.size()) {
            // Not an id: nothing can be replayed, and the client must reload.
            go_live_at_topics_end();
            channel_.push(reset_event());
            return;
        }
        // An id no topic gave out (greater than the last) is found out by the replay: the backend answers that
        // its range is not complete.
        replay_ = std::make_unique<replay_state>(replay_state{resume});
        replay();
    }

    void on_room() override { replay(); }

    void queue(const topic_event& e) override { channel_.push(e.sse, false); }
    void flush() override { channel_.flush(); }

    // The event a stream gets first when its resume cannot be complete (no id: the client's last id stays).
    static const std::shared_ptr<const std::string>& reset_event() {
        static const auto bytes = std::make_shared<const std::string>("event: reset\ndata: \n\n");
        return bytes;
    }

private:
    void go_live_at_topics_end() {
        for (std::size_t i = 0; i < topic_count(); ++i)
            fanout_->go_live(*this, fanout_->backend().last_id(topic(i)), topic(i));
    }

    // Caught up with the history: live events after the cursor come from the delivery pass. After a `reset`, a
    // cursor beyond a topic's last id was not an id of it (a server or bus that started over), and the topic's
    // events go live from its end.
    void go_live_after_replay() {
        for (std::size_t i = 0; i < topic_count(); ++i) {
            std::uint64_t end = fanout_->backend().last_id(topic(i));
            fanout_->go_live(*this, replay_->reset_at != UINT64_MAX && replay_->cursor > end ? end : replay_->cursor,
                             topic(i));
        }
    }

    void replay() {
        bool queued = false;
        while (replay_ && channel_.is_open()) {
            std::uint64_t& cursor = replay_->cursor;
            std::uint64_t& reset_at = replay_->reset_at;
            std::shared_ptr<const topic_event> next;
            bool complete = true;
            for (std::size_t i = 0; i < topic_count(); ++i) {
                auto r = fanout_->backend().read_after(topic(i), cursor, 1);
                complete = complete && r.complete;
                if (!r.events.empty() && (!next || r.events.front()->id < next->id)) next = r.events.front();
            }
            if (!complete && reset_at != cursor) {
                // Events after the client's id were forgotten (before it came back, or while it replayed).
                if (!channel_.fits(reset_event()->size())) {
                    if (!queued) break; // on_room() goes on
                    channel_.flush();
                    queued = false;
                    if (!channel_.fits(reset_event()->size())) break;
                }
                channel_.push(reset_event(), false);
                queued = true;
                reset_at = cursor;
                continue;
            }
            if (next) {
                if (!channel_.fits(next->sse->size())) {
                    if (!queued) break; // on_room() goes on
                    channel_.flush();   // what the socket takes now makes room
                    queued = false;
                    if (!channel_.fits(next->sse->size())) break;
                }
                channel_.push(next->sse, false);
                queued = true;
                cursor = next->id;
            } else {
                // Caught up. Going live only with room to spare, so the first live burst does not find the queue
                // full of replay. The backend hands every later event to the loop after this read.
                if (queued) channel_.flush();
                queued = false;
                if (channel_.half_empty()) {
                    go_live_after_replay();
                    replay_.reset(); // live from now on
                }
                break; // on_room() goes on
            }
        }
        if (queued) channel_.flush();
    }

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
inline pending<sse> subscribe_sse(std::shared_ptr<topic_fanout> fanout, std::vector<std::string> topics,
                                  std::string last_event_id, std::shared_ptr<const sse_options> options) {
    return pending<sse>(sse(sse_subscription([fanout = std::move(fanout), topics = std::move(topics)](
                                                 const std::shared_ptr<sse_channel>& c, const std::string& last) {
                                auto sub = std::make_unique<sse_topic_subscription>(fanout, *c);
                                auto& s = *sub;
                                c->attach(std::move(sub));
                                s.start(topics, last);
                            }),
                            std::move(last_event_id), std::move(options)));
}

} // namespace weir::detail
