#pragma once

#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/sse/event.hpp>
#include <weir/transport.hpp>
#include <weir/upgrade.hpp>
#include <weir/detail/event_loop.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace weir {

/// What a stream does when its client reads slower than events arrive and its queue is full.
enum class slow_consumer_policy {
    disconnect,  ///< close the stream: the client reconnects with Last-Event-ID and replays what it missed
    drop_oldest, ///< drop the oldest queued event to make room (the client silently misses it)
};

/// Options of one event stream.
struct sse_options {
    /// A comment line is sent when nothing else was for this long, so proxies and clients see a live stream.
    /// Zero disables heartbeats.
    std::chrono::milliseconds heartbeat{15'000};
    /// Events waiting to be written, at most. A producer's `send` waits for room; published (hub) events
    /// follow `on_full`.
    std::size_t queue_capacity = 1024;
    /// Bytes queued or being written, at most (an event larger than this is still sent, alone). A producer's
    /// `send` waits for room; published (hub) events follow `on_full`.
    std::size_t queue_bytes = 1024 * 1024;
    slow_consumer_policy on_full = slow_consumer_policy::disconnect;
    /// A write to the client must finish within this, or the stream is closed: a client that stopped reading
    /// is dropped even when no further event would trip the queue's bounds. Zero disables the deadline.
    std::chrono::milliseconds write_timeout{30'000};
    /// A `retry:` field sent first, if set: the client's reconnection delay.
    std::optional<unsigned> retry{};
};

class sse;

namespace detail {

class sse_channel;

// Something a channel owns and tells when its queue has drained some (a hub's subscription, which replays
// from the hub's buffer as the client reads). Released, on the channel's loop, when the stream ends.
class sse_attachment {
public:
    virtual ~sse_attachment() = default;
    virtual void on_room() = 0;
};

// The writing side of one event stream, driven by callbacks on the connection's loop: bytes are written at
// once with a non-blocking gathering write, and the channel waits for writability only while the socket is
// full. The queue is bounded in events and in bytes. Heartbeats and the write deadline are one intrusive entry
// in the loop's deadline sweep, not a timer per stream. Once the stream has ended (detach()), every call is a
// no-op that never touches the socket.
class sse_channel : public std::enable_shared_from_this<sse_channel> {
public:
    using bytes = std::shared_ptr<const std::string>;

    sse_channel(transport& stream, sse_options options, upgraded_connection* counter = nullptr)
        : counter_(counter), stream_(&stream), io_(&io_context_of(stream.get_executor())), options_(options),
          sweep_(&event_loop::of(*io_).deadlines()), deadline_(&on_deadline, this) {
    }
    sse_channel(const sse_channel&) = delete;
    sse_channel& operator=(const sse_channel&) = delete;

    bool is_open() const noexcept { return !closed_; }
    asio::any_io_executor get_executor() const { return io_->get_executor(); } // the connection's loop
    bool full() const noexcept { return !fits(1); }
    std::size_t bytes_written() const noexcept { return written_; }
    /// Bytes queued or being written.
    std::size_t pending_bytes() const noexcept { return pending_bytes_; }

    // Whether n more bytes fit: the event count and the byte budget (an event alone always fits).
    bool fits(std::size_t n) const noexcept {
        return queued() < options_.queue_capacity &&
               (pending_bytes_ == 0 || pending_bytes_ + n <= options_.queue_bytes);
    }

    // At most half the queue's bounds are used.
    bool half_empty() const noexcept {
        return queued() <= options_.queue_capacity / 2 && pending_bytes_ <= options_.queue_bytes / 2;
    }

    // Queues encoded bytes, applying the slow-consumer policy when they do not fit, and writes what the socket
    // takes now unless `write_now` is false (the caller queues more, then calls flush()). False once the stream
    // is closed (or closed by the policy).
    bool push(bytes b, bool write_now = true) {
        if (closed_ || ending_) return false;
        if (!fits(b->size())) {
            if (options_.on_full == slow_consumer_policy::disconnect) {
                abort();
                return false;
            }
            // What is partly written cannot be dropped: past it, the new event goes alone.
            std::size_t keep = offset_ > 0 ? 1 : 0;
            while (queued() > keep && !fits(b->size())) {
                pending_bytes_ -= queue_[head_ + keep]->size();
                if (keep) queue_[head_ + 1] = std::move(queue_[head_]); // the partly written one moves up
                queue_[head_++].reset();
            }
            compact();
        }
        pending_bytes_ += b->size();
        queue_.push_back(std::move(b));
        if (write_now) flush();
        return !closed_;
    }

    // Writes what the socket takes now; waits for writability (callback) only if it is full.
    void flush() {
        if (closed_ || !stream_ || waiting_writable_) return;
        bool freed = false;
        while (queued() > 0) {
            std::array<asio::const_buffer, 64> buffers;
            std::size_t count = 0;
            for (std::size_t i = head_; i < queue_.size() && count < buffers.size(); ++i)
                buffers[count++] = asio::buffer(*queue_[i]) + (i == head_ ? offset_ : 0);
            asio::error_code ec;
            std::size_t n = stream_->write_some(std::span<const asio::const_buffer>(buffers.data(), count), ec);
            if (ec == asio::error::would_block || (!ec && n == 0)) break;
            if (ec) { // the client is gone
                abort();
                return;
            }
            consume(n);
            freed = true;
        }
        if (queued() == 0) {
            queue_.clear();
            head_ = offset_ = 0;
            writing_late_ = false;
            if (ending_) {
                abort(); // finished: everything was written
                return;
            }
            arm_heartbeat();
        } else {
            // The socket is full: the write deadline runs until what is queued now has been written.
            if (!writing_late_ || owed_ == 0) {
                writing_late_ = true;
                owed_ = pending_bytes_;
                if (options_.write_timeout.count() > 0) deadline_.arm(*sweep_, options_.write_timeout);
                else deadline_.cancel();
            }
            waiting_writable_ = true;
            stream_->async_wait_writable([self = shared_from_this()](const asio::error_code& ec) {
                self->waiting_writable_ = false;
                if (ec || self->closed_) return;
                self->flush();
                if (self->attachment_ && !self->closed_) self->attachment_->on_room();
            });
        }
        if (freed) wake_room();
    }

    // Waits until n bytes fit or the stream closed.
    asio::awaitable<void> wait_for_room(std::size_t n = 1) {
        while (!closed_ && !fits(n)) co_await wait_room();
    }

    // Waits until at most half the queue's bounds are used, or the stream closed.
    asio::awaitable<void> wait_for_half_empty() {
        while (!closed_ && !half_empty()) co_await wait_room();
    }

    // Ends the stream once what is queued has been written.
    void finish() {
        if (closed_ || ending_) return;
        ending_ = true;
        if (queued() == 0 && !waiting_writable_) abort();
    }

    // Ends the stream now: the session's wait for the client ends, and a producer is cancelled at its next wait.
    void abort() {
        if (closed_) return;
        closed_ = true;
        deadline_.cancel();
        if (stream_) stream_->cancel();
        wake_room();
        if (producer_running_) producer_cancel_.emit(asio::cancellation_type::terminal);
    }

    // Hands the channel something to own until the stream ends; it hears of room in the queue.
    void attach(std::unique_ptr<sse_attachment> a) { attachment_ = std::move(a); }

    // Called once the session is over: the connection closes the socket next, so nothing here may touch it
    // again, and an attachment (a hub's subscription) is released now.
    void detach() {
        abort();
        stream_ = nullptr;
        counter_ = nullptr;
        queue_.clear();
        head_ = offset_ = 0;
        pending_bytes_ = 0;
        attachment_.reset();
    }

private:
    friend class weir::sse;

    std::size_t queued() const noexcept { return queue_.size() - head_; }

    void consume(std::size_t n) {
        written_ += n;
        if (counter_) counter_->count_written(n);
        owed_ -= std::min(owed_, n);
        while (n > 0) {
            std::size_t left = queue_[head_]->size() - offset_;
            if (n < left) {
                offset_ += n;
                pending_bytes_ -= n;
                return;
            }
            n -= left;
            pending_bytes_ -= left;
            queue_[head_++].reset();
            offset_ = 0;
        }
        compact();
    }

    void compact() {
        if (head_ > 32 && head_ * 2 > queue_.size()) {
            queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(head_));
            head_ = 0;
        }
    }

    void arm_heartbeat() {
        if (options_.heartbeat.count() > 0) deadline_.arm(*sweep_, options_.heartbeat);
        else deadline_.cancel();
    }

    // The loop's sweep found the deadline passed: a write that took too long closes the stream (the client
    // stopped reading); a quiet stream sends a heartbeat.
    static void on_deadline(void* context) {
        auto& self = *static_cast<sse_channel*>(context);
        if (self.closed_) return;
        if (self.writing_late_) self.abort();
        else if (self.queued() == 0 && !self.ending_) self.push(heartbeat());
    }

    asio::awaitable<void> wait_room() {
        if (!room_) room_ = std::make_unique<asio::steady_timer>(*io_, asio::steady_timer::time_point::max());
        asio::error_code ec;
        co_await room_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    void wake_room() {
        if (room_) room_->cancel();
    }

    void producer_ended(std::exception_ptr e) {
        producer_running_ = false;
        if (e && !closed_) {
            error_ = e; // the producer failed on its own: the session reports it
            abort();
        } else if (!e) {
            finish();
        }
        if (ended_) ended_->cancel();
        if (auto then = std::move(after_producer_)) then();
    }

    static bytes heartbeat() {
        static const bytes beat = std::make_shared<const std::string>(":\n\n");
        return beat;
    }

    upgraded_connection* counter_;
    transport* stream_;
    asio::io_context* io_;
    sse_options options_;
    deadline_sweep* sweep_;
    deadline deadline_; // the heartbeat while the queue is empty, the write deadline while the socket is full
    std::vector<bytes> queue_; // [head_, end) waits; the event at head_ is written from offset_
    std::size_t head_ = 0;
    std::size_t offset_ = 0;
    std::size_t pending_bytes_ = 0; // queued, less what of the first is written
    std::size_t owed_ = 0;          // bytes to write before the write deadline is re-armed
    std::size_t written_ = 0;
    std::unique_ptr<sse_attachment> attachment_;
    std::unique_ptr<asio::steady_timer> room_; // only for producers that wait for room (a hub subscriber has none)
    asio::steady_timer* ended_ = nullptr;      // the session waiting for its producer to end
    std::function<void()> after_producer_;     // or what to do once it has ended
    asio::cancellation_signal producer_cancel_;
    std::exception_ptr error_;
    bool waiting_writable_ = false;
    bool writing_late_ = false; // the socket was full: the deadline is the write deadline
    bool producer_running_ = false;
    bool ending_ = false;
    bool closed_ = false;
};

} // namespace detail

/// The producer's side of an event stream. Lives on the connection's executor: call it from the producer
/// coroutine (or post to its executor).
class sse_stream {
public:
    sse_stream(std::shared_ptr<detail::sse_channel> channel, std::string last_event_id)
        : channel_(std::move(channel)), last_event_id_(std::move(last_event_id)) {}

    /// Sends an event; waits while the stream's queue is full. Returns false once the client is gone (the
    /// producer should return). Throws std::invalid_argument for an event that cannot be encoded safely.
    asio::awaitable<bool> send(const sse_event& event) {
        co_return co_await send_encoded(std::make_shared<const std::string>(encode(event)));
    }

    /// Sends already encoded bytes (one or more whole events), shared with other streams.
    asio::awaitable<bool> send_encoded(std::shared_ptr<const std::string> bytes) {
        co_await channel_->wait_for_room(bytes->size());
        co_return channel_->push(std::move(bytes));
    }

    /// Sends a comment line (clients ignore it).
    asio::awaitable<bool> send_comment(std::string_view text) {
        sse_event e;
        e.comment = std::string(text);
        co_return co_await send(e);
    }

    /// True until the client goes away or the stream is closed.
    bool is_open() const noexcept { return channel_->is_open(); }

    /// The Last-Event-ID the client sent when it (re)connected; empty if none.
    const std::string& last_event_id() const noexcept { return last_event_id_; }

    /// The stream's executor, to post work from other threads.
    asio::any_io_executor get_executor() const { return channel_->get_executor(); }

    /// The underlying channel (for hubs that share encoded events).
    const std::shared_ptr<detail::sse_channel>& channel() const noexcept { return channel_; }

private:
    std::shared_ptr<detail::sse_channel> channel_;
    std::string last_event_id_;
};

/// The producer of an event stream: a coroutine that sends events until it is done or the client leaves.
using sse_producer = std::function<asio::awaitable<void>(sse_stream&)>;

/// What a publisher (a hub) does with a stream it feeds: given the stream's channel and the client's
/// Last-Event-ID, on the stream's loop, it keeps what it needs (the channel owns what it attaches).
using sse_subscription = std::function<void(const std::shared_ptr<detail::sse_channel>&, const std::string&)>;

/// The Server-Sent Events protocol, as a pending upgrade: `weir::pending<weir::sse>`. The final stage writes
/// the head (every stage's headers plus Content-Type: text/event-stream, Cache-Control: no-store,
/// X-Accel-Buffering: no) and runs the producer. The body ends when the connection closes, so no
/// Content-Length is ever sent and every event is written as soon as the socket takes it.
class sse {
public:
    static constexpr weir::status default_status = weir::status::ok;
    static constexpr std::string_view name = "sse";
    static constexpr bool commits(weir::status s) noexcept { return to_int(s) >= 200 && to_int(s) < 300; }

    sse(sse_producer producer, std::string last_event_id, sse_options options = {})
        : producer_(std::move(producer)), last_event_id_(std::move(last_event_id)), options_(options) {}

    /// A stream with no producer: `subscription` hands its channel to a publisher that writes to it.
    sse(sse_subscription subscription, std::string last_event_id, sse_options options = {})
        : subscription_(std::move(subscription)), last_event_id_(std::move(last_event_id)), options_(options) {}

    void prepare_head(weir::headers& h) {
        h.set("Content-Type", "text/event-stream; charset=utf-8");
        h.set("Cache-Control", "no-store");
        h.set("X-Accel-Buffering", "no");
    }

    // The stream is delimited by closing the connection.
    void write_protocol_fields(std::string& out) const { out += "Connection: close\r\n"; }

    // Writing is driven by callbacks (events pushed, the socket writable again, the loop's deadline sweep), and
    // so is the stream's one wait while it is idle: for the client to send something or leave. No coroutine is
    // kept for an idle stream (see weir::callback_protocol); a producer runs as a coroutine of its own,
    // cancelled when the stream ends.
    void start(upgraded_connection& connection, upgrade_done done) {
        weir::transport& stream = connection.transport();
        auto channel = std::make_shared<detail::sse_channel>(stream, options_, &connection);
        connection.on_shutdown([weak = std::weak_ptr<detail::sse_channel>(channel)] {
            if (auto c = weak.lock()) c->finish();
        });
        if (options_.retry) {
            sse_event e;
            e.retry = options_.retry;
            channel->push(std::make_shared<const std::string>(encode(e)), false);
        }
        channel->flush(); // writes the retry field, or arms the first heartbeat
        if (auto subscribe = std::move(subscription_)) subscribe(channel, last_event_id_);
        if (producer_) start_producer(channel);
        watch_client(std::move(channel), connection, std::move(done));
    }

    // The same session as a coroutine: waits until start()'s session has ended.
    asio::awaitable<void> run(upgraded_connection& connection) {
        return detail::run_started_session(*this, connection);
    }

    const std::string& last_event_id() const noexcept { return last_event_id_; }

private:
    void start_producer(const std::shared_ptr<detail::sse_channel>& channel) {
        channel->producer_running_ = true;
        asio::co_spawn(channel->get_executor(), produce(channel, std::move(producer_), last_event_id_),
                       asio::bind_cancellation_slot(channel->producer_cancel_.slot(),
                                                    [channel](std::exception_ptr e) {
                                                        channel->producer_ended(std::move(e));
                                                    }));
    }

    // Clients send nothing on an event stream: what arrives is read into the loop's buffer and dropped. The wait
    // ends when the client leaves or the channel aborts (which cancels it).
    static void watch_client(std::shared_ptr<detail::sse_channel> channel, upgraded_connection& connection,
                             upgrade_done done) {
        if (!channel->is_open()) { // ended already (a shutdown that came first, a failed write)
            end_stream(std::move(channel), connection, std::move(done));
            return;
        }
        weir::transport& stream = connection.transport();
        stream.async_wait_readable([channel = std::move(channel), &connection,
                                    done = std::move(done)](asio::error_code ec) mutable {
            if (!ec && channel->is_open()) {
                auto& loop = detail::event_loop::of(detail::io_context_of(channel->get_executor()));
                auto buffer = loop.receive_buffer();
                connection.transport().read_some(asio::buffer(buffer.data(), buffer.size()), ec);
                if (!ec || ec == asio::error::would_block) {
                    watch_client(std::move(channel), connection, std::move(done));
                    return;
                }
            }
            end_stream(std::move(channel), connection, std::move(done));
        });
    }

    static void end_stream(std::shared_ptr<detail::sse_channel> channel, upgraded_connection& connection,
                           upgrade_done done) {
        channel->abort();
        if (channel->producer_running_) {
            // The producer was cancelled: it ends at its next wait, and the stream with it.
            auto* c = channel.get();
            c->after_producer_ = [channel = std::move(channel), &connection, done = std::move(done)]() mutable {
                finish_stream(std::move(channel), connection, std::move(done));
            };
            return;
        }
        finish_stream(std::move(channel), connection, std::move(done));
    }

    static void finish_stream(std::shared_ptr<detail::sse_channel> channel, upgraded_connection& connection,
                              upgrade_done done) {
        auto error = channel->error_;
        channel->detach();
        connection.on_shutdown({});
        connection.transport().shutdown_send();
        done(std::move(error));
    }

    // Owns what the producer uses (its closure, its stream), so it may outlive the session by a wait.
    static asio::awaitable<void> produce(std::shared_ptr<detail::sse_channel> channel, sse_producer producer,
                                         std::string last_event_id) {
        sse_stream stream(std::move(channel), std::move(last_event_id));
        co_await producer(stream);
    }

    sse_producer producer_;
    sse_subscription subscription_;
    std::string last_event_id_;
    sse_options options_;
};

/// The Last-Event-ID a reconnecting client sent: the header, or a `lastEventId` query parameter (for clients
/// that cannot set headers on a first connection).
template <class Request>
std::string last_event_id(const Request& req) {
    if (auto h = req.header("last-event-id")) return std::string(*h);
    if (auto q = req.query_param("lastEventId")) return *q;
    return {};
}

/// Answers a request with an event stream run by `producer`:
/// `return weir::event_stream(req, [](weir::sse_stream& out) -> asio::awaitable<void> { ... });`
template <class Request>
pending<sse> event_stream(const Request& req, sse_producer producer, sse_options options = {}) {
    return pending<sse>(sse(std::move(producer), last_event_id(req), options));
}

} // namespace weir
