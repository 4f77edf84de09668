#pragma once

#include <weir/detail/config.hpp>
#include <weir/detail/event_loop.hpp>
#include <weir/detail/utf8.hpp>
#include <weir/detail/websocket_deflate_negotiation.hpp>
#include <weir/detail/websocket_fifo.hpp>
#include <weir/detail/websocket_frame.hpp>
#include <weir/detail/websocket_limits.hpp>
#include <weir/detail/websocket_notifier.hpp>
#include <weir/detail/websocket_spares.hpp>
#include <weir/transport.hpp>
#include <weir/upgrade.hpp>
#include <weir/websocket/options.hpp>

#if defined(WEIR_HAS_ZLIB)
#include <weir/detail/websocket_deflate.hpp>
#endif

#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace weir {

/// A whole WebSocket message, reassembled from its frames. Text messages are valid UTF-8.
struct websocket_message {
    std::string data;
    bool binary = false;
};

/// Bytes to send: a string moved in (no copy), a view (copied), or bytes shared with other sessions (a
/// broadcast encodes once). Converts from each of these, so `ws.send(...)` takes any of them.
class websocket_payload {
public:
    websocket_payload(std::string bytes) noexcept : owned_(std::move(bytes)) {} // NOLINT(google-explicit-constructor)
    websocket_payload(std::string_view bytes) : owned_(bytes) {}                 // NOLINT(google-explicit-constructor)
    websocket_payload(const char* bytes) : owned_(bytes) {}                      // NOLINT(google-explicit-constructor)
    websocket_payload(std::shared_ptr<const std::string> bytes) noexcept         // NOLINT(google-explicit-constructor)
        : shared_(std::move(bytes)) {}
    websocket_payload(std::shared_ptr<std::string> bytes) noexcept // NOLINT(google-explicit-constructor)
        : shared_(std::move(bytes)) {}

    std::string_view view() const noexcept { return shared_ ? std::string_view(*shared_) : std::string_view(owned_); }
    std::size_t size() const noexcept { return view().size(); }

private:
    friend class websocket_connection;
    std::string owned_;
    std::shared_ptr<const std::string> shared_;
};

/// How a session ended: the code and reason of the close that ended it, and who started it.
struct websocket_close_status {
    /// The initiator's code: the peer's (no_status_received if its close had none), ours (normal when the
    /// handler returned, going_away at shutdown, protocol_error ... when the peer broke a rule), or
    /// abnormal_closure when the connection ended without a closing handshake (vanished peer, timeout).
    close_code code = close_code::abnormal_closure;
    std::string reason;
    bool by_peer = false; ///< the peer started the close (or vanished)
};

class websocket_connection;

/// A session written as callbacks rather than a coroutine; each runs on the session's thread. Answer with
/// `ws.try_send(...)` (it does not wait; false when the send queue is full) or a sender(). A session driven by
/// callbacks keeps no coroutine at all.
struct websocket_callbacks {
    std::function<void(websocket_connection&)> on_open;
    std::function<void(websocket_connection&, websocket_message)> on_message;
    std::function<void(websocket_connection&, const websocket_close_status&)> on_close;
};

/// What runs a WebSocket session: a coroutine given the connection. When it returns, the session closes
/// with 1000 (if still open); if it throws, with 1011.
using websocket_handler = std::function<asio::awaitable<void>(websocket_connection&)>;

namespace detail {

// What the senders of one session share with it. The session clears `open` when it ends (and when it is
// destroyed, which also happens when its server's event loop is destroyed); a sender posts only while
// holding the mutex and seeing `open`, so no post can reach an executor that is gone, and a check can never
// pass just before the session ends. Bytes posted but not yet queued count against the send budget too.
struct ws_sender_link {
    std::mutex mutex;
    bool open = true;
    bool closing = false; // a close was posted: further messages are refused
    std::weak_ptr<websocket_connection> session;
    asio::any_io_executor executor;
    std::size_t posted_bytes = 0;
    std::size_t budget = 0;
    websocket_full_queue_policy on_full = websocket_full_queue_policy::close_session;
};

class websocket_topic_subscriber;

} // namespace detail

