#pragma once

#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/sse/event.hpp>
#include <weir/transport.hpp>
#include <weir/upgrade.hpp>
#include <weir/detail/config.hpp>
#include <weir/detail/event_loop.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/bind_allocator.hpp>
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

// What a stream that runs a producer coroutine keeps beside its channel; a hub's subscriber has none of it.
struct sse_producer_state {
    explicit sse_producer_state(asio::io_context& io) : room(io, asio::steady_timer::time_point::max()) {}
    asio::steady_timer room; // the producer waits on it for room in the queue
    asio::cancellation_signal cancel;
    std::function<void()> after; // what the session does once the producer has ended
    std::exception_ptr error;    // what the producer failed with, for the session to report
    bool running = false;
};

// One event stream's session and writing side, driven by callbacks on the connection's loop: bytes are written
// at once with a non-blocking gathering write, and the channel waits for writability only while the socket is
// full. The queue is bounded in events and in bytes; its storage is freed whenever it drains. Heartbeats and
// the write deadline are one intrusive entry in the loop's deadline sweep, not a timer per stream. The options
// are shared with every stream of the same hub or topics object. Once the session is over (finish_session()),
// every call is a no-op that never touches the socket.
class sse_channel : public std::enable_shared_from_this<sse_channel> {
public:
    using bytes = std::shared_ptr<const std::string>;

    sse_channel(upgraded_connection& connection, std::shared_ptr<const sse_options> options, upgrade_done done)
        : connection_(&connection),
          loop_(&event_loop::of(io_context_of(connection.transport().get_executor()))),
          options_(std::move(options)), deadline_(&on_deadline, this), done_(std::move(done)) {}
    sse_channel(const sse_channel&) = delete;
    sse_channel& operator=(const sse_channel&) = delete;

    bool is_open() const noexcept { return !closed_; }
    // What a write touches: this, the connection, its transport (for a fan-out that prefetches them).
    std::array<const void*, 3> hot_objects() const noexcept {
        if (!connection_) return {this, nullptr, nullptr};
        return {this, connection_, &connection_->transport()};
    }
    asio::any_io_executor get_executor() const { return io().get_executor(); } // the connection's loop
    bool full() const noexcept { return !fits(1); }
    /// Bytes queued or being written.
    std::size_t pending_bytes() const noexcept { return pending_bytes_; }

    // Whether n more bytes fit: the event count and the byte budget (an event alone always fits).
    bool fits(std::size_t n) const noexcept { return fits_behind(queued(), pending_bytes_, n); }
    // Whether n more bytes would fit behind `events` queued events of `bytes` bytes: fits() for a queue in that
    // state (a delivery pass checks a run it writes unqueued event by event, as pushing it would).
    bool fits_behind(std::size_t events, std::size_t bytes, std::size_t n) const noexcept {
        return events < std::min(options_->queue_capacity, max_queued) &&
               (bytes == 0 || bytes + n <= options_->queue_bytes);
    }

    // At most half the queue's bounds are used.
    bool half_empty() const noexcept {
        return queued() <= options_->queue_capacity / 2 && pending_bytes_ <= options_->queue_bytes / 2;
    }

