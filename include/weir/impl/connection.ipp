#pragma once

// The connection core: included by <weir/detail/connection.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION). Only the server core (<weir/impl/server.ipp>) names it.

#include <weir/detail/connection.hpp>
#include <weir/detail/event_loop.hpp>
#include <weir/http/parser.hpp>
#include <weir/server_options.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace weir::detail {

class connection_base;

// Who hears that a connection has ended (the server's worker, which holds it).
class connection_owner {
public:
    // Runs on the connection's executor, once; the owner drops its reference.
    virtual void connection_ended(connection_base& c) = 0;

protected:
    ~connection_owner() = default;
};

// What the server keeps of a live connection, so that a graceful shutdown can reach it.
class connection_base {
public:
    virtual ~connection_base() = default;
    // Starts serving; the owner hears when the connection ends.
    virtual void start() = 0;
    // Runs on the connection's executor.
    virtual void begin_shutdown() = 0;
    // At shutdown_timeout: cancels a running handler (answered 503 when it returns) and closes the rest.
    virtual void force_close() = 0;
    // A moment later: closes whatever is still open, a handler that ignored its cancellation included.
    virtual void close_now() = 0;
};

// Reports through options.error_log, or one line on stderr.
WEIR_DECL void report_error(const server_options& options, std::string_view what);

// Reports through options.error_log, or one line on stderr.
WEIR_DECL void report_error(const server_options& options, std::string_view what);

// One HTTP/1.1 connection, whatever the application (see <weir/detail/connection.hpp>). Requests are handled in
// order, so pipelined responses go out in request order.
class connection_core final : public connection_base, public std::enable_shared_from_this<connection_core> {
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t initial_buffer = 4096;
    // Buffers that grew past this for one large message are freed once emptied. Above the 64 KiB of pipelined
    // responses that may wait in out_, so steady pipelining never reallocates.
    static constexpr std::size_t max_kept_buffer = 128 * 1024;
    // Buffers kept per thread for connections that wake up (see spare_buffers).
    static constexpr std::size_t max_spare_buffers = 64;
    // Write buffers larger than this are freed, not kept as spares, when a connection goes idle.
    static constexpr std::size_t max_kept_out = 16 * 1024;

public:
    // A plain application (app.plain()) is served without a coroutine while requests arrive whole and their
    // responses are written at once (the common case). Anything else (a head split across reads, a body still
    // coming, 100-continue, a parse error, a socket that is full) goes to serve(), which picks up from what is
    // buffered.
    WEIR_DECL connection_core(transport::socket_type socket, std::unique_ptr<secure_layer> secure, app_dispatch& app,
                              const server_options& options, connection_owner& owner);
    // An idle connection is this object and one pending readiness wait: no coroutine, no buffer. A coroutine
    // (serve) runs only from the first readable byte until everything read has been answered; it ends when the
    // connection is idle again.
    WEIR_DECL void start() override;
    WEIR_DECL void begin_shutdown() override;
    WEIR_DECL void force_close() override;
    WEIR_DECL void close_now() override;

    // The services of <weir/detail/connection.hpp>'s namespace core.
    WEIR_DECL void watch_for_hangup();
    WEIR_DECL void stop_watching();
    WEIR_DECL void append_response(const response& r, bool head, bool keep_alive);
    WEIR_DECL void end_head_of_upgrade(std::size_t fields_start);
    std::unique_ptr<running_upgrade_base> committed_; // an upgrade whose head waits in out_

    std::string out_; // waiting to be written

private:
    // What a request's read waits for; each phase has one deadline.
    enum class read_phase { none, idle, head, body };

