#pragma once

// The server core's definitions: included by <weir/server.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/server.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#endif

#include <stdexcept>
#include <thread>

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

WEIR_DECL server_core::server_core(server_options options) : options_(std::move(options)) {
    if (options_.threads == 0) options_.threads = 1;
    for (unsigned i = 0; i < options_.threads; ++i) workers_.push_back(std::make_unique<worker>(*this));
}

WEIR_DECL server_core::~server_core() { stop(); }

WEIR_DECL void server_core::worker::connection_ended(connection_base& c) {
    if (auto it = connections.find(&c); it != connections.end()) connections.erase(it);
    --owner.live_;
    owner.maybe_finish();
}

WEIR_DECL asio::ip::tcp::endpoint server_core::listen() {
    auto& io = workers_.front()->io;
    asio::ip::tcp::endpoint ep(asio::ip::make_address(options_.bind), options_.port);
    acceptor_.emplace(io);
    acceptor_->open(ep.protocol());
    acceptor_->set_option(asio::socket_base::reuse_address(true));
    acceptor_->bind(ep);
    acceptor_->listen(asio::socket_base::max_listen_connections);
    return acceptor_->local_endpoint();
}

WEIR_DECL void server_core::run() {
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

WEIR_DECL void server_core::stop() {
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
    if (!options_.tls) throw std::logic_error("weir: reload_tls() on a server without TLS (server_options::tls)");
    options_.tls->reload();
}

WEIR_DECL asio::awaitable<void> server_core::accept_loop() {
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

WEIR_DECL void server_core::start(worker& w, transport::socket_type socket) {
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
    auto c = make_connection(std::move(socket), std::move(secure), w);
    w.connections.insert(c);
    if (stopping_) c->begin_shutdown();
    c->start();
}

// Once shutting down and every connection is gone, the shutdown timer need not hold the loop open.
WEIR_DECL void server_core::maybe_finish() {
    if (stopping_ && live_.load() == 0)
        asio::post(workers_.front()->io, [this] {
            if (shutdown_timer_) shutdown_timer_->cancel();
        });
}

} // namespace detail

} // namespace weir