/// Sends to a WebSocket session from any thread: each call posts to the session's thread. Holding one does
/// not keep the session open, and calling it after the session (or its whole server) is gone is a harmless
/// no-op that returns false. A message that finds the send queue full (websocket_options::send_queue_bytes,
/// counting messages still on their way to the session's thread) follows websocket_options::on_full: by
/// default the session is closed with 1008, so a reader that slow reconnects rather than grow memory.
class websocket_sender {
public:
    /// Queues a text message; false if the session is gone, closing, or the message did not fit (true does
    /// not promise delivery).
    bool send(websocket_payload text) { return post(detail::ws_text, std::move(text)); }
    /// Queues a binary message.
    bool send_binary(websocket_payload bytes) { return post(detail::ws_binary, std::move(bytes)); }
    /// Queues a message whose bytes are shared with other sessions (a broadcast encodes once).
    bool send_shared(std::shared_ptr<const std::string> payload, bool binary = false) {
        return post(binary ? detail::ws_binary : detail::ws_text, std::move(payload));
    }
    /// Starts the closing handshake; false if the session is gone.
    WEIR_DECL bool close(close_code code = close_code::normal, std::string reason = {});
    /// True while the session runs (it may be closing).
    bool alive() const {
        std::lock_guard lock(link_->mutex);
        return link_->open;
    }

private:
    friend class websocket_connection;
    explicit websocket_sender(std::shared_ptr<detail::ws_sender_link> link) : link_(std::move(link)) {}
    WEIR_DECL bool post(std::uint8_t opcode, websocket_payload payload);

    std::shared_ptr<detail::ws_sender_link> link_;
};

/// One WebSocket session (RFC 6455) as its handler sees it: `co_await read()` for each message,
/// `co_await send(...)` to answer. Lives on its connection's executor (one thread); from other threads use
/// sender().
class websocket_connection : public std::enable_shared_from_this<websocket_connection> {
public:
    /// A session on an upgraded socket; `leftover` holds bytes that arrived after the handshake. The server
    /// makes these (weir::websocket); tests may too.
    WEIR_DECL websocket_connection(weir::transport& transport, const websocket_options& options,
                                   std::string subprotocol = {}, std::string leftover = {});

    websocket_connection(const websocket_connection&) = delete;
    websocket_connection& operator=(const websocket_connection&) = delete;
    WEIR_DECL ~websocket_connection();

    /// The next message, or nothing once the session has closed (then close_status() says how).
    WEIR_DECL asio::awaitable<std::optional<websocket_message>> read();

    /// Sends a text message (valid UTF-8 is the sender's duty); waits while the send queue is full.
    /// False once the session is closing.
    asio::awaitable<bool> send(websocket_payload text) { return send_message(detail::ws_text, std::move(text)); }
    /// Sends a binary message; waits while the send queue is full.
    asio::awaitable<bool> send_binary(websocket_payload bytes) {
        return send_message(detail::ws_binary, std::move(bytes));
    }
    /// Sends a message whose bytes are shared with other sessions.
    asio::awaitable<bool> send_shared(std::shared_ptr<const std::string> payload, bool binary = false) {
        return send_message(binary ? detail::ws_binary : detail::ws_text, std::move(payload));
    }

    /// Queues a text message without waiting: false if the queue is full or the session is closing.
    /// For callbacks (websocket_callbacks), which cannot wait.
    bool try_send(websocket_payload text) { return !queue_full() && enqueue(detail::ws_text, std::move(text)); }
    /// Queues a binary message without waiting.
    bool try_send_binary(websocket_payload bytes) {
        return !queue_full() && enqueue(detail::ws_binary, std::move(bytes));
    }

    /// Starts the closing handshake (messages already queued go first) and waits until it has ended: the
    /// peer answered, or close_timeout passed. 1005 (no_status_received) sends a close without a code;
    /// codes that may never be sent (1004, 1006, 1015, 1016-2999, 5000 and up) are sent as 1011. A reason
    /// is cut to 123 bytes at a character boundary, and left out if it is not UTF-8.
    WEIR_DECL asio::awaitable<void> close(close_code code = close_code::normal, std::string_view reason = {});

    /// A handle to send from other threads (the session must be owned by a shared_ptr, as the server's are).
    WEIR_DECL std::shared_ptr<websocket_sender> sender();

    /// The subprotocol chosen in the handshake, or "".
    const std::string& subprotocol() const noexcept {
        static const std::string none;
        return more_ ? more_->subprotocol : none;
    }