    WEIR_DECL void wait_for_request();
    WEIR_DECL void on_readable();
    WEIR_DECL void activate();
    WEIR_DECL void finish();
    WEIR_DECL asio::awaitable<void> serve();
    WEIR_DECL void release_idle_buffers();
    WEIR_DECL static void give_back(std::string& b, std::vector<std::string>& spare, std::size_t only_size);
    WEIR_DECL void take_read_buffer();
    WEIR_DECL static void take_spare(std::string& b, std::vector<std::string>& spare);
    WEIR_DECL void close();
    WEIR_DECL void set_deadline(std::chrono::milliseconds d);
    WEIR_DECL void set_deadline_at(clock::time_point t);
    WEIR_DECL void arm_toward(clock::time_point t);
    WEIR_DECL static void on_expiry(void* context);
    std::string_view buffered() const noexcept { return {buffer_.data() + begin_, end_ - begin_}; }
    WEIR_DECL static std::vector<std::string>& spare_buffers();
    WEIR_DECL static std::vector<std::string>& spare_out_buffers();
    WEIR_DECL asio::awaitable<bool> read_more();
    WEIR_DECL asio::awaitable<bool> flush();
    WEIR_DECL asio::awaitable<void> linger_close(bool below_tls = false);
    WEIR_DECL asio::awaitable<bool> handshake();
    WEIR_DECL asio::awaitable<void> answer_error(status code, std::string_view reason);
    WEIR_DECL asio::awaitable<void> serve_requests();
    WEIR_DECL void take_request(http_request& message);
    WEIR_DECL asio::awaitable<void> start_upgrade(std::size_t consumed);
    WEIR_DECL void answer_handler_failure(const http_request& message, const std::exception& e, bool head,
                                          bool keep_alive);
    WEIR_DECL void upgrade_ended(std::exception_ptr e);
    WEIR_DECL static bool contains_connection_close(std::string_view fields) noexcept;
    WEIR_DECL void release_buffers();

public:
    weir::transport transport_;
    bool shutting_down_ = false;
    bool cancelled_ = false; // shutdown_timeout cancelled the running handler

private:
    deadline_sweep& deadlines_;
    deadline expiry_{&connection_core::on_expiry, this};
    const server_options& options_;
    connection_owner& owner_;
    asio::ip::tcp::endpoint remote_;
    std::string buffer_;
    std::size_t begin_ = 0, end_ = 0;
    clock::time_point deadline_{};
    app_dispatch& app_;
    bool handling_ = false;
    upgraded_connection* upgraded_ = nullptr;
    unsigned version_ = 11;  // of the request being answered (10: HTTP/1.0)
    bool idle_ = false;
    bool go_idle_ = false;   // serve() ended because the connection is idle, not closing
    std::unique_ptr<running_upgrade_base> upgrade_; // a committed upgrade's session, while it runs
    bool ended_ = false;
    bool handshaking_ = false;
    bool handshake_done_ = false;
    bool close_after_ = false;
    bool timed_out_ = false;
    bool peer_gone_ = false; // the client went away while a handler ran
    unsigned watch_ = 0;     // which hangup watch is current
    asio::cancellation_signal cancel_;
};

WEIR_DECL void report_error(const server_options& options, std::string_view what) {
    if (options.error_log) options.error_log(what);
    else fmt::print(stderr, "weir: {}\n", what);
}

WEIR_DECL connection_core::connection_core(transport::socket_type socket, std::unique_ptr<secure_layer> secure,
                                           app_dispatch& app, const server_options& options,
                                           connection_owner& owner)
    : transport_(std::move(socket), std::move(secure)),
      deadlines_(event_loop::of(transport_.get_executor().context()).deadlines()), options_(options), owner_(owner),
      app_(app) {}

WEIR_DECL void connection_core::start() {
    remote_ = transport_.remote_endpoint();
    if (transport_.is_secure()) activate(); // the handshake comes first (in serve)
    else wait_for_request();
}

WEIR_DECL void connection_core::begin_shutdown() {
    shutting_down_ = true;
    if (upgraded_) upgraded_->begin_shutdown();
    else if (idle_ || handshaking_) close();
}

WEIR_DECL void connection_core::force_close() {
    if (handling_ && !upgraded_ && !cancelled_) {
        // Cancellation reaches the handler's awaits (timers, sockets, nested coroutines); the socket stays
        // open so the request can still be answered 503.
        cancelled_ = true;
        cancel_.emit(asio::cancellation_type::terminal);
        return;
    }
    close();
}

WEIR_DECL void connection_core::close_now() { close(); }

WEIR_DECL asio::awaitable<bool> plain_app_dispatch::dispatch(connection_core& c, const http_request& message,
                                                             bool head, bool& keep_alive) {
    keep_alive = keep_alive && !core::shutting_down(c);
    answer_plain(c, message, head, keep_alive);
    co_return false;
}

