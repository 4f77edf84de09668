#pragma once

#include <weir/detail/config.hpp>
#include <weir/detail/event_loop.hpp>
#include <weir/detail/serialize.hpp>
#include <weir/http/parser.hpp>
#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/server_options.hpp>
#include <weir/transport.hpp>
#include <weir/upgrade.hpp>

#include <asio/awaitable.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/this_coro.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
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

// A committed upgrade's session: what it needs until it ends.
struct running_upgrade_base {
    running_upgrade_base(weir::transport& t, std::string leftover) : link(t, std::move(leftover)) {}
    virtual ~running_upgrade_base() = default;
    virtual void ended(upgrade_summary summary) = 0;
    upgraded_connection link;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

template <class P>
struct running_upgrade final : running_upgrade_base {
    running_upgrade(pending<P>&& p, weir::transport& t, std::string leftover)
        : running_upgrade_base(t, std::move(leftover)), reply(std::move(p)) {}
    void ended(upgrade_summary summary) override { reply.ended(summary); }
    weir::pending<P> reply;
};

// One HTTP/1.1 connection, whatever the application: reads and parses requests, keeps the deadlines, writes
// and flushes responses, closes lingering after an error answer, watches for hangups and runs the TLS
// handshake. It does not depend on the application type, so it is compiled once (WEIR_SEPARATE_COMPILATION)
// or at least once per unit, not once per application. The application is reached through two virtual
// functions that connection<App> implements: answer_plain (a synchronous application whose replies are always
// plain responses) or dispatch (anything else: a coroutine that runs the application and commits its reply).
// Requests are handled in order, so pipelined responses go out in request order.
class connection_core : public connection_base, public std::enable_shared_from_this<connection_core> {
protected:
    using clock = std::chrono::steady_clock;
    static constexpr std::size_t initial_buffer = 4096;
    // Buffers that grew past this for one large message are freed once emptied. Above the 64 KiB of pipelined
    // responses that may wait in out_, so steady pipelining never reallocates.
    static constexpr std::size_t max_kept_buffer = 128 * 1024;
    // Buffers kept per thread for connections that wake up (see spare_buffers).
    static constexpr std::size_t max_spare_buffers = 64;
    // Write buffers larger than this are freed, not kept as spares, when a connection goes idle.
    static constexpr std::size_t max_kept_out = 16 * 1024;

    // `plain_fast_path`: the application is synchronous and its replies are always plain responses, so it is
    // served through answer_plain, without a coroutine while requests arrive whole and their responses are
    // written at once (the common case). Anything else (a head split across reads, a body still coming,
    // 100-continue, a parse error, a socket that is full) goes to serve(), which picks up from what is buffered.
    WEIR_DECL connection_core(transport::socket_type socket, std::unique_ptr<secure_layer> secure,
                              const server_options& options, connection_owner& owner, bool plain_fast_path);

public:
    // An idle connection is this object and one pending readiness wait: no coroutine, no buffer. A coroutine
    // (serve) runs only from the first readable byte until everything read has been answered; it ends when the
    // connection is idle again.
    WEIR_DECL void start() override;
    WEIR_DECL void begin_shutdown() override;
    WEIR_DECL void force_close() override;
    WEIR_DECL void close_now() override;

protected:
    // The application's part. answer_plain: run a synchronous, plain application on `message` and append its
    // response (append_response); what the application throws is answered 500 by the caller.
    WEIR_DECL virtual void answer_plain(const http_request& message, bool head, bool keep_alive);
    // dispatch: run the application and commit its reply; true if an upgrade took the connection. A shutdown
    // that began meanwhile turns `keep_alive` off.
    WEIR_DECL virtual asio::awaitable<bool> dispatch(const http_request& message, std::size_t consumed, bool head,
                                                     bool& keep_alive);

