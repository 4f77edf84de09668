#pragma once

#include <weir/http/request.hpp>
#include <weir/pipeline.hpp>
#include <weir/reply.hpp>

#include <asio/awaitable.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace weir {

/// A string usable as a template argument: `weir::get<"/users/{id}">`.
template <std::size_t N>
struct fixed_string {
    char data[N]{};
    constexpr fixed_string(const char (&s)[N]) { std::copy_n(s, N, data); } // NOLINT
    constexpr std::string_view view() const noexcept { return {data, N - 1}; }
};

namespace detail {

inline constexpr std::size_t max_path_params = 8;

enum class segment_kind { literal, param, tail };

struct path_segment {
    segment_kind kind = segment_kind::literal;
    std::size_t offset = 0; // where the segment's text starts in the route's path
    std::size_t length = 0;
};

// The compiled form of a route path: literal segments, {name} parameters and a final `*` or `{name...}`
// that captures the rest of the path. Computed from the characters alone (offsets, not pointers), so it
// stays a constant expression under every sanitizer.
template <std::size_t Count>
struct path_pattern {
    std::array<path_segment, Count> segments{};
    std::size_t params = 0;
    bool has_tail = false;
};

template <std::size_t N>
constexpr std::size_t count_segments(const fixed_string<N>& p) {
    std::size_t n = 0;
    for (std::size_t i = 0; i + 1 < N; ++i)
        if (p.data[i] == '/') ++n;
    return n;
}

template <fixed_string Path>
constexpr auto compile_path() {
    constexpr std::size_t size = sizeof(Path.data) - 1;
    static_assert(size > 0 && Path.data[0] == '/', "weir: a route path starts with '/'");
    path_pattern<count_segments(Path)> out;
    std::size_t index = 0;
    std::size_t begin = 1;
    for (std::size_t i = 1; i <= size; ++i) {
        if (i < size && Path.data[i] != '/') continue;
        path_segment seg{segment_kind::literal, begin, i - begin};
        const char* d = Path.data;
        std::size_t len = seg.length;
        bool braced = len >= 2 && d[begin] == '{' && d[begin + len - 1] == '}';
        bool star = len == 1 && d[begin] == '*';
        bool dots = braced && len > 5 && d[begin + len - 4] == '.' && d[begin + len - 3] == '.' &&
                    d[begin + len - 2] == '.';
        if (star || dots) {
            seg.kind = segment_kind::tail;
            out.has_tail = true;
            ++out.params;
        } else if (braced) {
            seg.kind = segment_kind::param;
            ++out.params;
        }
        out.segments[index++] = seg;
        begin = i + 1;
    }
    return out;
}

// Matches `path` against the pattern of route path `text`; on success fills `params` with raw (not
// decoded) views.
template <std::size_t Count>
bool match_path(const path_pattern<Count>& pattern, std::string_view text, std::string_view path,
                std::array<std::string_view, max_path_params>& params) noexcept {
    if (path.empty() || path.front() != '/') return false;
    std::string_view rest = path.substr(1);
    std::size_t p = 0;
    for (std::size_t i = 0; i < Count; ++i) {
        const auto& seg = pattern.segments[i];
        if (seg.kind == segment_kind::tail) {
            params[p++] = rest;
            return true;
        }
        auto slash = rest.find('/');
        bool last_in_path = slash == std::string_view::npos;
        auto piece = rest.substr(0, slash);
        if (seg.kind == segment_kind::literal) {
            if (piece != text.substr(seg.offset, seg.length)) return false;
        } else {
            if (piece.empty()) return false;
            params[p++] = piece;
        }
        if (i + 1 == Count) return last_in_path;
        if (last_in_path) return false;
        rest.remove_prefix(slash + 1);
    }
    return false;
}

// The argument types of a handler's call operator, when it has exactly one (not a generic lambda).
template <class F, class = void>
struct call_signature {
    static constexpr bool known = false;
};
template <class R, class... A>
struct call_signature<R (*)(A...)> {
    static constexpr bool known = true;
    using args = std::tuple<A...>;
};
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...)> : call_signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) const> : call_signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) noexcept> : call_signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) const noexcept> : call_signature<R (*)(A...)> {};
template <class F>
struct call_signature<F, std::void_t<decltype(&F::operator())>> : call_signature<decltype(&F::operator())> {};