WEIR_DECL void async_app_dispatch::answer_plain(connection_core&, const http_request&, bool, bool) {
    throw std::logic_error("weir: this application is not served as a plain one");
}

// Idle: wait for the next request's first bytes without a coroutine, under the idle timeout.
WEIR_DECL void connection_core::wait_for_request() {
    if (shutting_down_ || !transport_.is_open()) {
        finish();
        return;
    }
    idle_ = true;
    set_deadline(options_.idle_timeout);
    timed_out_ = false;
    transport_.async_wait_readable([self = shared_from_this()](const asio::error_code& ec) {
        self->idle_ = false;
        if (ec || !self->transport_.is_open()) self->finish();
        else self->on_readable();
    });
}

WEIR_DECL void connection_core::on_readable() {
    if (!app_.plain()) {
        activate();
        return;
    }
    take_read_buffer();
    asio::error_code ec;
    std::size_t n = transport_.read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        release_idle_buffers(); // woken for nothing (a TLS record not complete yet, say)
        wait_for_request();
        return;
    }
    if (ec) {
        finish();
        return;
    }
    end_ += n;
    take_spare(out_, spare_out_buffers());
    for (;;) {
        request_parser parser(options_.limits);
        http_request message;
        auto result = parser.parse(buffered(), message);
        if (result.state != parse_result::kind::complete) break;
        take_request(message);
        bool keep_alive = message.keep_alive() && !shutting_down_;
        bool head = message.method() == "HEAD";
        try {
            app_.answer_plain(*this, message, head, keep_alive);
        } catch (const std::exception& e) {
            answer_handler_failure(message, e, head, keep_alive);
        }
        begin_ += result.consumed;
        if (close_after_ || begin_ == end_ || out_.size() > 64 * 1024) break;
    }
    if (!out_.empty()) {
        std::size_t written = transport_.write_some(asio::buffer(out_), ec);
        if (ec == asio::error::would_block) {
            written = 0;
        } else if (ec) {
            finish();
            return;
        }
        if (written < out_.size()) {
            out_.erase(0, written);
            activate(); // serve() writes the rest under the write deadline, then goes on
            return;
        }
        out_.clear();
    }
    if (close_after_) finish();
    else if (begin_ == end_) {
        release_idle_buffers();
        wait_for_request();
    } else {
        activate(); // part of a request: serve() reads the rest under the phase deadlines
    }
}

// Bytes arrived: serve until idle again. Shutdown cancels what the coroutine awaits through cancel_.
WEIR_DECL void connection_core::activate() {
    asio::co_spawn(transport_.get_executor(), serve(),
                   asio::bind_cancellation_slot(cancel_.slot(), [self = shared_from_this()](std::exception_ptr) {
                       if (self->upgrade_) return; // the session finishes the connection when it ends
                       if (std::exchange(self->go_idle_, false)) self->wait_for_request();
                       else self->finish();
                   }));
}

WEIR_DECL void connection_core::finish() {
    if (std::exchange(ended_, true)) return;
    close();
    owner_.connection_ended(*this);
}

WEIR_DECL asio::awaitable<void> connection_core::serve() {
    try {
        if (transport_.is_secure() && !handshake_done_) {
            if (!co_await handshake()) co_return;
            handshake_done_ = true;
        }
        co_await serve_requests();
    } catch (const std::exception& e) {
        go_idle_ = false;
        // A cancelled connection ends with operation_aborted: that is the shutdown or the peer, not an error.
        if (!cancelled_ && !peer_gone_) report_error(options_, fmt::format("connection error: {}", e.what()));
    }
}

// Going idle: the read buffer goes back to the thread's spares, the write buffer to its own.
WEIR_DECL void connection_core::release_idle_buffers() {
    begin_ = end_ = 0;
    give_back(buffer_, spare_buffers(), initial_buffer);
    give_back(out_, spare_out_buffers(), 0);
}

WEIR_DECL void connection_core::give_back(std::string& b, std::vector<std::string>& spare, std::size_t only_size) {
    if (b.capacity() == 0) return;
    if ((only_size == 0 ? b.capacity() <= max_kept_out : b.size() == only_size) &&
        spare.size() < max_spare_buffers) {
        b.clear();
        if (only_size) b.resize(only_size);
        spare.emplace_back();
        spare.back().swap(b);
    } else {
        std::string().swap(b);
    }
}