    // For dispatch: while a coroutine handler runs, a client that goes away (EOF or reset) cancels it: its awaits
    // end with operation_aborted instead of finishing work nobody will read. Bytes of a pipelined request end
    // the watch (they are read after this request). Peeking reads nothing, so the request's views stay valid.
    WEIR_DECL void watch_for_hangup();
    WEIR_DECL void stop_watching();
    // shutdown_timeout cancelled the running handler.
    bool cancelled() const noexcept { return cancelled_; }
    bool shutting_down() const noexcept { return shutting_down_; }

    // Appends a plain response to what is waiting to be written.
    WEIR_DECL void append_response(const response& r, bool head, bool keep_alive);
    // Appends the head of an upgrade that a HEAD request asked for: the head GET would get, then no body, and the
    // connection closes after it. `fields_start`: where the protocol's own fields begin in out_.
    WEIR_DECL void end_head_of_upgrade(std::size_t fields_start);
    // Writes the head of a committed upgrade (in out_) and gives the connection up: the bytes after the request
    // go to `leftover`, the buffers are released, the HTTP deadlines stop. False if the head could not be written.
    WEIR_DECL asio::awaitable<bool> hand_over(std::size_t consumed, std::string& leftover);
    // The session takes the connection from now on; returns what the session calls when it ends.
    WEIR_DECL upgrade_done begin_upgrade(std::unique_ptr<running_upgrade_base> running);

    std::string out_; // waiting to be written

private:
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
    WEIR_DECL void answer_handler_failure(const http_request& message, const std::exception& e, bool head,
                                          bool keep_alive);
    WEIR_DECL void upgrade_ended(std::exception_ptr e);
    WEIR_DECL static bool contains_connection_close(std::string_view fields) noexcept;
    WEIR_DECL void release_buffers();

protected:
    weir::transport transport_;

private:
    deadline_sweep& deadlines_;
    deadline expiry_{&connection_core::on_expiry, this};
    const server_options& options_;
    connection_owner& owner_;
    asio::ip::tcp::endpoint remote_;
    std::string buffer_;
    std::size_t begin_ = 0, end_ = 0;
    clock::time_point deadline_{};
    bool plain_fast_path_;
    bool handling_ = false;
    upgraded_connection* upgraded_ = nullptr;
    unsigned version_ = 11;  // of the request being answered (10: HTTP/1.0)
    bool idle_ = false;
    bool go_idle_ = false;   // serve() ended because the connection is idle, not closing
    std::unique_ptr<running_upgrade_base> upgrade_; // a committed upgrade's session, while it runs
    bool ended_ = false;
    bool handshaking_ = false;
    bool handshake_done_ = false;
    bool shutting_down_ = false;
    bool close_after_ = false;
    bool timed_out_ = false;
    bool cancelled_ = false; // shutdown_timeout cancelled the running handler
    bool peer_gone_ = false; // the client went away while a handler ran
    unsigned watch_ = 0;     // which hangup watch is current
    asio::cancellation_signal cancel_;
};

template <class App>
using app_result_t = decltype(std::declval<App&>()(std::declval<const request<>&>()));

// True for a synchronous application whose replies are always plain responses (see connection_core).
template <class App>
inline constexpr bool serves_plain_v =
    !is_awaitable_v<app_result_t<App>> && std::is_same_v<reply_for_t<app_result_t<App>>, reply<>>;

// The per-application part of a connection: runs the application and commits its reply (the final stage).
template <class App, bool Plain = serves_plain_v<App>>
class connection;

template <class App>
class connection<App, true> final : public connection_core {
public:
    static constexpr bool plain_fast_path = true;

    connection(transport::socket_type socket, std::unique_ptr<secure_layer> secure, App& app,
               const server_options& options, connection_owner& owner)
        : connection_core(std::move(socket), std::move(secure), options, owner, true), app_(app) {}

private:
    void answer_plain(const http_request& message, bool head, bool keep_alive) override {
        reply<> r = app_(request<>(message));
        append_response(*r.template get_if<response>(), head, keep_alive);
    }

    App& app_;
};

template <class App>
class connection<App, false> final : public connection_core {
public:
    static constexpr bool plain_fast_path = false;