    /// True if the handshake agreed on permessage-deflate (RFC 7692): messages of at least
    /// websocket_options::deflate.threshold bytes go out compressed, and the peer may compress its own.
    bool permessage_deflate() const noexcept { return deflate_ != nullptr; }

    /// True until the closing handshake starts.
    bool is_open() const noexcept { return !close_queued_ && !finished_; }

    /// How the session ended (meaningful once read() returned nothing).
    const websocket_close_status& close_status() const noexcept {
        static const websocket_close_status none;
        return more_ ? more_->status : none;
    }

    /// Messages waiting to be written (including those being written).
    std::size_t queued_messages() const noexcept { return queued_count_; }

    /// The session's executor: a strand of one thread.
    asio::any_io_executor get_executor() const { return stream_.get_executor(); }

private:
    friend class websocket;
    friend class websocket_sender;
    friend class detail::websocket_topic_subscriber;

    struct outgoing {
        std::uint8_t opcode;
        websocket_payload payload;
        bool compressed = false; // the payload is deflated: its frame has RSV1 set
        // The payload is a whole text frame made by a publisher (see queue_in_pass()), header included: this
        // many bytes of it are the header.
        std::uint8_t framed = 0;

        std::size_t message_size() const noexcept { return payload.size() - framed; }
    };

    struct segment {
        const char* data;
        std::size_t offset, size;
    };
    // What sending needs, taken from the loop's spares while something waits to be written (sending()) and
    // given back when all is written (release_send_state()).
    struct send_state {
        detail::ws_fifo<outgoing> outbox;  // messages, then possibly our close
        detail::ws_fifo<outgoing> control; // at most one pong and one ping, ahead of messages
        std::vector<outgoing> batch;       // the control frames being written
        // The messages being written: the first this many of the outbox (left there, not moved, until written).
        std::size_t batch_messages = 0;
        std::string scratch;
        std::vector<segment> segments;
        std::vector<asio::const_buffer> buffers;
        std::size_t batch_bytes = 0;
        std::size_t write_left = 0; // of the batch, while waiting for writability

        // Empties it for the next session, keeping buffers only as big as a few small messages need.
        void trim() noexcept {
            if (outbox.capacity() > 64) outbox.release();
            outbox.clear();
            control.clear();
            batch.clear();
            batch_messages = 0;
            segments.clear();
            buffers.clear();
            if (scratch.capacity() > 4 * 1024) std::string().swap(scratch); // 64 spares keep at most 256 KiB here
            scratch.clear();
            batch_bytes = write_left = 0;
        }
    };

    // The handshake agreed on permessage-deflate (called before run()). Without zlib no agreement is made.
    // It stays in the header, as does its caller websocket::start: it is the session's one part that depends on
    // WEIR_HAS_ZLIB, and what libweir.a compiles must not (docs/separate_compilation.md).
    void use_deflate([[maybe_unused]] const detail::ws_deflate_agreement& agreement,
                     [[maybe_unused]] const websocket_deflate_options& options) {
#if defined(WEIR_HAS_ZLIB)
        deflate_ = std::make_unique<detail::ws_deflate_session>(agreement, options);
        reader_.use_inflater(&deflate_->inflater());
#endif
    }

    static constexpr unsigned max_reads_without_wait = 16;      // then others on this loop get a turn
    static constexpr std::size_t direct_threshold = 4 * 1024;   // payload left that is read straight in
    static constexpr std::size_t direct_limit = 1024 * 1024;    // at most per direct read
    static constexpr std::size_t batch_limit = 32;              // frames per write (64 iovecs)
    static constexpr std::size_t small_payload = 1024;          // copied next to its header
    static constexpr std::size_t inbox_limit = 64;              // messages read ahead of the handler

    // ---- running -------------------------------------------------------------------------------------

    // Starts the session and returns: the handler runs as a coroutine of its own (or the callbacks are called
    // from here), frames are read as the socket becomes readable, and `done` runs once when the session has
    // ended and its handler has returned. Nothing else waits: an idle session is this object and one
    // readiness wait (plus its handler's coroutine, if it has one).
    WEIR_DECL void start(websocket_handler handler, std::shared_ptr<const websocket_callbacks> callbacks,
                         upgraded_connection* link, upgrade_done done);