// A read buffer from the thread's spares, or a new one, if the connection has none.
WEIR_DECL void connection_core::take_read_buffer() {
    if (buffer_.size() != 0) return;
    take_spare(buffer_, spare_buffers());
    if (buffer_.size() == 0) buffer_.resize(initial_buffer);
}

WEIR_DECL void connection_core::take_spare(std::string& b, std::vector<std::string>& spare) {
    if (b.capacity() == 0 && !spare.empty()) {
        b.swap(spare.back());
        spare.pop_back();
    }
}

WEIR_DECL void connection_core::close() {
    transport_.close();
    expiry_.cancel();
}

// The connection's one deadline lives on the loop's sweep (no timer per connection). deadline_ is the truth;
// the sweep entry wakes no later than it. Phase and write deadlines arm the entry with their own duration, so
// arming costs an unlink and an append.
WEIR_DECL void connection_core::set_deadline(std::chrono::milliseconds d) {
    deadline_ = clock::now() + d;
    expiry_.arm(deadlines_, d);
}

// Back to a deadline set earlier (a phase's, after a flush that waited under the write deadline). Later than
// the entry: the entry wakes first and re-arms. Earlier: re-armed toward it now.
WEIR_DECL void connection_core::set_deadline_at(clock::time_point t) {
    deadline_ = t;
    if (!expiry_.armed() || expiry_.expiry() > t) arm_toward(t);
}

// Arms the entry with the largest power-of-two number of milliseconds that does not pass `t`: a handful of
// durations (so of sweep lists) covers any time left, and the deadline is reached in a few wake-ups.
WEIR_DECL void connection_core::arm_toward(clock::time_point t) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(t - clock::now()).count();
    std::int64_t step = 1;
    while (step * 2 <= left) step *= 2;
    expiry_.arm(deadlines_, std::chrono::milliseconds(step));
}

WEIR_DECL void connection_core::on_expiry(void* context) {
    auto& c = *static_cast<connection_core*>(context);
    if (!c.transport_.is_open()) return;
    if (c.handling_) {
        // The application is working on a request; its own writes set a deadline again.
        c.set_deadline(c.options_.idle_timeout);
        return;
    }
    if (c.deadline_ > clock::now()) {
        c.arm_toward(c.deadline_);
        return;
    }
    // First cancel the pending wait so the connection can answer 408; if it is still stuck a second later (a
    // peer that does not read), close the transport.
    if (c.timed_out_) {
        c.close();
        return;
    }
    c.timed_out_ = true;
    c.transport_.cancel();
    c.set_deadline(std::chrono::seconds(1));
}

WEIR_DECL void connection_core::watch_for_hangup() {
    // The TCP socket's readiness, not the transport's: bytes a secure transport read ahead are a pipelined
    // request, not a hangup.
    transport_.lowest_layer().async_wait(
        asio::socket_base::wait_read, [self = shared_from_this(), watch = ++watch_](const asio::error_code& ec) {
            if (ec || watch != self->watch_ || !self->handling_ || self->cancelled_) return;
            char c;
            asio::error_code rec;
            // A peek at the TCP layer: EOF or reset there is a hangup whatever the transport.
            self->transport_.lowest_layer().receive(asio::buffer(&c, 1), asio::socket_base::message_peek, rec);
            if (rec == asio::error::would_block || rec == asio::error::try_again) {
                self->watch_for_hangup();
                return;
            }
            if (!rec) return; // a pipelined request
            self->peer_gone_ = true;
            self->cancel_.emit(asio::cancellation_type::terminal);
        });
}

WEIR_DECL void connection_core::stop_watching() {
    ++watch_;
    transport_.cancel(); // only the readiness wait is pending while a handler runs
}

// Buffers of idle connections wait here, per thread (so per event loop, as a connection stays on one), for the
// next connection that has bytes to read or a response to write: an idle connection holds none, and a busy loop
// does not allocate them per request.
WEIR_DECL std::vector<std::string>& connection_core::spare_buffers() {
    thread_local std::vector<std::string> spare;
    return spare;
}

WEIR_DECL std::vector<std::string>& connection_core::spare_out_buffers() {
    thread_local std::vector<std::string> spare;
    return spare;
}