// The type a path parameter converts to for argument `I + 1` of the handler (after the request). A generic
// handler (`auto` parameters) gets an owning, percent-decoded std::string: it may capture the parameter into an
// SSE stream or WebSocket session, which runs after the request's buffer is gone.
template <class Handler, std::size_t I>
auto param_type_of() {
    if constexpr (call_signature<Handler>::known) {
        using args = typename call_signature<Handler>::args;
        if constexpr (I + 1 < std::tuple_size_v<args>)
            return std::type_identity<std::remove_cvref_t<std::tuple_element_t<I + 1, args>>>{};
        else return std::type_identity<std::string>{};
    } else {
        return std::type_identity<std::string>{};
    }
}
template <class Handler, std::size_t I>
using param_type = typename decltype(param_type_of<Handler, I>())::type;

template <class Reply>
inline constexpr bool has_protocols = false;
template <class... P>
inline constexpr bool has_protocols<reply<P...>> = sizeof...(P) > 0;

// Converts a raw path parameter: string_view stays raw, std::string is percent-decoded, numbers must parse
// completely (else the route does not match).
template <class T>
bool convert_param(std::string_view raw, T& out) {
    if constexpr (std::is_same_v<T, std::string_view>) {
        out = raw;
        return true;
    } else if constexpr (std::is_same_v<T, std::string>) {
        out = http_request::decode_component(raw);
        return true;
    } else if constexpr (std::is_integral_v<T>) {
        auto [ptr, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), out);
        return ec == std::errc() && ptr == raw.data() + raw.size();
    } else {
        static_assert(always_false<T>, "weir: a path parameter converts to std::string_view, std::string or an "
                                       "integer type");
        return false;
    }
}

} // namespace detail

/// One route: a method, a path pattern and the handler that answers it. Made by weir::get, weir::post ...
template <fixed_string Method, fixed_string Path, class Handler>
class route {
public:
    static constexpr auto pattern = detail::compile_path<Path>();
    static constexpr std::size_t param_count = pattern.params;
    static_assert(param_count <= detail::max_path_params, "weir: a route has at most 8 path parameters");

    constexpr explicit route(Handler handler) : handler_(std::move(handler)) {}

    static constexpr std::string_view method() noexcept { return Method.view(); }
    static constexpr std::string_view path() noexcept { return Path.view(); }

    using params_tuple = decltype([]<std::size_t... I>(std::index_sequence<I...>) {
        return std::tuple<detail::param_type<Handler, I>...>{};
    }(std::make_index_sequence<param_count>{}));

    template <class Request>
    static constexpr bool invocable = []<std::size_t... I>(std::index_sequence<I...>) {
        return std::is_invocable_v<Handler&, const Request&, detail::param_type<Handler, I>...>;
    }(std::make_index_sequence<param_count>{});

    // True when the handler takes a parameter as a view and may answer with an upgrade: its session could
    // capture the view, which points into the request's buffer, gone when the session runs.
    template <class Request>
    static constexpr bool views_outlive_request = []<std::size_t... I>(std::index_sequence<I...>) {
        if constexpr (!invocable<Request> || !(std::is_same_v<detail::param_type<Handler, I>, std::string_view> || ...))
            return false;
        else {
            using result = std::invoke_result_t<Handler&, const Request&, detail::param_type<Handler, I>&...>;
            if constexpr (reply_like<result>) return detail::has_protocols<reply_for_t<result>>;
            else return false;
        }
    }(std::make_index_sequence<param_count>{});