    WEIR_DECL void handler_finished(std::exception_ptr e);

    // Runs one of the websocket_callbacks. One that throws ends the callbacks (as it would end the coroutine
    // that calls them) and closes the session with 1011.
    template <class Call>
    void call_back(Call&& call) {
        try {
            call();
        } catch (...) {
            callbacks_.reset();
            if (!more().handler_error) more_->handler_error = std::current_exception();
            begin_close(close_code::internal_error, {});
        }
    }

    // Moves the session on from where it stands: while it reads, reads and dispatches frames; once a close is
    // queued and reading has stopped, waits for that close to go out, sends FIN and reads until the peer closes
    // too (closing with unread bytes would reset the connection, which can destroy the close frame before the
    // peer read it); then ends. Whatever can change where it stands (readability, a write done, room in the
    // inbox, an abort) calls this; a call made while it runs is folded into that run.
    WEIR_DECL void advance();

    WEIR_DECL void step();

    // One read and what it brings: into the event loop's buffer, copied out only when a full inbox leaves part
    // of it unread; a large frame's payload straight into its message.
    WEIR_DECL void read_frames();

    // Feeds bytes to the frame reader and acts on what it finds, until they are used up, reading stops, or
    // the inbox is full. Returns how many it used. Once we are closing nothing waits: what does not fit is
    // dropped.
    WEIR_DECL std::size_t dispatch(char* data, std::size_t size);

    // After our close went out: what the peer still sends is read and dropped until it closes too.
    WEIR_DECL void drain();

    WEIR_DECL void wait_readable();

    // A peer that keeps the socket readable (a ping flood) would let non-blocking reads run on without ever
    // returning to the event loop, starving every other connection on this thread: after a run of reads that
    // found bytes at once, go to the back of the loop's queue. True if it did.
    WEIR_DECL bool busy();

    // Reading was paused by a full inbox: go on if there is room now.
    WEIR_DECL void resume_reading();

    // The session will read and write no more; its handler gets close_timeout to return, then is cancelled.
    WEIR_DECL void end_session();

    WEIR_DECL void complete();

    // Full once it holds inbox_limit messages or inbox_bytes bytes; a message of any size fits an empty one.
    bool inbox_full() const noexcept {
        return co_ && !co_->inbox.empty() &&
               (co_->inbox.size() >= inbox_limit || co_->inbox_bytes >= limits_->inbox_bytes);
    }

    // The peer said something: its idle and ping deadlines start again (not while closing: then only the
    // close deadline counts).
    WEIR_DECL void heard();

    WEIR_DECL void on_event(const detail::ws_event& event);

    WEIR_DECL void peer_gone();

    // No more messages will come: read() returns what is in the inbox, then nothing; callbacks get on_close.
    WEIR_DECL void stop_reading();
    // ---- closing -------------------------------------------------------------------------------------

    WEIR_DECL void begin_close(close_code code, std::string_view reason);

    // Queues our close frame (code 0: none). `urgent` drops queued messages so the close goes out now.
    WEIR_DECL void queue_close(unsigned short code, std::string_view reason, bool urgent);

    // Forgets the messages not yet being written.
    WEIR_DECL void drop_queued() noexcept;

    // Ends the session for good: nothing more is read or written.
    WEIR_DECL void abort();

    WEIR_DECL void finish();

    // From now on every websocket_sender call is a no-op returning false.
    WEIR_DECL void unlink_senders() noexcept;

    // Called on the executor when the server shuts down.
    WEIR_DECL void going_away();

    // ---- sending -------------------------------------------------------------------------------------

    asio::awaitable<bool> send_message(std::uint8_t opcode, websocket_payload payload) {
        while (!close_queued_ && !finished_ && queue_full()) {
            room_wanted_ = true;
            co_await coroutines().room.async_wait(asio::use_awaitable);
        }
        co_return enqueue(opcode, std::move(payload));
    }

    bool queue_full() const noexcept { return queue_full_with(queued_count_, queued_bytes_); }
    // Whether a send queue holding `count` messages of `bytes` bytes is full (queue_full() in that state).
    bool queue_full_with(std::size_t count, std::size_t bytes) const noexcept {
        return count >= limits_->send_queue_capacity || bytes >= limits_->send_queue_bytes;
    }

