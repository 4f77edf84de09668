#pragma once

#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/sse/event.hpp>
#include <weir/upgrade.hpp>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <memory>
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

namespace detail {

// The writing side of one event stream: a queue of encoded events bounded in events and in bytes, drained by
// one writer under a write deadline, a reader that notices the client going away, and heartbeats. Lives on
// the connection's executor. Once run() has returned, every call is a no-op that never touches the socket.
class sse_channel : public std::enable_shared_from_this<sse_channel> {
public:
    using bytes = std::shared_ptr<const std::string>;

    sse_channel(asio::ip::tcp::socket& socket, sse_options options, upgraded_connection* counter = nullptr)
        : counter_(counter), socket_(&socket), options_(options), wake_(socket.get_executor()),
          room_(socket.get_executor()) {
        wake_.expires_at(asio::steady_timer::time_point::max());
        room_.expires_at(asio::steady_timer::time_point::max());
    }

    bool is_open() const noexcept { return !closed_; }
    asio::any_io_executor get_executor() { return wake_.get_executor(); } // the socket's, usable after run()
    bool full() const noexcept { return !fits(1); }
    std::size_t bytes_written() const noexcept { return written_; }
    /// Bytes queued or being written.
    std::size_t pending_bytes() const noexcept { return pending_bytes_; }

    // Whether n more bytes fit: the event count and the byte budget (an event alone always fits).
    bool fits(std::size_t n) const noexcept {
        return queue_.size() < options_.queue_capacity &&
               (pending_bytes_ == 0 || pending_bytes_ + n <= options_.queue_bytes);
    }

    // Queues encoded bytes, applying the slow-consumer policy when they do not fit. False once the stream
    // is closed (or closed by the policy).
    bool push(bytes b) {
        if (closed_ || ending_) return false;
        if (!fits(b->size())) {
            if (options_.on_full == slow_consumer_policy::disconnect) {
                abort();
                return false;
            }
            // What is being written cannot be dropped: past it, the new event goes alone.
            while (!queue_.empty() && !fits(b->size())) {
                pending_bytes_ -= queue_.front()->size();
                queue_.pop_front();
            }
        }
        enqueue(std::move(b));
        return true;
    }

    // Waits until n bytes fit or the stream closed.
    asio::awaitable<void> wait_for_room(std::size_t n = 1) {
        while (!closed_ && !fits(n)) co_await wait_room();
    }

    // At most half the queue's bounds are used.
    bool half_empty() const noexcept {
        return queue_.size() <= options_.queue_capacity / 2 && pending_bytes_ <= options_.queue_bytes / 2;
    }

    // Waits until at most half the queue's bounds are used, or the stream closed.
    asio::awaitable<void> wait_for_half_empty() {
        while (!closed_ && !half_empty()) co_await wait_room();
    }

    // Ends the stream once what is queued has been written.
    void finish() {
        ending_ = true;
        if (!writing_) wake_.cancel(); // while writing, wake_ is the write's deadline
    }

    // Ends the stream now.
    void abort() {
        closed_ = true;
        asio::error_code ec;
        if (socket_) socket_->cancel(ec);
        wake_.cancel();
        room_.cancel();
    }

    // Writes until finished, aborted, or the client goes away.
    asio::awaitable<void> run() {
        using namespace asio::experimental::awaitable_operators;
        co_await (write_loop() || watch_client());
        closed_ = true;
        socket_ = nullptr; // the connection closes it next: nothing here may touch it again
        room_.cancel();
        wake_.cancel();
    }

private:
    void enqueue(bytes b) {
        pending_bytes_ += b->size();
        queue_.push_back(std::move(b));
        if (!writing_) wake_.cancel(); // while writing, wake_ is the write's deadline
    }

    asio::awaitable<void> wait_room() {
        asio::error_code ec;
        co_await room_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        room_.expires_at(asio::steady_timer::time_point::max());
    }