    template <class Request>
    auto call(const Request& req, params_tuple& params) {
        static_assert(invocable<Request>,
                      "weir: a route handler must be callable as handler(const weir::request<...>& req, p1, ..., "
                      "pN), one argument for each {parameter} of its path");
        static_assert(!views_outlive_request<Request>,
                      "weir: a route that can return an upgrade takes its path parameters as std::string (or a "
                      "number), not std::string_view: the SSE stream or WebSocket session runs after the request's "
                      "buffer is gone, and a view captured by it would dangle");
        return std::apply([&](auto&... p) { return handler_(req, p...); }, params);
    }

    static bool convert(const std::array<std::string_view, detail::max_path_params>& raw,
                        params_tuple& out) {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return (detail::convert_param(raw[I], std::get<I>(out)) && ...);
        }(std::make_index_sequence<param_count>{});
    }

private:
    Handler handler_;
};

/// A route for any method and path: `weir::route_for<"PATCH", "/items/{id}">(handler)`.
template <fixed_string Method, fixed_string Path, class Handler>
constexpr route<Method, Path, Handler> route_for(Handler h) {
    return route<Method, Path, Handler>(std::move(h));
}
/// A GET route; HEAD requests are answered by it too, without the body.
template <fixed_string Path, class Handler>
constexpr auto get(Handler h) {
    return route<"GET", Path, Handler>(std::move(h));
}
/// A POST route.
template <fixed_string Path, class Handler>
constexpr auto post(Handler h) {
    return route<"POST", Path, Handler>(std::move(h));
}
/// A PUT route.
template <fixed_string Path, class Handler>
constexpr auto put(Handler h) {
    return route<"PUT", Path, Handler>(std::move(h));
}
/// A PATCH route.
template <fixed_string Path, class Handler>
constexpr auto patch(Handler h) {
    return route<"PATCH", Path, Handler>(std::move(h));
}
/// A DELETE route.
template <fixed_string Path, class Handler>
constexpr auto delete_(Handler h) {
    return route<"DELETE", Path, Handler>(std::move(h));
}
/// A route that answers every method (the handler reads req.method()).
template <fixed_string Path, class Handler>
constexpr auto any(Handler h) {
    return route<"*", Path, Handler>(std::move(h));
}

namespace detail {
template <class T>
inline constexpr bool is_route_v = false;
template <fixed_string M, fixed_string P, class H>
inline constexpr bool is_route_v<route<M, P, H>> = true;
} // namespace detail

/// Dispatches a request to the first route whose path and method match. A path that matches with another
/// method gets 405 with Allow; no match gets 404; HEAD falls back to the GET route. OPTIONS is left to the
/// stages in front (CORS answers preflights).
template <class... Routes>
class router {
    static_assert((detail::is_route_v<Routes> && ...),
                  "weir: a router holds routes made by weir::get<\"/path\">(handler), weir::post ...");

public:
    constexpr explicit router(Routes... routes) : routes_(std::move(routes)...) {}

    template <class Request>
        requires is_request_v<Request>
    auto operator()(const Request& req) {
        using R = merged_reply<Request>;
        if constexpr ((is_async_route<Routes, Request> || ...)) return dispatch_async<R>(req);
        else return dispatch_sync<R>(req);
    }

private:
    template <class Route, class Request>
    using route_result = decltype(std::declval<Route&>().call(std::declval<const Request&>(),
                                                              std::declval<typename Route::params_tuple&>()));
    template <class Route, class Request>
    static constexpr bool is_async_route = is_awaitable_v<route_result<Route, Request>>;
    template <class Route, class Request>
    using route_reply = reply_for_t<route_result<Route, Request>>;

    template <class Acc, class Request, class... Rs>
    struct merge_all {
        using type = Acc;
    };
    template <class Acc, class Request, class R0, class... Rs>
    struct merge_all<Acc, Request, R0, Rs...> {
        using type = typename merge_all<merged_reply_t<Acc, route_reply<R0, Request>>, Request, Rs...>::type;
    };
    template <class Request>
    using merged_reply = typename merge_all<reply<>, Request, Routes...>::type;

