#pragma once

#include <weir/pipeline.hpp>

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <string>

namespace weir {

/// A per-route time limit for the stages and handler after it: if they have not produced a reply within
/// `limit`, the client gets 503 with Retry-After and the handler is cancelled at its next `co_await` (its
/// destructors run). Only a handler that waits can be cut short: a plain function that computes for a long time
/// holds its thread, as in any event loop. This stage is a coroutine.
struct time_limit {
    std::chrono::milliseconds limit;
    unsigned retry_after_seconds = 1;

    template <class Request, class Next>
    asio::awaitable<reply_of<Next>> operator()(const Request& req, Next next) const {
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer timer(co_await asio::this_coro::executor, limit);
        auto outcome = co_await (next(req) || timer.async_wait(asio::use_awaitable));
        if (outcome.index() == 0) co_return std::move(std::get<0>(outcome));
        response r(status::service_unavailable, "the request took too long\n");
        r.headers().set("Retry-After", std::to_string(retry_after_seconds));
        co_return r;
    }
};

} // namespace weir