    asio::awaitable<void> write_loop() {
        auto self = shared_from_this();
        std::vector<asio::const_buffer> buffers;
        std::vector<bytes> writing;
        while (!closed_) {
            if (queue_.empty()) {
                if (ending_) co_return;
                asio::error_code ec;
                if (options_.heartbeat.count() > 0) wake_.expires_after(options_.heartbeat);
                else wake_.expires_at(asio::steady_timer::time_point::max());
                co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                if (!ec && queue_.empty() && !ending_ && !closed_) enqueue(heartbeat());
                continue;
            }
            writing.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
            queue_.clear();
            room_.cancel();
            buffers.clear();
            std::size_t batch = 0;
            for (auto& b : writing) {
                buffers.emplace_back(asio::buffer(*b));
                batch += b->size();
            }
            writing_ = true;
            arm_deadline();
            asio::error_code ec;
            std::size_t n =
                co_await asio::async_write(*socket_, buffers, asio::redirect_error(asio::use_awaitable, ec));
            writing_ = false;
            ++write_generation_; // a deadline that fires from here on is stale (the heartbeat wait cancels it)
            written_ += n;
            if (counter_) counter_->count_written(n);
            pending_bytes_ -= batch;
            writing.clear();
            room_.cancel();
            if (ec) co_return;
        }
    }

    // A write that does not finish in time closes the stream (the client stopped reading). The heartbeat
    // timer keeps the deadline: the writer waits for nothing else while it writes, and one timer less per
    // stream matters when a server holds many idle ones.
    void arm_deadline() {
        if (options_.write_timeout.count() <= 0) return;
        wake_.expires_after(options_.write_timeout);
        wake_.async_wait([weak = weak_from_this(), generation = write_generation_](const asio::error_code& ec) {
            if (ec) return;
            if (auto self = weak.lock(); self && self->write_generation_ == generation && !self->closed_)
                self->abort();
        });
    }

    // Clients send nothing on an event stream; a read completes only when the client closes or resets.
    asio::awaitable<void> watch_client() {
        char sink[512];
        for (;;) {
            asio::error_code ec;
            co_await socket_->async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return;
        }
    }

    static bytes heartbeat() {
        static const bytes beat = std::make_shared<const std::string>(":\n\n");
        return beat;
    }

    upgraded_connection* counter_;
    asio::ip::tcp::socket* socket_;
    sse_options options_;
    asio::steady_timer wake_;
    asio::steady_timer room_;
    std::deque<bytes> queue_;
    std::size_t pending_bytes_ = 0; // queued or being written
    std::size_t written_ = 0;
    std::uint64_t write_generation_ = 0;
    bool writing_ = false;
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

    void prepare_head(weir::headers& h) {
        h.set("Content-Type", "text/event-stream; charset=utf-8");
        h.set("Cache-Control", "no-store");
        h.set("X-Accel-Buffering", "no");
    }

    // The stream is delimited by closing the connection.
    void write_protocol_fields(std::string& out) const { out += "Connection: close\r\n"; }

    asio::awaitable<void> run(upgraded_connection& connection) {
        using namespace asio::experimental::awaitable_operators;
        auto channel = std::make_shared<detail::sse_channel>(connection.socket(), options_, &connection);
        sse_stream stream(channel, last_event_id_);
        connection.on_shutdown([weak = std::weak_ptr<detail::sse_channel>(channel)] {
            if (auto c = weak.lock()) c->finish();
        });
        if (options_.retry) {
            sse_event e;
            e.retry = options_.retry;
            channel->push(std::make_shared<const std::string>(encode(e)));
        }
        // When the client leaves, run() ends first and the producer is cancelled at its next wait.
        co_await (channel->run() || produce(stream));
        connection.on_shutdown({});
        asio::error_code ec;
        connection.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    }

    const std::string& last_event_id() const noexcept { return last_event_id_; }

private:
    asio::awaitable<void> produce(sse_stream& stream) {
        co_await producer_(stream);
        stream.channel()->finish();
        // Stay until the queue is written: run() finishing ends this wait.
        asio::steady_timer forever(stream.get_executor(), asio::steady_timer::time_point::max());
        asio::error_code ec;
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    sse_producer producer_;
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
