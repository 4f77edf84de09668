#pragma once

// The connection core: included by <weir/detail/connection.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION). Only the server core (<weir/impl/server.ipp>) names it.

#include <weir/detail/connection.hpp>
#include <weir/detail/event_loop.hpp>
#include <weir/http/parser.hpp>
#include <weir/server_options.hpp>

#include <asio/cancellation_signal.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

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
    // A plain application (app.plain()) is answered straight from the readiness callback while requests arrive
    // whole and their responses are written at once (the common case). Anything else (a head split across
    // reads, a body still coming, 100-continue, a parse error, a socket that is full) goes to serve(), which
    // picks up from what is buffered.
    WEIR_DECL connection_core(transport::socket_type socket, std::unique_ptr<secure_layer> secure, app_dispatch& app,
                              const server_options& options, connection_owner& owner);
    // An idle connection is this object and one pending readiness wait: no parser, no buffer. The serving state
    // (work) lives only from the first readable byte until everything read has been answered; it goes when the
    // connection is idle again. Every step runs from a completion handler: no coroutine unless the application
    // is one.
    WEIR_DECL void start() override;
    WEIR_DECL void begin_shutdown() override;
    WEIR_DECL void force_close() override;
    WEIR_DECL void close_now() override;

    // The services of <weir/detail/connection.hpp>'s namespace core.
    WEIR_DECL void watch_for_hangup();
    WEIR_DECL void stop_watching();
    WEIR_DECL void append_response(const response& r, bool head, bool keep_alive);
    WEIR_DECL void end_head_of_upgrade(std::size_t fields_start);
    WEIR_DECL void dispatched(std::exception_ptr e, bool upgraded);
    asio::cancellation_slot cancellation_slot() noexcept { return cancel_.slot(); }
    std::unique_ptr<running_upgrade_base> committed_; // an upgrade whose head waits in out_

    std::string out_; // waiting to be written

private:
    // What a request's read waits for; each phase has one deadline.
    enum class read_phase : unsigned char { none, idle, head, body };
    // Where serve() goes on when an asynchronous step ends; the points where the request loop waits.
    enum class step : unsigned char {
        request,      // a new request begins
        parse,        // parse what is buffered
        flushed,      // waiting responses were written before a read
        continued,    // 100 Continue was written
        read,         // more bytes were read
        handled,      // the application answered
        error_sent,   // an error answer was written: linger, then close
        upgrade_sent, // the head of an upgrade was written
        last_sent,    // the last response was written: close
        batch_sent,   // a batch of pipelined responses was written
    };
    // The state of a connection while it serves (from the first readable byte until it is idle again): the
    // parser, the request, and where the loop stands. An idle connection holds none of it.
    struct work {
        explicit work(const http_limits& limits) noexcept : parser(limits) {}
        request_parser parser;
        http_request message;
        parse_result result{};
        clock::time_point phase_deadline{};
        std::size_t written = 0; // of out_, by a flush that waits for the socket
        step at = step::request;
        read_phase phase = read_phase::none;
        bool ok = true;    // how the last asynchronous step ended
        bool woken = true; // a readiness wait ended: read before deciding the connection is idle
        bool sent_continue = false;
        bool keep_alive = false;
        bool head = false;
        bool upgraded = false;
        bool was_handling = false; // handling_ before a flush that waits
    };

    WEIR_DECL void wait_for_request();
    WEIR_DECL void on_readable();
    WEIR_DECL void activate();
    WEIR_DECL void finish();
    WEIR_DECL void serve();
    WEIR_DECL void resume();
    WEIR_DECL void serve_requests();
    WEIR_DECL void end(bool idle);
    WEIR_DECL bool handle_request();
    WEIR_DECL bool handler_failed(const std::exception& e);
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
    WEIR_DECL static std::vector<request_field>& spare_request_fields();
    WEIR_DECL bool read_more();
    WEIR_DECL bool read_some();
    WEIR_DECL bool flush();
    WEIR_DECL bool write_rest(asio::error_code& ec);
    WEIR_DECL void wait_writable();
    WEIR_DECL void flushed(bool ok);
    WEIR_DECL void linger_close(bool below_tls = false);
    WEIR_DECL void linger(bool below_tls, std::size_t drained);
    WEIR_DECL void handshake();
    WEIR_DECL bool answer_error(status code, std::string_view reason);
    WEIR_DECL void take_request(http_request& message);
    WEIR_DECL void start_upgrade();
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
    std::unique_ptr<running_upgrade_base> upgrade_; // a committed upgrade's session, while it runs
    bool ended_ = false;
    bool handshaking_ = false;
    bool handshake_done_ = false;
    bool close_after_ = false;
    bool timed_out_ = false;
    bool peer_gone_ = false; // the client went away while a handler ran
    unsigned watch_ = 0;     // which hangup watch is current
    asio::cancellation_signal cancel_;
    std::unique_ptr<work> work_; // while serving
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