    struct match_result {
        std::size_t index = sizeof...(Routes);
        bool path_matched = false;
        std::string allow;
        std::array<std::string_view, detail::max_path_params> params{};
    };

    static bool method_matches(std::string_view route_method, std::string_view method) noexcept {
        return route_method == "*" || route_method == method || (method == "HEAD" && route_method == "GET");
    }

    template <class Request>
    match_result find(const Request& req) const {
        match_result m;
        auto method = req.method();
        auto path = req.path();
        std::size_t i = 0;
        auto try_route = [&](const auto& r) {
            using route_t = std::remove_cvref_t<decltype(r)>;
            std::array<std::string_view, detail::max_path_params> params{};
            if (m.index == sizeof...(Routes) && detail::match_path(route_t::pattern, route_t::path(), path, params)) {
                if (method_matches(route_t::method(), method)) {
                    m.index = i;
                    m.params = params;
                } else {
                    m.path_matched = true;
                    add_allowed(m.allow, route_t::method());
                }
            }
            ++i;
        };
        std::apply([&](const auto&... r) { (try_route(r), ...); }, routes_);
        return m;
    }

    static void add_allowed(std::string& allow, std::string_view method) {
        auto append = [&](std::string_view m) {
            if (detail::list_contains(allow, m)) return;
            if (!allow.empty()) allow += ", ";
            allow += m;
        };
        if (method == "*") return;
        append(method);
        if (method == "GET") append("HEAD");
    }

    template <class R>
    static R not_matched(const match_result& m) {
        if (m.path_matched) {
            response r(status::method_not_allowed, "Method Not Allowed\n");
            r.headers().set("Allow", m.allow);
            return r;
        }
        return response(status::not_found, "Not Found\n");
    }

    template <class R, std::size_t I, class Request>
    R call_sync(const Request& req, const match_result& m) {
        auto& r = std::get<I>(routes_);
        using route_t = std::remove_cvref_t<decltype(r)>;
        typename route_t::params_tuple params;
        if (!route_t::convert(m.params, params)) return response(status::not_found, "Not Found\n");
        return detail::to_reply<R>(r.call(req, params));
    }

    template <class R, class Request>
    R dispatch_sync(const Request& req) {
        auto m = find(req);
        if (m.index == sizeof...(Routes)) return not_matched<R>(m);
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            std::optional<R> out;
            (void)((m.index == I && (out.emplace(call_sync<R, I>(req, m)), true)) || ...);
            return std::move(*out);
        }(std::index_sequence_for<Routes...>{});
    }

    template <class R, std::size_t I, class Request>
    asio::awaitable<R> call_async(const Request& req, match_result m) {
        auto& r = std::get<I>(routes_);
        using route_t = std::remove_cvref_t<decltype(r)>;
        typename route_t::params_tuple params;
        if (!route_t::convert(m.params, params))
            co_return R(response(status::not_found, "Not Found\n"));
        if constexpr (is_awaitable_v<decltype(r.call(req, params))>) co_return detail::to_reply<R>(co_await r.call(req, params));
        else co_return detail::to_reply<R>(r.call(req, params));
    }

    template <class R, class Request>
    asio::awaitable<R> dispatch_async(const Request& req) {
        auto m = find(req);
        if (m.index == sizeof...(Routes)) return ready(not_matched<R>(m));
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            std::optional<asio::awaitable<R>> out;
            (void)((m.index == I && (out.emplace(call_async<R, I>(req, m)), true)) || ...);
            return std::move(*out);
        }(std::index_sequence_for<Routes...>{});
    }

    template <class R>
    static asio::awaitable<R> ready(R value) {
        co_return value;
    }

    std::tuple<Routes...> routes_;
};

template <class... Routes>
router(Routes...) -> router<Routes...>;

} // namespace weir
