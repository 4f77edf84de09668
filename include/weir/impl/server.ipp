#pragma once

// The server core's definitions: included by <weir/server.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/impl/connection.ipp>
#include <weir/server.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <fmt/format.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#endif

#include <atomic>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>
#include <vector>

namespace weir {

WEIR_DECL std::size_t raise_open_file_limit() noexcept {
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

namespace detail {

struct server_core::state {
    state(server_options o, app_dispatch& a) : options_(std::move(o)), app_(a) {}

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
        explicit worker(state& s) : owner(s) {}
        state& owner;
        asio::io_context io{1};
        asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
        std::unordered_set<std::shared_ptr<connection_base>, by_address, by_address> connections;

        WEIR_DECL void connection_ended(connection_base& c) override;
    };

    WEIR_DECL asio::ip::tcp::endpoint listen();
    WEIR_DECL void run();
    WEIR_DECL void stop();
    WEIR_DECL void accept(std::size_t next);
    WEIR_DECL void start(worker& w, transport::socket_type socket);
    // Once shutting down and every connection is gone, the shutdown timer need not hold the loop open.
    WEIR_DECL void maybe_finish();

    // After shutdown_timeout has cancelled what was left, how long before the loops are stopped regardless.
    static constexpr std::chrono::milliseconds shutdown_grace{1000};

    server_options options_;
    app_dispatch& app_;
    std::vector<std::unique_ptr<worker>> workers_;
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    std::optional<asio::signal_set> signals_;
    std::optional<asio::steady_timer> shutdown_timer_;
    std::optional<asio::steady_timer> accept_pause_; // after a failed accept
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> live_{0};
};

WEIR_DECL server_core::server_core(server_options options, app_dispatch& app)
    : state_(std::make_unique<state>(std::move(options), app)) {
    auto& s = *state_;
    if (s.options_.threads == 0) s.options_.threads = 1;
    for (unsigned i = 0; i < s.options_.threads; ++i) s.workers_.push_back(std::make_unique<state::worker>(s));
}

WEIR_DECL server_core::~server_core() { stop(); }

WEIR_DECL bool server_core::is_secure() const noexcept { return state_->options_.tls != nullptr; }

WEIR_DECL std::size_t server_core::connection_count() const noexcept { return state_->live_.load(); }

WEIR_DECL void server_core::state::worker::connection_ended(connection_base& c) {
    if (auto it = connections.find(&c); it != connections.end()) connections.erase(it);
    --owner.live_;
    owner.maybe_finish();
}

WEIR_DECL asio::ip::tcp::endpoint server_core::listen() { return state_->listen(); }

WEIR_DECL void server_core::run() { state_->run(); }

WEIR_DECL asio::ip::tcp::endpoint server_core::state::listen() {
    auto& io = workers_.front()->io;
    asio::ip::tcp::endpoint ep(asio::ip::make_address(options_.bind), options_.port);
    acceptor_.emplace(io);
    acceptor_->open(ep.protocol());
    acceptor_->set_option(asio::socket_base::reuse_address(true));
    acceptor_->bind(ep);
    acceptor_->listen(asio::socket_base::max_listen_connections);
    return acceptor_->local_endpoint();
}

WEIR_DECL void server_core::state::run() {
    if (!acceptor_) listen();
    auto& io0 = workers_.front()->io;
    if (options_.handle_signals) {
        signals_.emplace(io0, SIGINT, SIGTERM);
        signals_->async_wait([this](const asio::error_code& ec, int) {
            if (!ec) stop();
        });
    }
    accept(0);
    std::vector<std::thread> threads;
    for (std::size_t i = 1; i < workers_.size(); ++i)
        threads.emplace_back([w = workers_[i].get()] { w->io.run(); });
    io0.run();
    for (auto& t : threads) t.join();
}

WEIR_DECL void server_core::stop() { state_->stop(); }

WEIR_DECL void server_core::state::stop() {
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

WEIR_DECL void server_core::reload_tls() {
    auto& options_ = state_->options_;
    if (!options_.tls) throw std::logic_error("weir: reload_tls() on a server without TLS (server_options::tls)");
    options_.tls->reload();
}

// Accepts the next connection for the worker `next`, round robin; each accepted socket starts on its worker's loop.
WEIR_DECL void server_core::state::accept(std::size_t next) {
    if (!acceptor_ || !acceptor_->is_open()) return;
    worker& w = *workers_[next];
    acceptor_->async_accept(w.io, [this, &w, next](asio::error_code ec, transport::socket_type socket) {
        std::size_t after = (next + 1) % workers_.size();
        if (ec) {
            if (ec == asio::error::operation_aborted || stopping_) return;
            // Out of descriptors or a connection reset before accept: keep serving the others.
            accept_pause_.emplace(workers_.front()->io, std::chrono::milliseconds(10));
            accept_pause_->async_wait([this, after](const asio::error_code&) { accept(after); });
            return;
        }
        if (live_.load() >= options_.max_connections) {
            socket.close(ec);
        } else {
            if (options_.tcp_nodelay) socket.set_option(asio::ip::tcp::no_delay(true), ec);
            ++live_;
            asio::post(w.io, [this, &w, s = std::move(socket)]() mutable { start(w, std::move(s)); });
        }
        accept(after);
    });
}

WEIR_DECL void server_core::state::start(worker& w, transport::socket_type socket) {
    std::unique_ptr<secure_layer> secure;
    if (options_.tls) {
        try {
            secure = options_.tls->secure(socket);
        } catch (const std::exception& e) {
            report_error(options_, fmt::format("cannot start TLS on a connection: {}", e.what()));
            asio::error_code ec;
            socket.close(ec);
            --live_;
            maybe_finish();
            return;
        }
    }
    auto c = std::make_shared<connection_core>(std::move(socket), std::move(secure), app_, options_, w);
    w.connections.insert(c);
    if (stopping_) c->begin_shutdown();
    c->start();
}

WEIR_DECL void server_core::state::maybe_finish() {
    if (stopping_ && live_.load() == 0)
        asio::post(workers_.front()->io, [this] {
            if (shutdown_timer_) shutdown_timer_->cancel();
        });
}

} // namespace detail

} // namespace weir