WEIR_DECL dispatch_result plain_app_dispatch::dispatch(connection_core& c, const http_request& message, bool head,
                                                       bool& keep_alive) {
    keep_alive = keep_alive && !core::shutting_down(c);
    answer_plain(c, message, head, keep_alive);
    return dispatch_result::answered;
}

WEIR_DECL void async_app_dispatch::answer_plain(connection_core&, const http_request&, bool, bool) {
    throw std::logic_error("weir: this application is not served as a plain one");
}

// Idle: wait for the next request's first bytes, under the idle timeout.
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
        // The fields' storage is the thread's, lent for this request: no allocation per request for it.
        struct lent_fields {
            http_request& message;
            std::vector<request_field>& spare;
            lent_fields(http_request& m, std::vector<request_field>& s) : message(m), spare(s) {
                message.fields_.swap(spare);
            }
            ~lent_fields() { spare.swap(message.fields_); }
        } lent(message, spare_request_fields());
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

// Bytes arrived: serve until idle again (or until an upgrade takes the connection, or it closes).
WEIR_DECL void connection_core::activate() {
    work_ = std::make_unique<work>(options_.limits);
    take_spare(out_, spare_out_buffers());
    serve();
}

WEIR_DECL void connection_core::finish() {
    if (std::exchange(ended_, true)) return;
    close();
    owner_.connection_ended(*this);
}

WEIR_DECL void connection_core::serve() {
    if (transport_.is_secure() && !handshake_done_) handshake();
    else resume();
}

// Goes on with the request loop; what the connection's own steps throw ends it.
WEIR_DECL void connection_core::resume() {
    try {
        serve_requests();
    } catch (const std::exception& e) {
        // A cancelled connection ends with operation_aborted: that is the shutdown or the peer, not an error.
        if (!cancelled_ && !peer_gone_) report_error(options_, fmt::format("connection error: {}", e.what()));
        end(false);
    }
}

// Serving ends: the connection waits for its next request (idle), or closes. A running upgrade has taken it.
WEIR_DECL void connection_core::end(bool idle) {
    work_.reset();
    if (upgrade_) return; // the session finishes the connection when it ends
    if (idle) wait_for_request();
    else finish();
}

// Going idle: the read buffer goes back to the thread's spares, the write buffer to its own.
WEIR_DECL void connection_core::release_idle_buffers() {
    begin_ = end_ = 0;
    give_back(buffer_, spare_buffers(), initial_buffer);
    give_back(out_, spare_out_buffers(), 0);
}

// Whether a string holds memory of its own: an empty std::string's capacity is its inline buffer's (15 bytes
// with libstdc++), never 0.
inline bool holds_storage(const std::string& b) noexcept { return b.capacity() > std::string().capacity(); }

