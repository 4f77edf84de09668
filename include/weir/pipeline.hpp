#pragma once

#include <weir/http/request.hpp>
#include <weir/reply.hpp>

#include <asio/awaitable.hpp>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace weir {

/// The context types a stage attaches to the request before calling `next`: a stage declares
/// `using provides = weir::provides<principal>;` and calls `next(req.with(principal{...}))`.
template <class... Context>
struct provides {};

/// The reply type that `next(req)` produces, for a stage's return type: `-> weir::reply_of<Next>`.
template <class Next>
using reply_of = typename Next::reply_type;

/// A stage that declares the context it attaches; made by `weir::providing<T...>(stage)`.
template <class Stage, class... Context>
struct providing_stage : Stage {
    using provides = weir::provides<Context...>;
};

/// Gives a lambda stage a `provides` declaration: `weir::providing<user>([](auto& req, auto next) {...})`.
template <class... Context, class Stage>
constexpr providing_stage<Stage, Context...> providing(Stage stage) {
    return {std::move(stage)};
}

namespace detail {

template <class Stage, class = void>
struct provided_by {
    using type = provides<>;
};
template <class Stage>
struct provided_by<Stage, std::void_t<typename Stage::provides>> {
    using type = typename Stage::provides;
};

template <class Request, class Provided>
struct add_context;
template <class... Have, class... Added>
struct add_context<request<Have...>, provides<Added...>> {
    using type = request<Have..., Added...>;
};

template <class>
inline constexpr bool always_false = false;

// Turns whatever a stage or handler returned into the reply type R.
template <class R, class T>
R to_reply(T&& value) {
    if constexpr (std::is_same_v<std::decay_t<T>, R>) return std::forward<T>(value);
    else return R(reply_for_t<T>(std::forward<T>(value)));
}

template <class R, class T>
asio::awaitable<R> to_reply_async(asio::awaitable<T> value) {
    co_return to_reply<R>(co_await std::move(value));
}

template <class Terminal, class Request>
struct terminal_traits {
    static_assert(std::is_invocable_v<Terminal&, const Request&>,
                  "weir: the last element of a pipeline must be a handler or router callable as "
                  "handler(const weir::request<...>& req)");
    using result = std::invoke_result_t<Terminal&, const Request&>;
    static_assert(reply_like<result>,
                  "weir: a handler must return a reply: weir::response, weir::status, weir::pending<P>, "
                  "weir::reply<...>, or an asio::awaitable of one of those");
    using reply_type = reply_for_t<result>;
    static constexpr bool is_async = is_awaitable_v<result>;
};

template <class Chain, std::size_t I, class Request>
struct link;

// What stage I receives as `next`. Async is true when it must return an awaitable (the stage is a coroutine).
template <class Chain, std::size_t I, class Request, bool Async>
class next_stage {
public:
    using request_type = Request;
    using reply_type = typename link<Chain, I, Request>::reply_type;
    static constexpr bool is_async = Async;
    using result_type = std::conditional_t<Async, asio::awaitable<reply_type>, reply_type>;

    explicit next_stage(Chain& chain) noexcept : chain_(&chain) {}

    template <class Passed>
    result_type operator()(const Passed& req) const {
        static_assert(std::is_same_v<Passed, Request>,
                      "weir: a stage must pass `next` the request it received, extended with exactly the "
                      "context types it declares in `using provides = weir::provides<...>` (use "
                      "next(req.with(value)))");
        if constexpr (Async) {
            return hold(*chain_, req);
        } else {
            static_assert(!link<Chain, I, Request>::is_async || always_false<Passed>,
                          "weir: this stage is a plain function, but a stage or handler after it is a "
                          "coroutine (returns asio::awaitable), so it cannot wait for `next`. Make this stage "
                          "a coroutine: `-> asio::awaitable<weir::reply_of<Next>>` and `co_await next(req)`");
            if constexpr (!link<Chain, I, Request>::is_async) return link<Chain, I, Request>::call(*chain_, req);
            else return reply_type(response(status::internal_server_error)); // unreachable: asserted above
        }
    }

private:
    // The awaitable keeps its own copy of the request (a pointer and the context values), so
    // `return next(req.with(value))` from a stage is safe even though the temporary dies before the await.
    static asio::awaitable<reply_type> hold(Chain& chain, Request req) {
        if constexpr (link<Chain, I, Request>::is_async) co_return co_await link<Chain, I, Request>::call(chain, req);
        else co_return link<Chain, I, Request>::call(chain, req);
    }

