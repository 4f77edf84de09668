#pragma once

#include <weir/detail/connection.hpp>
#include <weir/http/request.hpp>
#include <weir/reply.hpp>
#include <weir/server_options.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#endif

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace weir {

/// Raises this process's limit on open files (the soft RLIMIT_NOFILE) to the most it may take (the hard
/// limit), and returns the limit now in force (0 where the system has no such limit). Every connection
/// holds one descriptor, and many systems start processes at 1,024: a server that holds many event streams
/// or WebSockets calls this once at start-up, before accepting.
inline std::size_t raise_open_file_limit() noexcept {
#if defined(__unix__) || defined(__APPLE__)
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return static_cast<std::size_t>(limit.rlim_cur);
#else
    return 0;
#endif
}

/// An application a server can run: callable with the request, returning a reply (or an awaitable of one).
template <class App>
concept application = std::is_invocable_v<App&, const request<>&> &&
                      reply_like<std::invoke_result_t<App&, const request<>&>>;

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

    // Connections are found by address (a connection knows itself, not its shared_ptr).
    struct by_address {
        using is_transparent = void;
        std::size_t operator()(const detail::connection_base* c) const noexcept {
            return std::hash<const void*>()(c);
        }
        std::size_t operator()(const std::shared_ptr<detail::connection_base>& c) const noexcept {
            return (*this)(c.get());
        }
        template <class A, class B>
        bool operator()(const A& a, const B& b) const noexcept {
            return to_pointer(a) == to_pointer(b);
        }
        static const detail::connection_base* to_pointer(const detail::connection_base* c) noexcept { return c; }
        static const detail::connection_base* to_pointer(const std::shared_ptr<detail::connection_base>& c) noexcept {
            return c.get();
        }
    };

    struct worker final : detail::connection_owner {
        explicit worker(server& s) : owner(s) {}
        server& owner;
        asio::io_context io{1};
        asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
        std::unordered_set<std::shared_ptr<detail::connection_base>, by_address, by_address> connections;

        void connection_ended(detail::connection_base& c) override {
            if (auto it = connections.find(&c); it != connections.end()) connections.erase(it);
            --owner.live_;
            owner.maybe_finish();
        }
    };

public:
    server(App app, server_options options = {}) : app_(std::move(app)), options_(std::move(options)) {
        if (options_.threads == 0) options_.threads = 1;
        for (unsigned i = 0; i < options_.threads; ++i) workers_.push_back(std::make_unique<worker>(*this));
    }

    server(const server&) = delete;
    server& operator=(const server&) = delete;

    ~server() { stop(); }

    /// Binds and listens; returns the local endpoint (with the chosen port when options.port is 0).
    /// Throws std::system_error if the address cannot be bound.
    asio::ip::tcp::endpoint listen() {
        auto& io = workers_.front()->io;
        asio::ip::tcp::endpoint ep(asio::ip::make_address(options_.bind), options_.port);
        acceptor_.emplace(io);
        acceptor_->open(ep.protocol());
        acceptor_->set_option(asio::socket_base::reuse_address(true));
        acceptor_->bind(ep);
        acceptor_->listen(asio::socket_base::max_listen_connections);
        return acceptor_->local_endpoint();
    }

    /// Serves until a graceful shutdown (stop(), SIGINT or SIGTERM) has finished. Calls listen() if needed.
    void run() {
        if (!acceptor_) listen();
        auto& io0 = workers_.front()->io;
        if (options_.handle_signals) {
            signals_.emplace(io0, SIGINT, SIGTERM);
            signals_->async_wait([this](const asio::error_code& ec, int) {
                if (!ec) stop();
            });
        }
        asio::co_spawn(io0, accept_loop(), asio::detached);
        std::vector<std::thread> threads;
        for (std::size_t i = 1; i < workers_.size(); ++i)
            threads.emplace_back([w = workers_[i].get()] { w->io.run(); });
        io0.run();
        for (auto& t : threads) t.join();
    }

    /// Starts a graceful shutdown: stop accepting, let in-flight requests finish, end streams and sessions
    /// cleanly, close idle connections; after options.shutdown_timeout, cancel the handlers still running
    /// (their requests get 503) and close what is left. Thread-safe. run() returns at most `shutdown_grace`
    /// after shutdown_timeout, unless a handler blocks its thread without awaiting.
    void stop() {
        if (stopping_.exchange(true)) return;
        asio::post(workers_.front()->io, [this] {
            asio::error_code ec;
            if (acceptor_) acceptor_->close(ec);
            if (signals_) signals_->cancel(ec);
            shutdown_timer_.emplace(workers_.front()->io);
            shutdown_timer_->expires_after(options_.shutdown_timeout);
            shutdown_timer_->async_wait([this](const asio::error_code& e) {
                if (e) return;
                for (auto& w : workers_)
                    asio::post(w->io, [w = w.get()] {
                        auto copy = w->connections;
                        for (auto& c : copy) c->force_close();
                    });
                // A handler that ignores its cancellation gets a moment; then its socket is closed and the loops
                // stop, so run() returns on time whatever is left.
                shutdown_timer_->expires_after(shutdown_grace);
                shutdown_timer_->async_wait([this](const asio::error_code& e2) {
                    if (e2) return;
                    for (auto& w : workers_)
                        asio::post(w->io, [w = w.get()] {
                            auto copy = w->connections;
                            for (auto& c : copy) c->close_now();
                            w->io.stop();
                        });
                });
            });
            for (auto& w : workers_)
                asio::post(w->io, [this, w = w.get()] {
                    auto copy = w->connections;
                    for (auto& c : copy) c->begin_shutdown();
                    w->guard.reset();
                    maybe_finish();
                });
        });
    }

    /// Reads the TLS certificates and keys again (`options.tls->reload()`): connections accepted from now on use
    /// the new ones, open connections keep theirs. Thread-safe (call it from a SIGHUP handler's thread, say).
    /// Throws weir::tls_error (the certificates in use stay) if they cannot be loaded, std::logic_error if the
    /// server does not serve TLS.
    void reload_tls() {
        if (!options_.tls) throw std::logic_error("weir: reload_tls() on a server without TLS (server_options::tls)");
        options_.tls->reload();
    }

    /// True when the server speaks TLS (server_options::tls is set).
    bool is_secure() const noexcept { return options_.tls != nullptr; }

    /// The number of open connections (for tests and metrics).
    std::size_t connection_count() const noexcept { return live_.load(); }

private:
    asio::awaitable<void> accept_loop() {
        std::size_t next = 0;
        while (acceptor_ && acceptor_->is_open()) {
            worker& w = *workers_[next];
            next = (next + 1) % workers_.size();
            asio::error_code ec;
            transport::socket_type socket(w.io);
            co_await acceptor_->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
                if (ec == asio::error::operation_aborted || stopping_) co_return;
                // Out of descriptors or a connection reset before accept: keep serving the others.
                asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(10));
                co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                continue;
            }
            if (live_.load() >= options_.max_connections) {
                socket.close(ec);
                continue;
            }
            if (options_.tcp_nodelay) socket.set_option(asio::ip::tcp::no_delay(true), ec);
            ++live_;
            asio::post(w.io, [this, &w, s = std::move(socket)]() mutable { start(w, std::move(s)); });
        }
    }

    void start(worker& w, transport::socket_type socket) {
        std::unique_ptr<detail::secure_layer> secure;
        if (options_.tls) {
            try {
                secure = options_.tls->secure(socket);
            } catch (const std::exception& e) {
                detail::report_error(options_, fmt::format("cannot start TLS on a connection: {}", e.what()));
                asio::error_code ec;
                socket.close(ec);
                --live_;
                maybe_finish();
                return;
            }
        }
        auto c = std::make_shared<detail::connection<App>>(std::move(socket), std::move(secure), app_, options_, w);
        w.connections.insert(c);
        if (stopping_) c->begin_shutdown();
        c->start();
    }

    // Once shutting down and every connection is gone, the shutdown timer need not hold the loop open.
    void maybe_finish() {
        if (stopping_ && live_.load() == 0)
            asio::post(workers_.front()->io, [this] {
                if (shutdown_timer_) shutdown_timer_->cancel();
            });
    }

    // After shutdown_timeout has cancelled what was left, how long before the loops are stopped regardless.
    static constexpr std::chrono::milliseconds shutdown_grace{1000};

    App app_;
    server_options options_;
    std::vector<std::unique_ptr<worker>> workers_;
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    std::optional<asio::signal_set> signals_;
    std::optional<asio::steady_timer> shutdown_timer_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> live_{0};
};

template <class App>
server(App, server_options) -> server<App>;
template <class App>
server(App) -> server<App>;

} // namespace weir