    // Queues encoded bytes, applying the slow-consumer policy when they do not fit, and writes what the socket
    // takes now unless `write_now` is false (the caller queues more, then calls flush()). False once the stream
    // is closed (or closed by the policy).
    bool push(bytes b, bool write_now = true) {
        if (closed_ || ending_) return false;
        if (!fits(b->size())) {
            if (options_->on_full == slow_consumer_policy::disconnect) {
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
        if (queue_.capacity() == 0) queue_.swap(loop_->part<spare_queue>().storage); // may be empty too
        queue_.push_back(std::move(b));
        if (write_now) flush();
        return !closed_;
    }

    // For a topics delivery pass: nothing waits to be written, so the pass may write its events straight from
    // their shared bytes (write_unqueued) instead of queueing them.
    bool writes_unqueued() const noexcept {
        return !closed_ && !ending_ && connection_ && !waiting_writable_ && queued() == 0;
    }

    // Writes `total` bytes that were not queued, in one write; returns what the socket took (0 if nothing, or
    // on an error, which the queued path that follows then meets). A write taken whole restarts the heartbeat,
    // as flush() does when it empties the queue.
    std::size_t write_unqueued(std::span<const asio::const_buffer> buffers, std::size_t total) {
        asio::error_code ec;
        std::size_t n = connection_->transport().write_some(buffers, ec);
        if (ec) return 0;
        if (n == total) {
            connection_->count_written(n);
            arm_heartbeat();
        }
        return n;
    }

    // After write_unqueued() took `n` bytes of events the caller has queued since (push(..., false)): those
    // bytes are written; the rest goes as the socket drains, under the write deadline.
    void unqueued_partly_written(std::size_t n) {
        consume(n);
        flush();
    }

    // Writes what the socket takes now; waits for writability (callback) only if it is full.
    void flush() {
        if (closed_ || !connection_ || waiting_writable_) return;
        bool freed = false;
        while (queued() > 0) {
            asio::error_code ec;
            // A few events (a delivery pass's usual share) need no 64 buffers laid out, nor cleared first.
            std::size_t n = queued() <= 4 ? write_queued<4>(ec) : write_queued<64>(ec);
            if (ec == asio::error::would_block || (!ec && n == 0)) break;
            if (ec) { // the client is gone
                abort();
                return;
            }
            consume(n);
            freed = true;
        }
        if (queued() == 0) {
            give_back_queue(); // an idle stream keeps no storage for its queue
            head_ = 0;
            offset_ = 0;
            writing_late_ = false;
            if (ending_) {
                abort(); // finished: everything was written
                return;
            }
            arm_heartbeat();
        } else {
            wait_writable();
        }
        if (freed) wake_room();
    }

    // Waits until n bytes fit or the stream closed.
    WEIR_DECL asio::awaitable<void> wait_for_room(std::size_t n = 1);

    // Waits until at most half the queue's bounds are used, or the stream closed.
    WEIR_DECL asio::awaitable<void> wait_for_half_empty();

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
        if (connection_) connection_->transport().cancel();
        wake_room();
        if (producer_ && producer_->running) producer_->cancel.emit(asio::cancellation_type::terminal);
    }

    // Hands the channel something to own until the stream ends; it hears of room in the queue.
    void attach(std::unique_ptr<sse_attachment> a) { attachment_ = std::move(a); }

private:
    friend class weir::sse;

    static constexpr std::size_t max_queued = UINT32_MAX / 4; // head_ and the queue's length stay 32-bit

    asio::io_context& io() const noexcept { return static_cast<asio::io_context&>(loop_->context()); }
    deadline_sweep& sweep() const noexcept { return loop_->deadlines(); }
    std::size_t queued() const noexcept { return queue_.size() - head_; }

    // The storage of a drained queue, kept by the event loop for the next stream that queues something: a
    // delivery pass that writes each stream's events at once allocates no queue.
    struct spare_queue {
        std::vector<bytes> storage;
    };
    static constexpr std::size_t max_spare_queue = 64; // events: a larger queue is a burst that has passed

    void give_back_queue() {
        queue_.clear();
        auto& spare = loop_->part<spare_queue>().storage;
        if (spare.capacity() < queue_.capacity() && queue_.capacity() <= max_spare_queue) spare.swap(queue_);
        std::vector<bytes>().swap(queue_);
    }

    // Writes up to N queued events in one gathering write.
    template <std::size_t N>
    std::size_t write_queued(asio::error_code& ec) {
        std::array<asio::const_buffer, N> buffers;
        std::size_t count = 0;
        for (std::size_t i = head_; i < queue_.size() && count < N; ++i)
            buffers[count++] = asio::buffer(*queue_[i]) + (i == head_ ? offset_ : 0);
        return connection_->transport().write_some(std::span<const asio::const_buffer>(buffers.data(), count), ec);
    }

    // The socket is full: the write deadline runs until what is queued now has been written, and flush() goes on
    // once the socket is writable. Out of flush() so that a write the socket takes whole (the delivery pass's
    // usual case) inlines none of the wait.
    WEIR_DECL void wait_writable();

    void consume(std::size_t n) {
        if (connection_) connection_->count_written(n);
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
        if (options_->heartbeat.count() > 0) deadline_.arm(sweep(), options_->heartbeat);
        else deadline_.cancel();
    }

    // The loop's sweep found the deadline passed: a write that took too long closes the stream (the client
    // stopped reading); a quiet stream sends a heartbeat.
    static WEIR_DECL void on_deadline(void* context);

    WEIR_DECL asio::awaitable<void> wait_room();

    void wake_room() {
        if (producer_) producer_->room.cancel();
    }

    // The session. Clients send nothing on an event stream: what arrives is read into the loop's buffer and
    // dropped. The wait ends when the client leaves or the channel aborts (which cancels it). It is allocated
    // at its own size (own_size_allocator): it is what an idle stream waits in.
    WEIR_DECL void watch_client();

    WEIR_DECL void end_session();

    // Called once the session is over: the connection closes the socket next, so nothing here may touch it
    // again, and an attachment (a hub's subscription) is released now.
    WEIR_DECL void finish_session();

    WEIR_DECL void producer_ended(std::exception_ptr e);

    static bytes heartbeat() {
        static const bytes beat = std::make_shared<const std::string>(":\n\n");
        return beat;
    }

    upgraded_connection* connection_; // null once the session is over
    event_loop* loop_;
    std::shared_ptr<const sse_options> options_;
    deadline deadline_; // the heartbeat while the queue is empty, the write deadline while the socket is full
    std::vector<bytes> queue_; // [head_, end) waits; the event at head_ is written from offset_
    std::size_t offset_ = 0;
    std::size_t pending_bytes_ = 0; // queued, less what of the first is written
    std::size_t owed_ = 0;          // bytes to write before the write deadline is re-armed
    std::unique_ptr<sse_attachment> attachment_;
    std::unique_ptr<sse_producer_state> producer_; // only for a stream with a producer
    upgrade_done done_;
    std::uint32_t head_ = 0; // beside the flags: fits() keeps the queue under max_queued events
    bool waiting_writable_ = false;
    bool writing_late_ = false; // the socket was full: the deadline is the write deadline
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
    WEIR_DECL asio::awaitable<bool> send(const sse_event& event);

    /// Sends already encoded bytes (one or more whole events), shared with other streams.
    WEIR_DECL asio::awaitable<bool> send_encoded(std::shared_ptr<const std::string> bytes);

    /// Sends a comment line (clients ignore it).
    WEIR_DECL asio::awaitable<bool> send_comment(std::string_view text);

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
        : sse(std::move(producer), std::move(last_event_id), std::make_shared<const sse_options>(options)) {}

    /// A stream with no producer: `subscription` hands its channel to a publisher that writes to it.
    sse(sse_subscription subscription, std::string last_event_id, sse_options options = {})
        : sse(std::move(subscription), std::move(last_event_id), std::make_shared<const sse_options>(options)) {}

    /// The same with options shared by many streams (a hub's): each stream keeps a pointer, not a copy.
    sse(sse_producer producer, std::string last_event_id, std::shared_ptr<const sse_options> options)
        : setup_(std::make_unique<setup>(
              setup{std::move(producer), {}, std::move(last_event_id), shared_or_default(std::move(options))})) {}

    sse(sse_subscription subscription, std::string last_event_id, std::shared_ptr<const sse_options> options)
        : setup_(std::make_unique<setup>(
              setup{{}, std::move(subscription), std::move(last_event_id), shared_or_default(std::move(options))})) {}

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
    // cancelled when the stream ends. Once started, this object keeps nothing: what the session needs is its
    // channel, owned by its pending wait (and by the producer, if any).
    WEIR_DECL void start(upgraded_connection& connection, upgrade_done done);

    // The same session as a coroutine: waits until start()'s session has ended.
    asio::awaitable<void> run(upgraded_connection& connection) {
        return detail::run_started_session(*this, connection);
    }

    /// The client's Last-Event-ID, until the stream starts.
    const std::string& last_event_id() const noexcept {
        static const std::string none;
        return setup_ ? setup_->last_event_id : none;
    }

private:
    // What start() needs, and nothing the running stream keeps: one pointer while the upgrade is pending, none
    // after (a committed pending<sse> lives as long as its stream).
    struct setup {
        sse_producer producer;
        sse_subscription subscription;
        std::string last_event_id;
        std::shared_ptr<const sse_options> options;
    };

    static std::shared_ptr<const sse_options> shared_or_default(std::shared_ptr<const sse_options> options) {
        if (options) return options;
        static const auto defaults = std::make_shared<const sse_options>();
        return defaults;
    }

    static WEIR_DECL void start_producer(const std::shared_ptr<detail::sse_channel>& channel, sse_producer producer,
                                         std::string last_event_id);

    // Owns what the producer uses (its closure, its stream), so it may outlive the session by a wait.
    static WEIR_DECL asio::awaitable<void> produce(std::shared_ptr<detail::sse_channel> channel,
                                                   sse_producer producer, std::string last_event_id);

    std::unique_ptr<setup> setup_;
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

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/sse_stream.ipp>
#endif