WEIR_DECL void connection_core::give_back(std::string& b, std::vector<std::string>& spare, std::size_t only_size) {
    if (!holds_storage(b)) return;
    if ((only_size == 0 ? b.capacity() <= max_kept_out : b.size() == only_size) &&
        spare.size() < max_spare_buffers) {
        // A read buffer keeps its size, so taking it back costs no zeroing of its bytes (which are never read
        // before a read fills them); a write buffer keeps its room.
        if (only_size == 0) b.clear();
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
    if (b.empty() && !holds_storage(b) && !spare.empty()) {
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

WEIR_DECL std::vector<request_field>& connection_core::spare_request_fields() {
    thread_local std::vector<request_field> spare;
    return spare;
}

// Reads more bytes into the buffer, moving or growing it as needed; waits for readability while there is
// nothing to read. True if it finished at once (work_->ok: false on EOF or error); otherwise serve_requests goes
// on when it has.
WEIR_DECL bool connection_core::read_more() {
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
    return read_some();
}

WEIR_DECL bool connection_core::read_some() {
    asio::error_code ec;
    std::size_t n = transport_.read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        transport_.async_wait_readable([self = shared_from_this()](const asio::error_code& e) {
            if (e) {
                self->work_->ok = false;
                self->resume();
            } else if (self->read_some()) {
                self->resume();
            }
        });
        return false;
    }
    if (!ec) end_ += n;
    work_->ok = !ec;
    return true;
}

// Writes what is waiting in out_. Most writes fit in the socket buffer and finish at once; only a peer that does
// not read makes us wait, under the write deadline. True if it finished at once (work_->ok says how); otherwise
// serve_requests goes on when it has.
WEIR_DECL bool connection_core::flush() {
    if (out_.empty()) {
        work_->ok = true;
        return true;
    }
    asio::error_code ec;
    work_->written = 0;
    if (!write_rest(ec)) {
        work_->was_handling = std::exchange(handling_, false);
        set_deadline(options_.write_timeout);
        timed_out_ = false;
        wait_writable();
        return false;
    }
    flushed(!ec);
    return true;
}

WEIR_DECL void connection_core::wait_writable() {
    transport_.async_wait_writable([self = shared_from_this()](asio::error_code ec) {
        if (!ec && !self->write_rest(ec)) {
            self->wait_writable();
            return;
        }
        self->handling_ = self->work_->was_handling;
        self->flushed(!ec);
        self->resume();
    });
}

// Writes what is left of out_ after work_->written. False while some is left and no error stopped it: the
// socket is full (would_block is not an error).
WEIR_DECL bool connection_core::write_rest(asio::error_code& ec) {
    work_->written += transport_.write_some(asio::buffer(out_.data() + work_->written, out_.size() - work_->written),
                                            ec);
    if (ec == asio::error::would_block) ec = {};
    return ec || work_->written == out_.size();
}

WEIR_DECL void connection_core::flushed(bool ok) {
    out_.clear();
    if (out_.capacity() > max_kept_buffer) std::string().swap(out_); // one large response, not for ever
    work_->ok = ok;
}

// Closes after an error answer without losing it: a close with unread request bytes would make the kernel send
// RST, and the client could lose the response. Stop sending, drain briefly, then close. `below_tls`: the answer
// went out in plain text under a secure transport (plain HTTP to a TLS port), so stop and drain the TCP socket
// itself.
WEIR_DECL void connection_core::linger_close(bool below_tls) {
    asio::error_code ec;
    if (below_tls) transport_.lowest_layer().shutdown(asio::socket_base::shutdown_send, ec);
    else transport_.shutdown_send();
    set_deadline(std::chrono::milliseconds(2000));
    timed_out_ = false;
    linger(below_tls, 0);
}

WEIR_DECL void connection_core::linger(bool below_tls, std::size_t drained) {
    char sink[4096];
    asio::error_code ec;
    while (!ec && drained < 256 * 1024 && !timed_out_) {
        drained += below_tls ? transport_.lowest_layer().read_some(asio::buffer(sink), ec)
                             : transport_.read_some(asio::buffer(sink), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            transport_.async_wait_readable([self = shared_from_this(), below_tls, drained](const asio::error_code& e) {
                if (e) self->end(false);
                else self->linger(below_tls, drained);
            });
            return;
        }
    }
    end(false);
}

// A secure transport's handshake, within the header timeout: a client that never sends a ClientHello, or stops
// halfway, is dropped then. A plain HTTP request was answered 400 by the transport: let the answer reach the
// client before closing.
WEIR_DECL void connection_core::handshake() {
    handshaking_ = true;
    set_deadline(options_.header_timeout);
    timed_out_ = false;
    transport_.async_handshake([self = shared_from_this()](const asio::error_code& ec) {
        self->handshaking_ = false;
        if (!ec && !self->shutting_down_) {
            self->handshake_done_ = true;
            self->resume();
        } else if (ec && self->transport_.answered_plain_http()) {
            self->linger_close(true);
        } else {
            self->end(false);
        }
    });
}

// Appends an error answer and starts writing it; the connection closes after it (step::error_sent).
WEIR_DECL bool connection_core::answer_error(status code, std::string_view reason) {
    response r(code, reason.empty() ? fmt::format("{}\n", reason_phrase(code))
                                    : fmt::format("{}: {}\n", reason_phrase(code), reason));
    append_response(r, false, false);
    work_->at = step::error_sent;
    return flush();
}

// Serves requests until the connection is idle (nothing buffered, everything answered) or must close. Each
// step that waits returns; its completion comes back here, and work_->at says where the loop stands.
WEIR_DECL void connection_core::serve_requests() {
    work& w = *work_;
    for (;;) {
        switch (w.at) {
        case step::request:
            // Read one request.
            w.parser.reset();
            w.sent_continue = false;
            // Each phase (idle, head, body) has one deadline, set when the phase starts: reads do not extend
            // it, so a client dribbling a byte at a time gets 408 when the phase's time is up (slowloris).
            w.phase = read_phase::none;
            w.at = step::parse;
            break;
        case step::parse:
            w.result = w.parser.parse(buffered(), w.message);
            if (w.result.state == parse_result::kind::error) {
                if (!answer_error(w.result.error_status, w.result.error_reason)) return;
                break;
            }
            if (w.result.state == parse_result::kind::complete) {
                if (!handle_request()) return;
                break;
            }
            if (std::size_t n = w.parser.decoded_bytes()) {
                // A chunked body is decoded as it arrives: drop its raw framing, keep the head and the rest.
                char* from = buffer_.data() + begin_ + w.parser.decoded_offset();
                std::memmove(from, from + n, static_cast<std::size_t>(buffer_.data() + end_ - (from + n)));
                end_ -= n;
                w.parser.discard_decoded();
            }
            // Nothing more is buffered: send what pipelined responses are waiting before blocking.
            w.at = step::flushed;
            if (!flush()) return;
            break;
        case step::flushed:
            if (!w.ok) return end(false);
            if (w.parser.expects_continue() && !w.sent_continue) {
                w.sent_continue = true;
                out_ = "HTTP/1.1 100 Continue\r\n\r\n";
                w.at = step::continued;
                if (!flush()) return;
                break;
            }
            [[fallthrough]];
        case step::continued: {
            if (!w.ok) return end(false);
            bool started = end_ > begin_;
            if (!started && (shutting_down_ || close_after_)) return end(false);
            if (!started && !w.woken) {
                // Everything read has been answered: the connection waits without its serving state.
                release_idle_buffers();
                return end(true);
            }
            idle_ = !started;
            auto now = !started               ? read_phase::idle
                       : w.parser.head_complete() ? read_phase::body
                                                  : read_phase::head;
            if (now != w.phase) {
                w.phase = now;
                set_deadline(now == read_phase::idle   ? options_.idle_timeout
                             : now == read_phase::body ? options_.body_timeout
                                                       : options_.header_timeout);
                w.phase_deadline = deadline_;
            } else {
                set_deadline_at(w.phase_deadline); // again after a flush, which sets the write deadline
            }
            timed_out_ = false;
            w.woken = false;
            w.at = step::read;
            if (!read_more()) return;
            break;
        }
        case step::read:
            idle_ = false;
            if (!w.ok) {
                if (timed_out_ && end_ > begin_ && transport_.is_open()) {
                    if (!answer_error(status::request_timeout, "request timeout")) return;
                    break;
                }
                return end(false);
            }
            w.at = step::parse;
            break;
        case step::handled:
            handling_ = false;
            if (w.upgraded) {
                w.at = step::upgrade_sent;
                if (!flush()) return;
                break;
            }
            begin_ += w.result.consumed;
            if (begin_ == end_) {
                begin_ = end_ = 0;
                if (buffer_.size() > max_kept_buffer) std::string().swap(buffer_); // read_more allocates again
            }
            if (!w.keep_alive || close_after_) {
                w.at = step::last_sent;
                if (!flush()) return;
                break;
            }
            w.at = step::request;
            // Many pipelined responses are written together; cap what waits in memory.
            if (out_.size() > 64 * 1024) {
                w.at = step::batch_sent;
                if (!flush()) return;
            }
            break;
        case step::batch_sent:
            if (!w.ok) return end(false);
            w.at = step::request;
            break;
        case step::last_sent:
            return end(false);
        case step::error_sent:
            if (w.ok) linger_close();
            else end(false);
            return;
        case step::upgrade_sent:
            if (w.ok) start_upgrade();
            else committed_.reset();
            return end(false);
        }
    }
}

// Runs the application on the parsed request. True if it has answered (work_->at is step::handled); false if a
// coroutine handler runs on (dispatched resumes) or the connection ended.
WEIR_DECL bool connection_core::handle_request() {
    work& w = *work_;
    handling_ = true; // a handler may take its time; writes set their own deadline
    take_request(w.message);
    w.keep_alive = w.message.keep_alive();
    w.head = w.message.method() == "HEAD";
    w.upgraded = false;
    w.at = step::handled;
    try {
        if (app_.plain()) {
            w.keep_alive = w.keep_alive && !shutting_down_;
            app_.answer_plain(*this, w.message, w.head, w.keep_alive);
        } else {
            auto r = app_.dispatch(*this, w.message, w.head, w.keep_alive);
            if (r == dispatch_result::running) return false;
            w.upgraded = r == dispatch_result::upgraded;
        }
    } catch (const std::exception& e) {
        if (!handler_failed(e)) {
            end(false);
            return false;
        }
    }
    return true;
}

// A coroutine handler has ended. Its completion runs inside the coroutine's machinery: go on from a fresh
// handler, so the next request may spawn again through the same cancellation slot.
WEIR_DECL void connection_core::dispatched(std::exception_ptr e, bool upgraded) {
    asio::post(transport_.get_executor(), [self = shared_from_this(), e = std::move(e), upgraded]() {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& error) {
                if (!self->handler_failed(error)) return self->end(false);
            } catch (...) {
                return self->end(false);
            }
        } else {
            self->work_->upgraded = upgraded;
        }
        self->resume();
    });
}

