#pragma once

// The definitions of an event stream's topics subscription (its start and its replay of history), but for what
// the delivery pass calls (queue() and flush(), in the header): included by <weir/detail/topic_sse.hpp>
// (header-only) or compiled once by <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/detail/topic_sse.hpp>

#include <charconv>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace weir::detail {

WEIR_DECL void sse_topic_subscription::start(const std::vector<std::string>& topics, const std::string& last_event_id) {
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

WEIR_DECL void sse_topic_subscription::go_live_at_topics_end() {
    for (std::size_t i = 0; i < topic_count(); ++i)
        fanout_->go_live(*this, fanout_->backend().last_id(topic(i)), topic(i));
}

WEIR_DECL void sse_topic_subscription::go_live_after_replay() {
    for (std::size_t i = 0; i < topic_count(); ++i) {
        std::uint64_t end = fanout_->backend().last_id(topic(i));
        fanout_->go_live(*this, replay_->reset_at != UINT64_MAX && replay_->cursor > end ? end : replay_->cursor,
                         topic(i));
    }
}

WEIR_DECL void sse_topic_subscription::replay() {
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

WEIR_DECL pending<sse> subscribe_sse(std::shared_ptr<topic_fanout> fanout, std::vector<std::string> topics,
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