    // For a topics delivery pass: queues without scheduling a flush; the pass calls flush_in_pass() once it has
    // queued this session's events, while the session's state is still in the cache. `frame`, when the
    // publisher made one, is the whole text frame of `text` (header included, `header` bytes of it), shared by
    // every session that does not compress: such a session queues it as is and lays out no header.
    bool queue_in_pass(const std::shared_ptr<const std::string>& text, const std::shared_ptr<const std::string>& frame,
                       std::uint8_t header) {
        if (queue_full()) return false;
        if (!frame || deflate_) return enqueue(detail::ws_text, websocket_payload(text), false);
        if (close_queued_ || finished_) return false;
        return queue_outgoing({detail::ws_text, websocket_payload(frame), false, header}, false);
    }

    // Writes what the pass queued now. Nothing it does may end the session inside the pass (which walks the
    // topic's member list): with a close queued it leaves the write to the loop, and a failed write is acted on
    // from the loop.
    void flush_in_pass() {
        if (close_queued_) return schedule_flush();
        if (flush_posted_ || writing_ || finished_ || aborted_) return;
        flush(true);
    }

    // For a topics delivery pass that writes a run of publisher-made frames before queueing them (see
    // websocket_topic_subscriber::write_run()): true while nothing waits to be written or is being written, so
    // they go after everything sent before, and they go as they are (no compression).
    bool writes_unqueued() const noexcept {
        return !send_ && queued_count_ == 0 && !writing_ && !flush_posted_ && !close_queued_ && !finished_ &&
               !aborted_ && !deflate_;
    }

    // Writes those frames' bytes (when writes_unqueued()); returns how many the socket took: 0 if it took none or
    // the write failed (the pass then queues them and flushes as usual, which meets the same error or full socket).
    template <class ConstBufferSequence>
    std::size_t write_unqueued(const ConstBufferSequence& buffers) {
        asio::error_code ec;
        std::size_t n = stream_.write_some(buffers, ec);
        if (ec) return 0;
        if (link_) link_->count_written(n);
        return n;
    }

    // The socket took only the first n bytes of those frames, which the pass has queued since: the rest goes as
    // the socket drains, as if flush() had written them.
    void unqueued_partly_written(std::size_t n) {
        gather(); // the frames just queued, laid out as they were offered
        wait_to_write_rest(n);
    }

    bool enqueue(std::uint8_t opcode, websocket_payload payload, bool flush_soon = true) {
        if (close_queued_ || finished_) return false;
        // Compressed as it is queued, so messages take their context in the order they are sent, and the
        // send budget counts the bytes that will be written.
        bool compressed = false;
        if (deflate_ && deflate_->compresses(payload.size())) {
            if (payload.shared_) payload = websocket_payload(deflate_->compress_shared(payload.shared_));
            else payload = websocket_payload(deflate_->compress(payload.view()));
            compressed = true;
        }
        return queue_outgoing({opcode, std::move(payload), compressed}, flush_soon);
    }

    // Counts a message into the send budget and queues it.
    bool queue_outgoing(outgoing o, bool flush_soon) {
        ++queued_count_;
        queued_bytes_ += o.message_size();
        sending().outbox.push_back(std::move(o));
        if (flush_soon) schedule_flush();
        return true;
    }

    // From websocket_sender, on the executor.
    void enqueue_from_elsewhere(std::uint8_t opcode, websocket_payload payload) {
        if (close_queued_ || finished_) return;
        if (queue_full()) {
            if (limits_->on_full == websocket_full_queue_policy::drop_message) return;
            return fail_send_queue();
        }
        enqueue(opcode, std::move(payload));
    }

    // A sender from another thread overran the send budget (websocket_full_queue_policy::close_session).
    void fail_send_queue() {
        if (close_queued_ || finished_) return;
        more().status = {close_code::policy_violation, "send queue full", false};
        queue_close(1008, "send queue full", true);
    }

    // Writes are gathered: whatever was queued while the last write ran goes out in one system call.
    void schedule_flush() {
        if (flush_posted_ || writing_ || finished_) return;
        if (advancing_) {
            flush_wanted_ = true; // advance() flushes when its pass ends
            return;
        }
        flush_posted_ = true;
        asio::post(stream_.get_executor(), [self = shared_from_this()] {
            self->flush_posted_ = false;
            self->flush();
        });
    }