// Reads more bytes into the buffer, moving or growing it as needed; waits for readability while there is
// nothing to read. Returns false on EOF or error.
WEIR_DECL asio::awaitable<bool> connection_core::read_more() {
    asio::error_code ec;
    take_read_buffer();
    if (end_ == buffer_.size()) {
        if (begin_ > 0) {
            std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        } else {
            buffer_.resize(buffer_.size() * 2);
        }
    }
    for (;;) {
        std::size_t n = transport_.read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            co_await transport_.async_wait_readable(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) co_return false;
            continue;
        }
        if (ec) co_return false;
        end_ += n;
        co_return true;
    }
}

// Writes what is waiting in out_. Most writes fit in the socket buffer and finish at once without suspending;
// only a peer that does not read makes us wait, under the write deadline.
WEIR_DECL asio::awaitable<bool> connection_core::flush() {
    if (out_.empty()) co_return true;
    asio::error_code ec;
    std::size_t n = transport_.write_some(asio::buffer(out_), ec);
    if (ec == asio::error::would_block) {
        n = 0;
        ec = {};
    }
    if (!ec && n < out_.size()) {
        bool handling = std::exchange(handling_, false);
        set_deadline(options_.write_timeout);
        timed_out_ = false;
        while (!ec && n < out_.size()) {
            co_await transport_.async_wait_writable(asio::redirect_error(asio::use_awaitable, ec));
            if (ec) break;
            n += transport_.write_some(asio::buffer(out_.data() + n, out_.size() - n), ec);
            if (ec == asio::error::would_block) ec = {};
        }
        handling_ = handling;
    }
    out_.clear();
    if (out_.capacity() > max_kept_buffer) std::string().swap(out_); // one large response, not for ever
    co_return !ec;
}

// Closes after an error answer without losing it: a close with unread request bytes would make the kernel send
// RST, and the client could lose the response. Stop sending, drain briefly, then close. `below_tls`: the answer
// went out in plain text under a secure transport (plain HTTP to a TLS port), so stop and drain the TCP socket
// itself.
WEIR_DECL asio::awaitable<void> connection_core::linger_close(bool below_tls) {
    asio::error_code ec;
    if (below_tls) transport_.lowest_layer().shutdown(asio::socket_base::shutdown_send, ec);
    else transport_.shutdown_send();
    set_deadline(std::chrono::milliseconds(2000));
    timed_out_ = false;
    char sink[4096];
    std::size_t drained = 0;
    ec = {};
    while (!ec && drained < 256 * 1024 && !timed_out_) {
        drained += below_tls ? transport_.lowest_layer().read_some(asio::buffer(sink), ec)
                             : transport_.read_some(asio::buffer(sink), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again)
            co_await transport_.async_wait_readable(asio::redirect_error(asio::use_awaitable, ec));
    }
}

// A secure transport's handshake, within the header timeout: a client that never sends a ClientHello, or stops
// halfway, is dropped then. A plain HTTP request was answered 400 by the transport: let the answer reach the
// client before closing.
WEIR_DECL asio::awaitable<bool> connection_core::handshake() {
    handshaking_ = true;
    set_deadline(options_.header_timeout);
    timed_out_ = false;
    asio::error_code ec;
    co_await transport_.async_handshake(asio::redirect_error(asio::use_awaitable, ec));
    handshaking_ = false;
    if (!ec) co_return !shutting_down_;
    if (transport_.answered_plain_http()) co_await linger_close(true);
    co_return false;
}

WEIR_DECL asio::awaitable<void> connection_core::answer_error(status code, std::string_view reason) {
    response r(code, reason.empty() ? fmt::format("{}\n", reason_phrase(code))
                                    : fmt::format("{}: {}\n", reason_phrase(code), reason));
    append_response(r, false, false);
    if (co_await flush()) co_await linger_close();
}