    Chain* chain_;
};

template <class Chain>
inline constexpr std::size_t last_index = std::tuple_size_v<typename Chain::parts_type> - 1;

template <class Chain, std::size_t I, class Request, bool Last = (I == last_index<Chain>)>
struct link_traits;

template <class Chain, std::size_t I, class Request>
struct link_traits<Chain, I, Request, true>
    : terminal_traits<std::tuple_element_t<I, typename Chain::parts_type>, Request> {};

template <class Chain, std::size_t I, class Request>
struct link_traits<Chain, I, Request, false> {
    using part = std::tuple_element_t<I, typename Chain::parts_type>;
    using next_request = typename add_context<Request, typename provided_by<part>::type>::type;
    using downstream = link<Chain, I + 1, next_request>;
    // Probe with the `next` the downstream naturally offers; a coroutine stage (its return type is spelled out,
    // as coroutines' must be) is then given an awaitable `next` even in front of a plain downstream.
    using probe_next = next_stage<Chain, I + 1, next_request, downstream::is_async>;
    static_assert(std::is_invocable_v<part&, const Request&, probe_next>,
                  "weir: a stage must be callable as stage(const weir::request<...>& req, Next next)");
    using probed = std::invoke_result_t<part&, const Request&, probe_next>;
    static_assert(!std::is_void_v<probed>, "weir: a stage must return a reply: what next(req) returned, or a "
                                           "weir::response to answer without calling next");
    static_assert(reply_like<probed>, "weir: a stage must return a reply (weir::response, weir::reply<...>, "
                                      "weir::pending<P>) or an asio::awaitable of one");
    static constexpr bool coroutine = is_awaitable_v<probed>;
    static_assert(coroutine || !downstream::is_async,
                  "weir: this stage is a plain function, but a stage or handler after it is a coroutine (returns "
                  "asio::awaitable), so it cannot wait for `next`. Make this stage a coroutine: "
                  "`-> asio::awaitable<weir::reply_of<Next>>` and `co_await next(req)`, or return "
                  "weir::after_next(next, req, edit)");
    using next_type = next_stage<Chain, I + 1, next_request, coroutine>;
    using result = std::invoke_result_t<part&, const Request&, next_type>;
    using reply_type = typename downstream::reply_type;
    static_assert(std::is_convertible_v<reply_for_t<result>, reply_type>,
                  "weir: a stage returned a reply with an upgrade that nothing after it produces");
    static constexpr bool is_async = coroutine || downstream::is_async;
};

// Link I of a chain: stage I (or the terminal when I is the last index) called with Request.
template <class Chain, std::size_t I, class Request>
struct link {
    static constexpr std::size_t last = last_index<Chain>;
    using traits = link_traits<Chain, I, Request>;
    using reply_type = typename traits::reply_type;
    static constexpr bool is_async = traits::is_async;
    using result_type = std::conditional_t<is_async, asio::awaitable<reply_type>, reply_type>;

    static result_type call(Chain& chain, const Request& req) {
        auto& p = std::get<I>(chain.parts());
        // A part that returns exactly the link's type is returned as a prvalue: no move per stage.
        if constexpr (I == last) {
            if constexpr (std::is_same_v<std::invoke_result_t<decltype(p), const Request&>, result_type>) return p(req);
            else return convert(p(req));
        } else {
            using next_type = typename traits::next_type;
            if constexpr (std::is_same_v<std::invoke_result_t<decltype(p), const Request&, next_type>, result_type>)
                return p(req, next_type(chain));
            else return convert(p(req, next_type(chain)));
        }
    }

private:
    template <class T>
    static result_type convert(T&& value) {
        if constexpr (is_awaitable_v<T>) {
            if constexpr (std::is_same_v<std::decay_t<T>, asio::awaitable<reply_type>>) return std::forward<T>(value);
            else return to_reply_async<reply_type>(std::forward<T>(value));
        } else if constexpr (is_async) {
            // A plain stage in front of an async chain is rejected by next_stage; a plain terminal is not async.
            return ready(to_reply<reply_type>(std::forward<T>(value)));
        } else {
            return to_reply<reply_type>(std::forward<T>(value));
        }
    }
    static asio::awaitable<reply_type> ready(reply_type value) { co_return value; }
};

} // namespace detail

/// What `next(req)` returns: the reply, or an awaitable of it when something downstream is a coroutine.
template <class Next>
using next_result_t = typename Next::result_type;

/// Calls `next(req)` and lets `edit(reply&)` change the reply, whether `next` is plain or a coroutine. A stage
/// written with it (returning next_result_t<Next>) works in front of any downstream.
template <class Next, class Request, class Edit>
next_result_t<Next> after_next(Next next, const Request& req, Edit edit) {
    if constexpr (Next::is_async) {
        // The coroutine copies the request: `after_next(next, req.with(value), edit)` stays safe.
        return [](Next n, Request r, Edit e) -> asio::awaitable<reply_of<Next>> {
            auto value = co_await n(r);
            e(value);
            co_return value;
        }(next, req, std::move(edit));
    } else {
        auto value = next(req);
        edit(value);
        return value;
    }
}

/// Answers without calling `next` (a rejection: 401, 403, 429 ...), in the form `next` would have returned.
template <class Next>
next_result_t<Next> respond(const Next&, reply_of<Next> value) {
    if constexpr (Next::is_async) {
        return [](reply_of<Next> v) -> asio::awaitable<reply_of<Next>> { co_return v; }(std::move(value));
    } else {
        return value;
    }
}

/// A chain of stages ending in a handler or router, composed at compile time:
/// `weir::pipeline{request_id{}, security_headers{}, cors{...}, routes}`. Each stage is called as
/// `stage(req, next)`; `next` is a concrete type, so the chain inlines. A pipeline is itself a handler, so it
/// can serve one route of a router (per-route stages) or stand in front of a server.
template <class... Parts>
class pipeline {
    static_assert(sizeof...(Parts) >= 1, "weir: a pipeline needs at least a handler");

public:
    using parts_type = std::tuple<Parts...>;

    constexpr explicit pipeline(Parts... parts) : parts_(std::move(parts)...) {}

    /// Runs the chain for one request; returns the reply, or an awaitable of it if any part is a coroutine.
    template <class Request>
        requires is_request_v<Request>
    auto operator()(const Request& req) -> typename detail::link<pipeline, 0, Request>::result_type {
        if constexpr (detail::link<pipeline, 0, Request>::is_async) return hold(req);
        else return detail::link<pipeline, 0, Request>::call(*this, req);
    }

    parts_type& parts() noexcept { return parts_; }

private:
    // The awaitable owns its copy of the request, so it may be started after the caller's temporary is gone.
    template <class Request>
    asio::awaitable<typename detail::link<pipeline, 0, Request>::reply_type> hold(Request req) {
        co_return co_await detail::link<pipeline, 0, Request>::call(*this, req);
    }

    parts_type parts_;
};

template <class... Parts>
pipeline(Parts...) -> pipeline<Parts...>;

} // namespace weir