    void flush(bool in_pass = false) {
        while (!writing_ && !finished_ && !aborted_ && !close_sent_) {
            if (!gather()) return release_send_state(); // all written
            // The stream is non-blocking: try at once, wait for writability only for what did not fit.
            asio::error_code ec;
            std::size_t n = stream_.write_some(send_->buffers, ec);
            if (ec == asio::error::would_block) ec = {}, n = 0;
            if (ec && in_pass) {
                // The batch stays queued; ending the session waits for the loop (see flush_in_pass()).
                asio::post(stream_.get_executor(), [self = shared_from_this()] { self->write_failed(); });
                return;
            }
            if (ec) return write_failed();
            if (link_) link_->count_written(n);
            if (n == send_->batch_bytes) {
                written();
                continue;
            }
            return wait_to_write_rest(n);
        }
    }

    // A write took the first n bytes of the batch: the rest goes as the socket drains, within the write deadline.
    void wait_to_write_rest(std::size_t n) {
        consume(n);
        send_->write_left = send_->batch_bytes - n;
        writing_ = true;
        heard_while_writing_ = false;
        if (limits_->idle_timeout.count() > 0) timeout_deadline_.arm(loop_.deadlines(), limits_->idle_timeout);
        wait_writable();
    }

    // The rest of a batch the socket did not take: written as the socket drains.
    void wait_writable() {
        stream_.async_wait_writable([self = shared_from_this()](asio::error_code ec) {
            if (self->finished_) {
                self->writing_ = false;
                return;
            }
            std::size_t n = 0;
            if (!ec) {
                n = self->stream_.write_some(self->send_->buffers, ec);
                if (ec == asio::error::would_block) ec = {}, n = 0;
            }
            if (!ec && self->link_) self->link_->count_written(n);
            if (!ec && n < self->send_->write_left) {
                self->consume(n);
                self->send_->write_left -= n;
                return self->wait_writable();
            }
            self->writing_ = false;
            self->write_done_waiting();
            if (ec) return self->write_failed();
            self->written();
            self->flush();
        });
    }

    // Takes what goes out next (control frames first, then messages, nothing after a close) and lays out
    // its buffers. False if there is nothing to write.
    bool gather() {
        if (!send_) return false;
        auto& outbox = send_->outbox;
        auto& control = send_->control;
        auto& batch = send_->batch;
        auto& scratch = send_->scratch;
        batch.clear();
        while (!control.empty()) {
            batch.push_back(std::move(control.front()));
            control.pop_front();
        }
        // Messages are written from where they wait in the outbox, and leave it once written.
        std::size_t messages = 0;
        for (auto it = outbox.begin(); it != outbox.end() && messages < batch_limit; ++it) {
            ++messages;
            if (it->opcode == detail::ws_close) break; // nothing follows a close
        }
        send_->batch_messages = messages;
        if (batch.empty() && messages == 0) return false;
        // Headers, and payloads small enough to copy, share one contiguous scratch buffer: a batch of small
        // messages is one iovec. Large payloads are written from where they are, and so is a lone frame made
        // by a publisher.
        scratch.clear();
        send_->segments.clear();
        auto lay_out = [&](const outgoing& o) {
            auto payload = o.payload.view();
            if (o.framed) {
                if (batch.empty() && messages == 1) return add_segment(payload.data(), 0, payload.size());
                std::size_t at = scratch.size();
                scratch.append(payload);
                return add_segment(nullptr, at, payload.size());
            }
            char header[10];
            std::size_t h = detail::write_ws_frame_header(header, o.opcode, payload.size());
            if (o.compressed) header[0] = static_cast<char>(header[0] | 0x40); // RSV1: permessage-deflate
            std::size_t at = scratch.size();
            scratch.append(header, h);
            if (payload.size() <= small_payload) {
                scratch.append(payload);
                add_segment(nullptr, at, scratch.size() - at);
            } else {
                add_segment(nullptr, at, h);
                add_segment(payload.data(), 0, payload.size());
            }
        };
        for (auto& o : batch) lay_out(o);
        auto it = outbox.begin();
        for (std::size_t i = 0; i < messages; ++i, ++it) lay_out(*it);
        send_->buffers.clear();
        send_->batch_bytes = 0;
        for (auto& s : send_->segments) {
            const char* p = s.data ? s.data : scratch.data() + s.offset;
            send_->buffers.emplace_back(p, s.size);
            send_->batch_bytes += s.size;
        }
        return true;
    }

