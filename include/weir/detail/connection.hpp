#pragma once

#include <weir/detail/config.hpp>
#include <weir/detail/serialize.hpp>
#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/transport.hpp>
#include <weir/upgrade.hpp>

#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/this_coro.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

// A connection is two parts. The connection core (connection_core, <weir/impl/connection.ipp>) does not depend
// on the application: it reads and parses requests, keeps the deadlines, writes and flushes responses, closes
// lingering after an error answer, watches for hangups and runs the TLS handshake; it is compiled once
// (WEIR_SEPARATE_COMPILATION) or once per unit, never once per application, and no unit needs its layout. The
// application is reached through one small object per server, app_dispatcher<App>: it runs the application on
// a parsed request and commits the reply (the final stage), through the few core services declared here.

namespace weir::detail {

class connection_core;

// A committed upgrade's session: what it needs until it ends. The connection starts it once the head is written.
struct running_upgrade_base {
    virtual ~running_upgrade_base() = default;
    virtual void ended(upgrade_summary summary) = 0;
    // Starts the session on `link`; the session calls `done` once when it has ended.
    virtual void start(upgrade_done done) = 0;
    std::optional<upgraded_connection> link; // set by the connection after the head is written
    std::chrono::steady_clock::time_point started{};
};

template <class P>
struct running_upgrade final : running_upgrade_base {
    explicit running_upgrade(pending<P>&& p) : reply(std::move(p)) {}
    void ended(upgrade_summary summary) override { reply.ended(summary); }
    void start(upgrade_done done) override {
        // A protocol that runs from callbacks keeps no coroutine at all while idle; the others run in a coroutine
        // of their own.
        P& session = reply.session();
        if constexpr (callback_protocol<P>) session.start(*link, std::move(done));
        else asio::co_spawn(link->transport().get_executor(), session.run(*link), std::move(done));
    }
    weir::pending<P> reply;
};

// What the connection core offers the application's part, for one request.
namespace core {
// Appends a plain response to what waits to be written.
WEIR_DECL void append_response(connection_core& c, const response& r, bool head, bool keep_alive);
// What waits to be written, for a head the final stage writes itself.
WEIR_DECL std::string& output(connection_core& c) noexcept;
WEIR_DECL weir::transport& transport(connection_core& c) noexcept;
// The server has begun to shut down.
WEIR_DECL bool shutting_down(const connection_core& c) noexcept;
// shutdown_timeout cancelled the running handler.
WEIR_DECL bool cancelled(const connection_core& c) noexcept;
// While a coroutine handler runs, a client that goes away (EOF or reset) cancels it: its awaits end with
// operation_aborted instead of finishing work nobody will read. stop_watching ends the watch.
WEIR_DECL void watch_for_hangup(connection_core& c);
WEIR_DECL void stop_watching(connection_core& c);
// Ends the head of an upgrade that a HEAD request asked for: the head GET would get, then no body, and the
// connection closes after it. `fields_start`: where the protocol's own fields begin in output().
WEIR_DECL void end_head_of_upgrade(connection_core& c, std::size_t fields_start);
// The head of a committed upgrade is in output(): once the connection has written it, it gives itself up to the
// session (the bytes after the request become its leftover; the buffers and HTTP deadlines go).
WEIR_DECL void commit_upgrade(connection_core& c, std::unique_ptr<running_upgrade_base> running);
// For a coroutine application: what keeps the connection alive while the handler runs, the slot through which a
// shutdown or a hangup cancels it, and where its end goes (the connection goes on with the next request).
WEIR_DECL std::shared_ptr<connection_core> hold(connection_core& c);
WEIR_DECL asio::cancellation_slot cancellation_slot(connection_core& c) noexcept;
WEIR_DECL void dispatched(connection_core& c, std::exception_ptr e, bool upgraded);
} // namespace core

// How a request's dispatch went: answered (the response waits in output()), an upgrade was committed, or a
// coroutine handler is still running (its end reaches core::dispatched).
enum class dispatch_result : unsigned char { answered, upgraded, running };

// The application's part of every connection of a server: one object per server, shared by its threads.
class app_dispatch {
public:
    // A synchronous application whose replies are always plain responses is served through answer_plain,
    // straight from the readiness callback while requests arrive whole and their responses are written at once
    // (the common case); any other application through dispatch.
    explicit app_dispatch(bool plain) noexcept : plain_(plain) {}
    bool plain() const noexcept { return plain_; }

    // Runs the application on `message` and appends its response; what the application throws is answered 500 by
    // the caller.
    virtual void answer_plain(connection_core& c, const http_request& message, bool head, bool keep_alive) = 0;
    // Runs the application and commits its reply. A synchronous application is done when this returns; a
    // coroutine runs on, and `message` and `keep_alive` must live until it reports to core::dispatched. A
    // shutdown that began meanwhile turns `keep_alive` off.
    virtual dispatch_result dispatch(connection_core& c, const http_request& message, bool head,
                                     bool& keep_alive) = 0;

protected:
    ~app_dispatch() = default;

private:
    bool plain_;
};

// The two kinds of application each use one of the entry points; the other is defined once, here.
class plain_app_dispatch : public app_dispatch {
public:
    plain_app_dispatch() noexcept : app_dispatch(true) {}
    WEIR_DECL dispatch_result dispatch(connection_core& c, const http_request& message, bool head,
                                       bool& keep_alive) override;

protected:
    ~plain_app_dispatch() = default;
};

class async_app_dispatch : public app_dispatch {
public:
    async_app_dispatch() noexcept : app_dispatch(false) {}
    WEIR_DECL void answer_plain(connection_core& c, const http_request& message, bool head, bool keep_alive) override;

protected:
    ~async_app_dispatch() = default;
};

template <class App>
using app_result_t = decltype(std::declval<App&>()(std::declval<const request<>&>()));

// True for a synchronous application whose replies are always plain responses (see app_dispatch).
template <class App>
inline constexpr bool serves_plain_v =
    !is_awaitable_v<app_result_t<App>> && std::is_same_v<reply_for_t<app_result_t<App>>, reply<>>;

// The per-application part: runs the application and commits its reply (the final stage).
template <class App, bool Plain = serves_plain_v<App>>
class app_dispatcher;

template <class App>
class app_dispatcher<App, true> final : public plain_app_dispatch {
public:
    explicit app_dispatcher(App& app) noexcept : app_(app) {}