// Serves requests until the connection is idle (go_idle_: nothing buffered, everything answered) or must close.
// The parser and the request live here, in the coroutine's frame: an idle connection holds neither.
WEIR_DECL asio::awaitable<void> connection_core::serve_requests() {
    request_parser parser(options_.limits);
    http_request message;
    take_spare(out_, spare_out_buffers());
    bool woken = true; // a readiness wait ended: read before deciding the connection is idle
    for (;;) {
        // Read one request.
        parser.reset();
        bool sent_continue = false;
        parse_result result;
        // Each phase (idle, head, body) has one deadline, set when the phase starts: reads do not extend it, so a
        // client dribbling a byte at a time gets 408 when the phase's time is up (slowloris).
        read_phase phase = read_phase::none;
        clock::time_point phase_deadline{};
        for (;;) {
            result = parser.parse(buffered(), message);
            if (result.state != parse_result::kind::incomplete) break;
            if (std::size_t n = parser.decoded_bytes()) {
                // A chunked body is decoded as it arrives: drop its raw framing, keep the head and the rest.
                char* from = buffer_.data() + begin_ + parser.decoded_offset();
                std::memmove(from, from + n, static_cast<std::size_t>(buffer_.data() + end_ - (from + n)));
                end_ -= n;
                parser.discard_decoded();
            }
            // Nothing more is buffered: send what pipelined responses are waiting before blocking.
            if (!co_await flush()) co_return;
            if (parser.expects_continue() && !sent_continue) {
                sent_continue = true;
                out_ = "HTTP/1.1 100 Continue\r\n\r\n";
                if (!co_await flush()) co_return;
            }
            bool started = end_ > begin_;
            if (!started && (shutting_down_ || close_after_)) co_return;
            if (!started && !woken) {
                // Everything read has been answered: end the coroutine; the connection waits without one.
                release_idle_buffers();
                go_idle_ = true;
                co_return;
            }
            idle_ = !started;
            auto now = !started ? read_phase::idle : parser.head_complete() ? read_phase::body : read_phase::head;
            if (now != phase) {
                phase = now;
                set_deadline(now == read_phase::idle   ? options_.idle_timeout
                             : now == read_phase::body ? options_.body_timeout
                                                       : options_.header_timeout);
                phase_deadline = deadline_;
            } else {
                set_deadline_at(phase_deadline); // again after a flush, which sets the write deadline
            }
            timed_out_ = false;
            woken = false;
            bool ok = co_await read_more();
            idle_ = false;
            if (!ok) {
                if (timed_out_ && end_ > begin_ && transport_.is_open())
                    co_await answer_error(status::request_timeout, "request timeout");
                co_return;
            }
        }
        if (result.state == parse_result::kind::error) {
            co_await answer_error(result.error_status, result.error_reason);
            co_return;
        }
        handling_ = true; // a handler may take its time; writes set their own deadline
        take_request(message);
        bool keep_alive = message.keep_alive();
        bool head = message.method() == "HEAD";
        std::size_t consumed = result.consumed;
        bool upgraded = false;
        try {
            if (app_.plain()) {
                keep_alive = keep_alive && !shutting_down_;
                app_.answer_plain(*this, message, head, keep_alive);
            } else {
                upgraded = co_await app_.dispatch(*this, message, head, keep_alive);
            }
        } catch (const std::exception& e) {
            if (peer_gone_) co_return; // nobody is left to answer
            if (cancelled_) {
                response r(status::service_unavailable, "Service Unavailable: the server is shutting down\n");
                append_response(r, head, false);
            } else {
                answer_handler_failure(message, e, head, keep_alive && !shutting_down_);
            }
        }
        if (cancelled_) co_await asio::this_coro::reset_cancellation_state();
        handling_ = false;
        if (upgraded) {
            co_await start_upgrade(consumed);
            co_return;
        }
        begin_ += consumed;
        if (begin_ == end_) {
            begin_ = end_ = 0;
            if (buffer_.size() > max_kept_buffer) std::string().swap(buffer_); // read_more allocates again
        }
        if (!keep_alive || close_after_) {
            co_await flush();
            co_return;
        }
        // Many pipelined responses are written together; cap what waits in memory.
        if (out_.size() > 64 * 1024 && !co_await flush()) co_return;
    }
}

// A parsed request is about to be handled: what the connection knows goes into it.
WEIR_DECL void connection_core::take_request(http_request& message) {
    version_ = message.version();
    message.remote_ = remote_;
    message.secure_ = transport_.is_secure();
}

// A handler threw: report it and answer 500.
WEIR_DECL void connection_core::answer_handler_failure(const http_request& message, const std::exception& e,
                                                       bool head, bool keep_alive) {
    report_error(options_, fmt::format("{} {}: {}", message.method(), message.target(), e.what()));
    append_response(response(status::internal_server_error, "Internal Server Error\n"), head, keep_alive);
}

