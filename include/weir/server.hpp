#pragma once

#include <weir/detail/config.hpp>
#include <weir/detail/connection.hpp>
#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/server_options.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

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
// graceful shutdown and its timers. server<App> adds the application and makes its connections.
class server_core {
public:
    WEIR_DECL explicit server_core(server_options options);
    server_core(const server_core&) = delete;
    server_core& operator=(const server_core&) = delete;
    WEIR_DECL virtual ~server_core();

    WEIR_DECL asio::ip::tcp::endpoint listen();
    WEIR_DECL void run();
    WEIR_DECL void stop();
    WEIR_DECL void reload_tls();
    bool is_secure() const noexcept { return options_.tls != nullptr; }
    std::size_t connection_count() const noexcept { return live_.load(); }

protected:
    // A connection of the application's, not started yet.
    virtual std::shared_ptr<connection_base> make_connection(transport::socket_type socket,
                                                             std::unique_ptr<secure_layer> secure,
                                                             connection_owner& owner) = 0;
    const server_options& options() const noexcept { return options_; }

private:
    // Connections are found by address (a connection knows itself, not its shared_ptr).
    struct by_address {
        using is_transparent = void;
        std::size_t operator()(const connection_base* c) const noexcept { return std::hash<const void*>()(c); }
        std::size_t operator()(const std::shared_ptr<connection_base>& c) const noexcept { return (*this)(c.get()); }
        template <class A, class B>
        bool operator()(const A& a, const B& b) const noexcept {
            return to_pointer(a) == to_pointer(b);
        }
        static const connection_base* to_pointer(const connection_base* c) noexcept { return c; }
        static const connection_base* to_pointer(const std::shared_ptr<connection_base>& c) noexcept {
            return c.get();
        }
    };

    struct worker final : connection_owner {
        explicit worker(server_core& s) : owner(s) {}
        server_core& owner;
        asio::io_context io{1};
        asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
        std::unordered_set<std::shared_ptr<connection_base>, by_address, by_address> connections;

        WEIR_DECL void connection_ended(connection_base& c) override;
    };

    WEIR_DECL asio::awaitable<void> accept_loop();
    WEIR_DECL void start(worker& w, transport::socket_type socket);
    WEIR_DECL void maybe_finish();

    // After shutdown_timeout has cancelled what was left, how long before the loops are stopped regardless.
    static constexpr std::chrono::milliseconds shutdown_grace{1000};

    server_options options_;
    std::vector<std::unique_ptr<worker>> workers_;
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    std::optional<asio::signal_set> signals_;
    std::optional<asio::steady_timer> shutdown_timer_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> live_{0};
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

    // The server core, with the one thing it needs of the application: its connections.
    struct core final : detail::server_core {
        core(App& a, server_options o) : server_core(std::move(o)), app(a) {}
        std::shared_ptr<detail::connection_base> make_connection(transport::socket_type socket,
                                                                 std::unique_ptr<detail::secure_layer> secure,
                                                                 detail::connection_owner& owner) override {
            return std::make_shared<detail::connection<App>>(std::move(socket), std::move(secure), app, options(),
                                                             owner);
        }
        App& app;
    };

public:
    server(App app, server_options options = {}) : app_(std::move(app)), core_(app_, std::move(options)) {}

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
    core core_;
};

template <class App>
server(App, server_options) -> server<App>;
template <class App>
server(App) -> server<App>;

} // namespace weir

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/server.ipp>
#endif