    connection(transport::socket_type socket, std::unique_ptr<secure_layer> secure, App& app,
               const server_options& options, connection_owner& owner)
        : connection_core(std::move(socket), std::move(secure), options, owner, false), app_(app) {}

private:
    using reply_type = reply_for_t<app_result_t<App>>;

    asio::awaitable<bool> dispatch(const http_request& message, std::size_t consumed, bool head,
                                   bool& keep_alive) override {
        // The app may return a bare response or pending<P>: commit takes the reply it converts to.
        if constexpr (is_awaitable_v<app_result_t<App>>) {
            watch_for_hangup();
            struct stop_watch {
                connection* c;
                ~stop_watch() { c->stop_watching(); }
            };
            reply_type r = co_await [&]() -> asio::awaitable<reply_type> {
                stop_watch watching{this};
                co_return co_await app_(request<>(message));
            }();
            // A cancelled coroutine throws at every co_await; the handler is done, so answer it.
            if (cancelled()) co_await asio::this_coro::reset_cancellation_state();
            keep_alive = keep_alive && !shutting_down(); // a shutdown may have begun meanwhile
            co_return co_await commit(r, consumed, head, keep_alive);
        } else {
            reply_type r = app_(request<>(message));
            keep_alive = keep_alive && !shutting_down();
            co_return co_await commit(r, consumed, head, keep_alive);
        }
    }

    // The final stage: the only place a reply reaches the socket. Returns true if an upgrade ran.
    template <class... Protocols>
    asio::awaitable<bool> commit(reply<Protocols...>& r, std::size_t consumed, bool head, bool keep_alive) {
        if (auto* plain = r.template get_if<response>()) {
            append_response(*plain, head, keep_alive);
            co_return false;
        }
        bool upgraded = false;
        (co_await commit_pending<Protocols>(r, consumed, head, keep_alive, upgraded), ...);
        co_return upgraded;
    }

    template <class P, class... Protocols>
    asio::awaitable<void> commit_pending(reply<Protocols...>& r, std::size_t consumed, bool head, bool keep_alive,
                                         bool& upgraded) {
        auto* p = r.template get_if<pending<P>>();
        if (!p) co_return;
        // A stage overrode the status: a plain response, and the session never runs.
        if (!p->will_commit() || shutting_down()) {
            response plain = std::move(*p).to_response();
            if (shutting_down() && p->will_commit()) plain.set_status(status::service_unavailable);
            append_response(plain, head, keep_alive);
            co_return;
        }
        P& session = p->session();
        if (head) {
            // HEAD gets the head GET would get, then no body, and the session never runs. Switching protocols
            // (101) answers only the request that asked for it, and no HEAD can: that is a bad request.
            if (to_int(p->status()) < 200) {
                append_response(response(status::bad_request, "a HEAD request cannot switch protocols\n"), head,
                                keep_alive);
                co_return;
            }
            session.prepare_head(p->headers());
            append_head_start(out_, p->status(), p->headers());
            std::size_t fields = out_.size();
            session.write_protocol_fields(out_);
            end_head_of_upgrade(fields);
            co_return;
        }
        upgraded = true;
        session.prepare_head(p->headers());
        append_head_start(out_, p->status(), p->headers());
        session.write_protocol_fields(out_);
        append(out_, "\r\n");
        p->headers() = weir::headers(); // written: a stream or session may live for hours
        std::string leftover;
        if (!co_await hand_over(consumed, leftover)) co_return;
        // The session runs on its own, and the HTTP side's coroutines (serve, commit) end: an open stream or
        // session keeps nothing of the request that started it but this object. A protocol that runs from
        // callbacks keeps no coroutine at all while idle; the others run in a coroutine of their own.
        auto running = std::make_unique<running_upgrade<P>>(std::move(*p), transport_, std::move(leftover));
        auto& state = *running;
        upgrade_done ended = begin_upgrade(std::move(running));
        P& started = state.reply.session();
        if constexpr (callback_protocol<P>) started.start(state.link, std::move(ended));
        else asio::co_spawn(transport_.get_executor(), started.run(state.link), std::move(ended));
    }

    App& app_;
};

} // namespace weir::detail

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/connection.ipp>
#endif