    // Gives the send queue and batch back to the loop once nothing waits to be written: a quiet session
    // holds none (not while a write uses them).
    void release_send_state() noexcept {
        if (!send_ || writing_ || !send_->outbox.empty() || !send_->control.empty()) return;
        send_->trim();
        detail::ws_spares<send_state>::of(loop_).give(std::move(send_));
    }

    send_state& sending() {
        if (!send_) send_ = detail::ws_spares<send_state>::of(loop_).take();
        return *send_;
    }

    void add_segment(const char* data, std::size_t offset, std::size_t size) {
        auto& segments = send_->segments;
        if (!data && !segments.empty() && !segments.back().data &&
            segments.back().offset + segments.back().size == offset) {
            segments.back().size += size; // adjacent in scratch: one buffer
            return;
        }
        segments.push_back({data, offset, size});
    }

    // Drops the first n written bytes from the batch's buffers.
    void consume(std::size_t n) {
        auto& buffers = send_->buffers;
        std::size_t i = 0;
        while (i < buffers.size() && n >= buffers[i].size()) n -= buffers[i++].size();
        buffers.erase(buffers.begin(), buffers.begin() + static_cast<std::ptrdiff_t>(i));
        if (!buffers.empty() && n > 0) buffers.front() += n;
    }

    void written() {
        auto& batch = send_->batch;
        for (auto& o : batch)
            if (o.opcode == detail::ws_close) close_sent_ = true;
        batch.clear();
        auto& outbox = send_->outbox;
        for (; send_->batch_messages > 0; --send_->batch_messages) {
            auto& o = outbox.front();
            if (o.opcode == detail::ws_close) close_sent_ = true;
            else if (o.opcode == detail::ws_text || o.opcode == detail::ws_binary) {
                --queued_count_;
                queued_bytes_ -= o.message_size();
                auto& bytes = o.payload.owned_;
                if (bytes.capacity() >= direct_threshold && bytes.capacity() <= direct_limit)
                    reader_.recycle(std::move(bytes));
                else if (!bytes.empty())
                    std::string().swap(bytes); // popped entries stay in place a while: keep no payload there
                o.payload.shared_.reset();
            }
            outbox.pop_front();
        }
        if (close_sent_) outbox.clear();
        if (room_wanted_) { // else no coroutine waits, and its state stays out of the cache
            room_wanted_ = false;
            co_->room.notify_all();
        }
        if (close_sent_) advance(); // the closing handshake goes on
    }

    // A write that waited for the peer is done: the timeout entry becomes the idle deadline again.
    void write_done_waiting() {
        if (close_queued_ || finished_) timeout_deadline_.cancel();
        else if (heard_while_writing_ && limits_->idle_timeout.count() > 0)
            timeout_deadline_.arm(loop_.deadlines(), limits_->idle_timeout);
    }

    void write_failed() {
        if (!close_queued_) more().status = {close_code::abnormal_closure, {}, true};
        abort();
    }

    // ---- deadlines -----------------------------------------------------------------------------------

    // Deadlines are entries in the event loop's sweep (one timer per loop): an idle session holds no timer
    // and wakes only when one of its deadlines passes. Each is re-armed with its own fixed duration, so the
    // sweep's per-duration lists stay sorted.
    template <void (websocket_connection::*Expired)()>
    static void on_deadline(void* context) {
        auto self = static_cast<websocket_connection*>(context)->shared_from_this(); // may end the session
        (self.get()->*Expired)();
    }

    //
    // An idle session holds two entries rather than one per deadline:
    // - the timeout entry (idle_timeout) is the idle deadline (the peer said nothing for that long) and the
    //   write deadline (a write waited that long for the peer to read). While a write waits, it is the write
    //   deadline: what the peer says then does not move it, and once the write is done the idle deadline
    //   starts again if the peer spoke meanwhile (else it stays where the write put it, a little later than
    //   the peer's last word);
    // - the phase entry is the ping deadline while the session is open, the close deadline while it closes,
    //   and the handler's grace once it has ended: never two at once.
    void cancel_deadlines() noexcept {
        timeout_deadline_.cancel();
        phase_deadline_.cancel();
    }