// The handler threw: answer it, unless nobody is left to answer (false: the connection ends).
WEIR_DECL bool connection_core::handler_failed(const std::exception& e) {
    if (peer_gone_) return false;
    work& w = *work_;
    if (cancelled_) {
        response r(status::service_unavailable, "Service Unavailable: the server is shutting down\n");
        append_response(r, w.head, false);
    } else {
        answer_handler_failure(w.message, e, w.head, w.keep_alive && !shutting_down_);
    }
    return true;
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
    constexpr std::string_view length_name = "Content-Length: ", crlf = "\r\n";
    bool no_body = forbids_body(r.status());
    char number[24];
    std::string_view length = no_body ? std::string_view("") : format_number(number, r.body().size());
    std::string_view connection = "";
    if (!keep_alive || r.closes_connection()) {
        connection = "Connection: close\r\n";
        close_after_ = true;
    } else if (version_ == 10) {
        connection = "Connection: keep-alive\r\n";
    }
    std::string_view body = head || no_body ? std::string_view("") : std::string_view(r.body());
    // The whole response is sized and written in one step; a large body is appended after, so that its room
    // is not zeroed before it is copied.
    constexpr std::size_t copied_body = 1024;
    std::size_t tail = (no_body ? 0 : length_name.size() + length.size() + crlf.size()) + connection.size() +
                       crlf.size() + (body.size() <= copied_body ? body.size() : 0);
    char* p = append_head_start(out_, r.status(), r.headers(), tail);
    if (!no_body) {
        p = put(p, length_name);
        p = put(p, length);
        p = put(p, crlf);
    }
    p = put(p, connection);
    p = put(p, crlf);
    if (body.size() <= copied_body) put(p, body);
    else append(out_, body);
}

WEIR_DECL void connection_core::end_head_of_upgrade(std::size_t fields_start) {
    // The GET would have handed the connection to the session; the HEAD's answer ends it.
    if (!contains_connection_close(std::string_view(out_).substr(fields_start)))
        append(out_, "Connection: close\r\n");
    append(out_, "\r\n");
    close_after_ = true;
}

// The head of a committed upgrade has been written: give the connection to the session. The session runs on its
// own, and the HTTP side's serving state goes: a stream or session may live for hours, so the connection keeps
// only what the session uses.
WEIR_DECL void connection_core::start_upgrade() {
    auto running = std::move(committed_);
    running->link.emplace(transport_, std::string(buffered().substr(work_->result.consumed)));
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
WEIR_DECL std::shared_ptr<connection_core> hold(connection_core& c) { return c.shared_from_this(); }
WEIR_DECL asio::cancellation_slot cancellation_slot(connection_core& c) noexcept { return c.cancellation_slot(); }
WEIR_DECL void dispatched(connection_core& c, std::exception_ptr e, bool upgraded) {
    c.dispatched(std::move(e), upgraded);
}

} // namespace core

} // namespace weir::detail