    void answer_plain(connection_core& c, const http_request& message, bool head, bool keep_alive) override {
        reply<> r = app_(request<>(message));
        core::append_response(c, *r.template get_if<response>(), head, keep_alive);
    }

private:
    App& app_;
};

template <class App>
class app_dispatcher<App, false> final : public async_app_dispatch {
public:
    explicit app_dispatcher(App& app) noexcept : app_(app) {}

    dispatch_result dispatch(connection_core& c, const http_request& message, bool head,
                             bool& keep_alive) override {
        // The app may return a bare response or pending<P>: commit takes the reply it converts to. Only a
        // coroutine application is spawned; the others are answered here, and no awaitable is instantiated.
        if constexpr (is_awaitable_v<app_result_t<App>>) {
            asio::co_spawn(core::transport(c).get_executor(), run(c, message, head, keep_alive),
                           asio::bind_cancellation_slot(core::cancellation_slot(c),
                                                        [self = core::hold(c)](std::exception_ptr e, bool upgraded) {
                                                            core::dispatched(*self, std::move(e), upgraded);
                                                        }));
            return dispatch_result::running;
        } else {
            reply_type r = app_(request<>(message));
            keep_alive = keep_alive && !core::shutting_down(c);
            return commit(c, r, head, keep_alive) ? dispatch_result::upgraded : dispatch_result::answered;
        }
    }

private:
    asio::awaitable<bool> run(connection_core& c, const http_request& message, bool head, bool& keep_alive) {
        core::watch_for_hangup(c);
        struct stop_watch {
            connection_core& c;
            ~stop_watch() { core::stop_watching(c); }
        };
        reply_type r = co_await [&]() -> asio::awaitable<reply_type> {
            stop_watch watching{c};
            co_return co_await app_(request<>(message));
        }();
        // A cancelled coroutine throws at every co_await; the handler is done, so answer it.
        if (core::cancelled(c)) co_await asio::this_coro::reset_cancellation_state();
        keep_alive = keep_alive && !core::shutting_down(c); // a shutdown may have begun meanwhile
        co_return commit(c, r, head, keep_alive);
    }

    using reply_type = reply_for_t<app_result_t<App>>;

    // The final stage: the only place a reply reaches the socket. Returns true if an upgrade was committed.
    template <class... Protocols>
    static bool commit(connection_core& c, reply<Protocols...>& r, bool head, bool keep_alive) {
        if (auto* plain = r.template get_if<response>()) {
            core::append_response(c, *plain, head, keep_alive);
            return false;
        }
        bool upgraded = false;
        (commit_pending<Protocols>(c, r, head, keep_alive, upgraded), ...);
        return upgraded;
    }

    template <class P, class... Protocols>
    static void commit_pending(connection_core& c, reply<Protocols...>& r, bool head, bool keep_alive,
                               bool& upgraded) {
        auto* p = r.template get_if<pending<P>>();
        if (!p) return;
        // A stage overrode the status: a plain response, and the session never runs.
        bool shutting_down = core::shutting_down(c);
        if (!p->will_commit() || shutting_down) {
            response plain = std::move(*p).to_response();
            if (shutting_down && p->will_commit()) plain.set_status(status::service_unavailable);
            core::append_response(c, plain, head, keep_alive);
            return;
        }
        P& session = p->session();
        std::string& out = core::output(c);
        if (head) {
            // HEAD gets the head GET would get, then no body, and the session never runs. Switching protocols
            // (101) answers only the request that asked for it, and no HEAD can: that is a bad request.
            if (to_int(p->status()) < 200) {
                core::append_response(c, response(status::bad_request, "a HEAD request cannot switch protocols\n"),
                                      head, keep_alive);
                return;
            }
            session.prepare_head(p->headers());
            append_head_start(out, p->status(), p->headers());
            std::size_t fields = out.size();
            session.write_protocol_fields(out);
            core::end_head_of_upgrade(c, fields);
            return;
        }
        upgraded = true;
        session.prepare_head(p->headers());
        append_head_start(out, p->status(), p->headers());
        session.write_protocol_fields(out);
        append(out, "\r\n");
        p->headers() = weir::headers(); // written: a stream or session may live for hours
        // The session runs on its own once the head is written, and the HTTP side's serving state goes: an open
        // stream or session keeps nothing of the request that started it but the connection.
        core::commit_upgrade(c, std::make_unique<running_upgrade<P>>(std::move(*p)));
    }

    App& app_;
};

} // namespace weir::detail

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/connection.ipp>
#endif