    WEIR_DECL void timeout_expired();

    WEIR_DECL void phase_expired();

    // The peer sent nothing, not even a pong, for idle_timeout.
    WEIR_DECL void idle_expired();

    // Quiet for ping_interval: ping (one at most waits), and again after another interval of quiet.
    WEIR_DECL void ping_due();

    // The closing handshake took too long.
    WEIR_DECL void close_expired();

    // A write waited idle_timeout for the peer to read.
    WEIR_DECL void write_expired();

    // The handler's grace after the session ended: run() looks at the deadline when woken.
    WEIR_DECL void grace_expired();

    // ---- state ---------------------------------------------------------------------------------------

    weir::transport& stream_; // the connection's; it outlives the session
    std::shared_ptr<const detail::ws_limits> limits_; // shared with the loop's other sessions
    upgraded_connection* link_ = nullptr;
    std::shared_ptr<const websocket_callbacks> callbacks_; // or callbacks, until on_close
    upgrade_done done_;                                    // called once the session and its handler ended

    // Reading.
    std::unique_ptr<detail::ws_deflate_codec> deflate_; // permessage-deflate, when agreed
    detail::ws_frame_reader reader_;
    unsigned reads_without_wait_ = 0;
    std::size_t direct_window_ = direct_threshold * 4;

    // Writing.
    std::size_t queued_count_ = 0, queued_bytes_ = 0;
    std::unique_ptr<send_state> send_;

    // Waiting.
    // What only coroutines use: made when a handler starts or a coroutine first waits, so that a session run
    // by callbacks never holds it. Kept until the session is destroyed (a coroutine may wait on it).
    struct coroutine_state {
        websocket_handler handler;     // a coroutine handler, kept while it may run
        asio::cancellation_signal cancel;
        detail::ws_notifier readable;  // the handler's read() and close()
        detail::ws_notifier room;      // the handler's send()
        detail::ws_fifo<websocket_message> inbox;
        std::size_t inbox_bytes = 0;
    };
    std::unique_ptr<coroutine_state> co_;
    coroutine_state& coroutines() {
        if (!co_) co_ = std::make_unique<coroutine_state>();
        return *co_;
    }
    detail::event_loop& loop_; // its receive buffer and deadline sweep (deadlines())
    // Two entries serve the five deadlines (see "deadlines" above).
    detail::deadline timeout_deadline_{&on_deadline<&websocket_connection::timeout_expired>, this};
    detail::deadline phase_deadline_{&on_deadline<&websocket_connection::phase_expired>, this};

    // What many sessions never need while they run, made the first time one is: so an idle session holds a
    // pointer rather than these.
    struct extras {
        std::string subprotocol;
        websocket_close_status status;
        std::string in; // bytes kept between reads: the handshake's leftover, or what a full inbox left unread
        std::size_t in_pos = 0;
        std::shared_ptr<detail::ws_sender_link> sender_link; // made by the first sender()
        std::exception_ptr handler_error;
    };
    std::unique_ptr<extras> more_;
    extras& more() {
        if (!more_) more_ = std::make_unique<extras>();
        return *more_;
    }
    bool handler_running_ = false;
    bool reading_frames_ = true;
    bool read_done_ = false;
    bool flush_posted_ = false;
    bool flush_wanted_ = false; // by a step of advance(), which flushes at its end
    bool writing_ = false;
    bool heard_while_writing_ = false; // the peer spoke while a write waited
    bool close_queued_ = false;
    bool close_sent_ = false;
    bool peer_gone_ = false;
    bool aborted_ = false;
    bool finished_ = false;
    bool wait_pending_ = false;  // a readiness wait (or a turn at the back of the loop's queue) will advance()
    bool paused_ = false;        // reading waits for room in the inbox
    bool shutdown_sent_ = false; // our FIN is out
    bool ended_ = false;         // nothing more is read or written; the handler may still run
    bool completed_ = false;     // done_ was called
    bool advancing_ = false, again_ = false;
    bool wake_reader_ = false; // messages came in this pass of advance(): a read() waiting resumes when it ends
    bool drained_ = false; // the last read found fewer bytes than it had room for
    bool room_wanted_ = false; // a coroutine's send() waits for room in the send queue
};

} // namespace weir

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/websocket_connection.ipp>
#endif
