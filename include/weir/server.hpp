#pragma once

#include <weir/detail/config.hpp>
#include <weir/detail/connection.hpp>
#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/server_options.hpp>

#include <asio/ip/tcp.hpp>

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace weir {

/// Raises this process's limit on open files (the soft RLIMIT_NOFILE) to the most it may take (the hard
/// limit), and returns the limit now in force (0 where the system has no such limit). Every connection
/// holds one descriptor, and many systems start processes at 1,024: a server that holds many event streams
/// or WebSockets calls this once at start-up, before accepting.
WEIR_DECL std::size_t raise_open_file_limit() noexcept;

/// An application a server can run: callable with the request, returning a reply (or an awaitable of one).
template <class App>
concept application = std::is_invocable_v<App&, const request<>&> &&
                      reply_like<std::invoke_result_t<App&, const request<>&>>;

namespace detail {

// The server, whatever the application: event loops and their threads, the acceptor and accept loop, signals,
// graceful shutdown and its timers (<weir/impl/server.ipp>). server<App> adds the application.
class server_core {
public:
    WEIR_DECL server_core(server_options options, app_dispatch& app);
    server_core(const server_core&) = delete;
    server_core& operator=(const server_core&) = delete;
    WEIR_DECL ~server_core();

    WEIR_DECL asio::ip::tcp::endpoint listen();
    WEIR_DECL void run();
    WEIR_DECL void stop();
    WEIR_DECL void reload_tls();
    WEIR_DECL bool is_secure() const noexcept;
    WEIR_DECL std::size_t connection_count() const noexcept;

private:
    struct state;
    std::unique_ptr<state> state_;
};

} // namespace detail

/// An HTTP/1.1 server running `app` (a pipeline, a router or a handler) on one event loop per thread.
/// The app is shared by every thread: it must be safe to call concurrently.
template <class App>
class server {
    static_assert(std::is_invocable_v<App&, const request<>&>,
                  "weir: a server runs an application callable as app(const weir::request<>& req): a "
                  "weir::pipeline, a weir::router or a handler");
    static_assert(reply_like<std::invoke_result_t<App&, const request<>&>>,
                  "weir: the application must return a reply (weir::response, weir::pending<P>, "
                  "weir::reply<...>) or an asio::awaitable of one");

public:
    server(App app, server_options options = {})
        : app_(std::move(app)), dispatch_(app_), core_(std::move(options), dispatch_) {}

    server(const server&) = delete;
    server& operator=(const server&) = delete;

    ~server() { stop(); }

    /// Binds and listens; returns the local endpoint (with the chosen port when options.port is 0).
    /// Throws std::system_error if the address cannot be bound.
    asio::ip::tcp::endpoint listen() { return core_.listen(); }

    /// Serves until a graceful shutdown (stop(), SIGINT or SIGTERM) has finished. Calls listen() if needed.
    void run() { core_.run(); }

    /// Starts a graceful shutdown: stop accepting, let in-flight requests finish, end streams and sessions
    /// cleanly, close idle connections; after options.shutdown_timeout, cancel the handlers still running
    /// (their requests get 503) and close what is left. Thread-safe. run() returns at most a second after
    /// shutdown_timeout, unless a handler blocks its thread without awaiting.
    void stop() { core_.stop(); }

    /// Reads the TLS certificates and keys again (`options.tls->reload()`): connections accepted from now on use
    /// the new ones, open connections keep theirs. Thread-safe (call it from a SIGHUP handler's thread, say).
    /// Throws weir::tls_error (the certificates in use stay) if they cannot be loaded, std::logic_error if the
    /// server does not serve TLS.
    void reload_tls() { core_.reload_tls(); }

    /// True when the server speaks TLS (server_options::tls is set).
    bool is_secure() const noexcept { return core_.is_secure(); }

    /// The number of open connections (for tests and metrics).
    std::size_t connection_count() const noexcept { return core_.connection_count(); }

private:
    App app_;
    detail::app_dispatcher<App> dispatch_; // what every connection runs the application through
    detail::server_core core_;
};

template <class App>
server(App, server_options) -> server<App>;
template <class App>
server(App) -> server<App>;

} // namespace weir

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/server.ipp>
#endif