WEIR_DECL void connection_core::append_response(const response& r, bool head, bool keep_alive) {
    append_head_start(out_, r.status(), r.headers());
    bool no_body = forbids_body(r.status());
    if (!no_body) {
        append(out_, "Content-Length: ");
        append_number(out_, r.body().size());
        append(out_, "\r\n");
    }
    if (!keep_alive || r.closes_connection()) {
        append(out_, "Connection: close\r\n");
        close_after_ = true;
    } else if (version_ == 10) {
        append(out_, "Connection: keep-alive\r\n");
    }
    append(out_, "\r\n");
    if (!head && !no_body) append(out_, r.body());
}

WEIR_DECL void connection_core::end_head_of_upgrade(std::size_t fields_start) {
    // The GET would have handed the connection to the session; the HEAD's answer ends it.
    if (!contains_connection_close(std::string_view(out_).substr(fields_start)))
        append(out_, "Connection: close\r\n");
    append(out_, "\r\n");
    close_after_ = true;
}

// The head of a committed upgrade is in out_: write it and give the connection to the session. The session runs
// on its own, and the HTTP side's coroutines (serve) end: a stream or session may live for hours, so the
// connection keeps only what the session uses.
WEIR_DECL asio::awaitable<void> connection_core::start_upgrade(std::size_t consumed) {
    auto running = std::move(committed_);
    if (!co_await flush()) co_return;
    running->link.emplace(transport_, std::string(buffered().substr(consumed)));
    running->started = clock::now();
    release_buffers();
    expiry_.cancel(); // the protocol keeps its own timeouts
    auto& session = *running;
    upgrade_ = std::move(running);
    upgraded_ = &*session.link;
    // A shutdown that began while the head was being written must still reach the session.
    if (shutting_down_) upgraded_->begin_shutdown();
    session.start([self = shared_from_this()](std::exception_ptr e) { self->upgrade_ended(std::move(e)); });
}

WEIR_DECL void connection_core::upgrade_ended(std::exception_ptr e) {
    if (e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& error) {
            report_error(options_, fmt::format("upgraded session ended with an error: {}", error.what()));
        } catch (...) {
        }
    }
    upgraded_ = nullptr;
    auto running = std::move(upgrade_);
    try {
        running->ended(upgrade_summary{clock::now() - running->started, running->link->bytes_written()});
    } catch (const std::exception& error) {
        report_error(options_, fmt::format("an on_end callback failed: {}", error.what()));
    }
    finish();
}

WEIR_DECL bool connection_core::contains_connection_close(std::string_view fields) noexcept {
    constexpr std::string_view want = "connection: close\r\n";
    for (std::size_t i = 0; i + want.size() <= fields.size(); ++i)
        if ((i == 0 || fields[i - 1] == '\n') && iequals(fields.substr(i, want.size()), want)) return true;
    return false;
}

WEIR_DECL void connection_core::release_buffers() {
    std::string().swap(buffer_);
    std::string().swap(out_);
    begin_ = end_ = 0;
}

namespace core {

WEIR_DECL void append_response(connection_core& c, const response& r, bool head, bool keep_alive) {
    c.append_response(r, head, keep_alive);
}
WEIR_DECL std::string& output(connection_core& c) noexcept { return c.out_; }
WEIR_DECL weir::transport& transport(connection_core& c) noexcept { return c.transport_; }
WEIR_DECL bool shutting_down(const connection_core& c) noexcept { return c.shutting_down_; }
WEIR_DECL bool cancelled(const connection_core& c) noexcept { return c.cancelled_; }
WEIR_DECL void watch_for_hangup(connection_core& c) { c.watch_for_hangup(); }
WEIR_DECL void stop_watching(connection_core& c) { c.stop_watching(); }
WEIR_DECL void end_head_of_upgrade(connection_core& c, std::size_t fields_start) {
    c.end_head_of_upgrade(fields_start);
}
WEIR_DECL void commit_upgrade(connection_core& c, std::unique_ptr<running_upgrade_base> running) {
    c.committed_ = std::move(running);
}

} // namespace core

} // namespace weir::detail
