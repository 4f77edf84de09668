#pragma once

// A WebSocket session's side of its topics. The session's send queue is its queue: an event is queued there
// directly (the delivery pass runs on the session's loop), and the session writes a pass's events in one
// gathering write; a session with nothing waiting to be written takes a pass's frames in that write straight
// from the events' shared bytes, and queues only what the socket did not take. When that queue is full, the
// topics' policy decides: close the session, drop the event, or (drop_oldest) hold events back here, in a
// byte-bounded backlog that drops its oldest events to make room, and hand them to the session as its queue
// drains. The backlog belongs to the subscriber, not to the session, so the session's own messages, pings and
// close are never dropped.

#include <weir/topics/backend.hpp>
#include <weir/topics/options.hpp>
#include <weir/transport.hpp>
#include <weir/websocket/connection.hpp>
#include <weir/detail/event_loop.hpp>
#include <weir/detail/topic_fanout.hpp>

#include <asio/buffer.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace weir::detail {

class websocket_topic_subscriber final : public topic_subscriber {
public:
    // How often a backlog is offered to the session while the session's queue stays full (and no new event
    // comes, which offers it too). Only a subscriber with a backlog is polled.
    static constexpr std::chrono::milliseconds backlog_retry{20};

    websocket_topic_subscriber(websocket_connection& session, websocket_subscriber_policy on_full,
                               std::size_t backlog_bytes)
        : session_(&session), on_full_(on_full), backlog_limit_(backlog_bytes), retry_(&on_retry, this) {
        hot_ = {&session, &session.stream_, session.link_};
        writes_runs_ = true;
    }
    websocket_topic_subscriber(const websocket_topic_subscriber&) = delete;
    websocket_topic_subscriber& operator=(const websocket_topic_subscriber&) = delete;
    ~websocket_topic_subscriber() override = default; // the retry deadline leaves the loop's sweep

    void queue(const topic_event& e) override {
        if (closing_ || !session_->is_open()) return;
        if (backlog_events() > 0) offer_backlog(); // what waits goes first, in order
        if (backlog_events() == 0 && session_->queue_in_pass(e.websocket, e.websocket_frame, e.websocket_header))
            return;
        switch (on_full_) {
        case websocket_subscriber_policy::drop_message: return;
        case websocket_subscriber_policy::close_session:
            closing_ = true;
            session_->sender()->close(close_code::policy_violation, "send queue full");
            return;
        case websocket_subscriber_policy::drop_oldest: hold(e.websocket); return;
        }
    }
    void flush() override { session_->flush_in_pass(); }

    // A session with nothing waiting to be written takes a pass's frames straight from the events' shared bytes,
    // in one write: no send queue, no batch laid out. Only what the socket does not take is queued, as it would
    // have been. The run must fit the send queue's bounds as a whole, so that queueing the rest never meets the
    // slow-consumer policy for bytes already (partly) written.
    bool write_run(const loop_group::waiting_event* first, const loop_group::waiting_event* last,
                   std::uint64_t live_after) override {
        if (closing_ || backlog_events() > 0 || !session_->writes_unqueued()) return false;
        // Several frames are copied into one buffer as they are checked (what transport::write_some would do
        // with them), one goes from where it is; a run too large for the buffer is written as it is, gathered.
        std::array<char, transport::small_gather> gathered;
        const std::string* frame = nullptr; // the last live one
        std::size_t count = 0, bytes = 0, total = 0;
        for (auto it = first; it != last; ++it) {
            const topic_event& e = *it->event;
            if (e.id <= live_after) continue;
            // The queue would be full when this one came (queue_full()): left to queue() and its policy.
            if (!e.websocket_frame || count == websocket_connection::batch_limit ||
                session_->queue_full_with(count, bytes))
                return false;
            const std::string* next = e.websocket_frame.get();
            if (count > 0 && total + next->size() <= gathered.size()) {
                if (count == 1) std::memcpy(gathered.data(), frame->data(), frame->size()); // not alone after all
                std::memcpy(gathered.data() + total, next->data(), next->size());
            }
            frame = next;
            ++count;
            bytes += frame->size() - e.websocket_header;
            total += frame->size();
        }
        if (count == 0) return true;
        std::size_t n = count == 1                ? session_->write_unqueued(asio::buffer(*frame))
                        : total <= gathered.size() ? session_->write_unqueued(asio::buffer(gathered.data(), total))
                                                   : write_frames(first, last, live_after);
        if (n == 0) return false; // nothing went: queued and flushed as usual
        if (n == total) return true;
        for (auto it = first; it != last; ++it) {
            const topic_event& e = *it->event;
            if (e.id > live_after) session_->queue_in_pass(e.websocket, e.websocket_frame, e.websocket_header);
        }
        session_->unqueued_partly_written(n);
        return true;
    }

    // Events held back now, and their bytes (for tests).
    std::size_t backlog_events() const noexcept { return backlog_.size() - head_; }
    std::size_t backlog_bytes() const noexcept { return backlog_bytes_; }

private:
    using bytes = std::shared_ptr<const std::string>;

    // drop_oldest: the event waits here; past the byte bound the oldest waiting ones go (the newest stays).
    void hold(bytes payload) {
        backlog_bytes_ += payload->size();
        backlog_.push_back(std::move(payload));
        while (backlog_events() > 1 && backlog_bytes_ > backlog_limit_) pop_front();
        if (!retry_.armed()) retry_.arm(sweep(), backlog_retry);
    }

    // Hands the session as much of the backlog as its queue takes now; polls again while something is left.
    void offer_backlog() {
        if (!session_->is_open()) head_ = backlog_.size();
        while (head_ < backlog_.size() && session_->try_send(websocket_payload(backlog_[head_]))) pop_front();
        if (head_ == backlog_.size()) {
            std::vector<bytes>().swap(backlog_); // a subscriber that caught up keeps no memory of its backlog
            head_ = 0;
            backlog_bytes_ = 0;
            retry_.cancel();
        } else if (!retry_.armed()) {
            retry_.arm(sweep(), backlog_retry);
        }
    }

    void pop_front() {
        backlog_bytes_ -= backlog_[head_]->size();
        backlog_[head_++].reset();
        if (head_ >= 32 && head_ * 2 >= backlog_.size()) {
            backlog_.erase(backlog_.begin(), backlog_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }

    // The live frames of a run, one buffer each.
    std::size_t write_frames(const loop_group::waiting_event* first, const loop_group::waiting_event* last,
                             std::uint64_t live_after) {
        std::array<asio::const_buffer, websocket_connection::batch_limit> frames;
        std::size_t count = 0;
        for (auto it = first; it != last; ++it)
            if (it->event->id > live_after) frames[count++] = asio::buffer(*it->event->websocket_frame);
        return session_->write_unqueued(std::span<const asio::const_buffer>(frames.data(), count));
    }

    static void on_retry(void* context) { static_cast<websocket_topic_subscriber*>(context)->offer_backlog(); }

    deadline_sweep& sweep() { return event_loop::of(io_context_of(session_->get_executor())).deadlines(); }

    websocket_connection* session_;
    websocket_subscriber_policy on_full_;
    std::size_t backlog_limit_;
    std::vector<bytes> backlog_; // [head_, end) waits, oldest first
    std::size_t head_ = 0;
    std::size_t backlog_bytes_ = 0;
    deadline retry_; // armed while the backlog is not empty
    bool closing_ = false;
};

} // namespace weir::detail
