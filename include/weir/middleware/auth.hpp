#pragma once

#include <weir/detail/base64.hpp>
#include <weir/detail/chars.hpp>
#include <weir/pipeline.hpp>

#include <asio/awaitable.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace weir {

namespace detail {

template <class T>
struct optional_value;
template <class T>
struct optional_value<std::optional<T>> {
    using type = T;
};

// What a verifier returns, with an awaitable unwrapped: std::optional<Principal>.
template <class Verifier, class... Args>
using verifier_result = typename unwrap_awaitable<std::invoke_result_t<const Verifier&, Args...>>::type;

// A coroutine verifier makes the stage a coroutine; its return type is spelled out so that the pipeline
// sees that without instantiating the body.
template <class Verifier, class Next>
using auth_result_t = std::conditional_t<is_awaitable_v<std::invoke_result_t<const Verifier&, std::string_view>>,
                                         asio::awaitable<reply_of<Next>>, next_result_t<Next>>;

inline response unauthorized(std::string_view scheme, std::string_view realm) {
    response r(status::unauthorized, "Unauthorized\n");
    r.headers().set("WWW-Authenticate", std::string(scheme) + " realm=\"" + std::string(realm) + "\"");
    return r;
}

// Runs the check then the rest; shared by the bearer and basic stages. A verifier that returns an awaitable
// makes the stage a coroutine; a plain verifier keeps it a plain call.
template <class Principal, class Verifier, class Request, class Next, class Extract>
auth_result_t<Verifier, Next> authenticate(const Verifier& verify, const Request& req, Next next, Extract extract,
                                           std::string_view scheme, std::string_view realm) {
    using result = std::invoke_result_t<const Verifier&, std::string_view>;
    if constexpr (is_awaitable_v<result>) {
        return [](const Verifier& v, Request r, Next n, Extract e, std::string s,
                  std::string rl) -> asio::awaitable<reply_of<Next>> {
            auto credentials = e(r);
            std::optional<Principal> who;
            if (credentials) who = co_await v(*credentials);
            if (!who) co_return unauthorized(s, rl);
            co_return co_await n(r.with(std::move(*who)));
        }(verify, req, next, extract, std::string(scheme), std::string(realm));
    } else {
        auto credentials = extract(req);
        std::optional<Principal> who;
        if (credentials) who = verify(*credentials);
        if (!who) return respond(next, unauthorized(scheme, realm));
        return next(req.with(std::move(*who)));
    }
}

} // namespace detail

/// Bearer-token authentication (RFC 6750). The token comes from `Authorization: Bearer T`, or from the query
/// parameter `query_parameter` when set (browsers' EventSource and WebSocket cannot send headers). The
/// verifier maps a token to std::optional<Principal> (or an asio::awaitable of it, for a database look-up);
/// the principal is attached as typed context. A missing or refused token gets 401 with WWW-Authenticate.
template <class Verifier>
class bearer_auth {
public:
    using principal_type =
        typename detail::optional_value<detail::verifier_result<Verifier, std::string_view>>::type;
    using provides = weir::provides<principal_type>;

    explicit bearer_auth(Verifier verify, std::string query_parameter = {}, std::string realm = "weir")
        : verify_(std::move(verify)), query_parameter_(std::move(query_parameter)), realm_(std::move(realm)) {}

    template <class Request>
    std::optional<std::string> token(const Request& req) const {
        if (auto h = req.header("authorization")) {
            auto v = detail::trim_ows(*h);
            if (v.size() > 7 && detail::iequals(v.substr(0, 7), "bearer ")) return std::string(detail::trim_ows(v.substr(7)));
        }
        if (!query_parameter_.empty()) return req.query_param(query_parameter_);
        return std::nullopt;
    }

    template <class Request, class Next>
    detail::auth_result_t<Verifier, Next> operator()(const Request& req, Next next) const {
        return detail::authenticate<principal_type>(
            verify_, req, next, [this](const Request& r) { return token(r); }, "Bearer", realm_);
    }

private:
    Verifier verify_;
    std::string query_parameter_;
    std::string realm_;
};

/// HTTP Basic authentication (RFC 7617): the verifier gets "user:password" decoded, and maps it to
/// std::optional<Principal> (or an awaitable of it). Use it only over TLS.
template <class Verifier>
class basic_auth {
public:
    using principal_type =
        typename detail::optional_value<detail::verifier_result<Verifier, std::string_view>>::type;
    using provides = weir::provides<principal_type>;

    explicit basic_auth(Verifier verify, std::string realm = "weir")
        : verify_(std::move(verify)), realm_(std::move(realm)) {}

    template <class Request>
    static std::optional<std::string> credentials(const Request& req) {
        auto h = req.header("authorization");
        if (!h) return std::nullopt;
        auto v = detail::trim_ows(*h);
        if (v.size() <= 6 || !detail::iequals(v.substr(0, 6), "basic ")) return std::nullopt;
        auto decoded = detail::base64_decode(detail::trim_ows(v.substr(6)));
        if (!decoded || decoded->find(':') == std::string::npos) return std::nullopt;
        return decoded;
    }

    template <class Request, class Next>
    detail::auth_result_t<Verifier, Next> operator()(const Request& req, Next next) const {
        return detail::authenticate<principal_type>(
            verify_, req, next, [](const Request& r) { return credentials(r); }, "Basic", realm_);
    }

private:
    Verifier verify_;
    std::string realm_;
};

} // namespace weir
