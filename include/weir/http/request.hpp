#pragma once

#include <weir/detail/chars.hpp>

#include <asio/ip/tcp.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace weir {

/// One header field of a request, as received.
struct request_field {
    std::string_view name;
    std::string_view value;
};

/// A parsed HTTP/1.1 request. Its views point into the connection's buffer and stay valid until the reply
/// to it is committed; copy what must outlive that (a stream's or session's state).
class http_request {
public:
    /// The method token as sent ("GET", "POST" ...); methods are case-sensitive.
    std::string_view method() const noexcept { return method_; }
    /// The request-target as sent: origin-form path and query ("/a/b?x=1").
    std::string_view target() const noexcept { return target_; }
    /// The path part of the target, not percent-decoded.
    std::string_view path() const noexcept { return path_; }
    /// The query part of the target, without '?'; empty if none.
    std::string_view query() const noexcept { return query_; }
    /// 11 for HTTP/1.1, 10 for HTTP/1.0.
    unsigned version() const noexcept { return version_; }
    /// The request body (chunked bodies arrive decoded).
    std::string_view body() const noexcept { return body_; }
    /// The peer's address.
    const asio::ip::tcp::endpoint& remote_endpoint() const noexcept { return remote_; }
    /// True when the request arrived over an encrypted transport (TLS).
    bool is_secure() const noexcept { return secure_; }
    /// Every header field in the order received.
    const std::vector<request_field>& fields() const noexcept { return fields_; }

    /// The value of the first header field of this name (case-insensitive), if any.
    std::optional<std::string_view> header(std::string_view name) const noexcept {
        for (auto& f : fields_)
            if (detail::iequals(f.name, name)) return f.value;
        return std::nullopt;
    }

    /// True if a header field of this name holds `token` in its comma-separated list.
    bool header_has_token(std::string_view name, std::string_view token) const noexcept {
        for (auto& f : fields_)
            if (detail::iequals(f.name, name) && detail::list_contains(f.value, token)) return true;
        return false;
    }

    /// The percent-decoded value of a query parameter ('+' reads as a space), if present.
    std::optional<std::string> query_param(std::string_view name) const {
        std::string_view q = query_;
        while (!q.empty()) {
            auto amp = q.find('&');
            auto pair = q.substr(0, amp);
            auto eq = pair.find('=');
            auto key = pair.substr(0, eq);
            if (decode_component(key) == name)
                return eq == std::string_view::npos ? std::string() : decode_component(pair.substr(eq + 1));
            if (amp == std::string_view::npos) break;
            q.remove_prefix(amp + 1);
        }
        return std::nullopt;
    }

    /// True when the connection stays open after this request (HTTP/1.1 default, 1.0 with keep-alive).
    bool keep_alive() const noexcept {
        if (header_has_token("connection", "close")) return false;
        return version_ == 11 || header_has_token("connection", "keep-alive");
    }

    /// Decodes %XX escapes and '+'; malformed escapes are kept as they are.
    static std::string decode_component(std::string_view s) {
        std::string out;
        out.reserve(s.size());
        for (std::size_t i = 0; i < s.size(); ++i) {
            char c = s[i];
            if (c == '+') {
                out.push_back(' ');
            } else if (c == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
                out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
                i += 2;
            } else {
                out.push_back(c);
            }
        }
        return out;
    }

    // Filled by the parser and the connection.
    std::string_view method_, target_, path_, query_, body_;
    unsigned version_ = 11;
    std::vector<request_field> fields_;
    asio::ip::tcp::endpoint remote_;
    bool secure_ = false;

private:
    static int hex(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }
};

/// What a stage or handler receives: the HTTP request plus the typed context values that earlier stages
/// attached with `with(value)`. `get<T>()` for a T that no earlier stage attached does not compile.
template <class... Context>
class request {
public:
    explicit request(const http_request& message, std::tuple<Context...> context = {})
        : message_(&message), context_(std::move(context)) {}

    /// Narrows a request to a subset of its context, so a handler can name only the types it needs.
    template <class... Other>
        requires(sizeof...(Other) > sizeof...(Context))
    request(const request<Other...>& wider) // NOLINT(google-explicit-constructor)
        : message_(&wider.message()), context_(wider.template get<Context>()...) {}

    /// The underlying HTTP request.
    const http_request& message() const noexcept { return *message_; }

    std::string_view method() const noexcept { return message_->method(); }
    std::string_view target() const noexcept { return message_->target(); }
    std::string_view path() const noexcept { return message_->path(); }
    std::string_view query() const noexcept { return message_->query(); }
    std::string_view body() const noexcept { return message_->body(); }
    unsigned version() const noexcept { return message_->version(); }
    const asio::ip::tcp::endpoint& remote_endpoint() const noexcept { return message_->remote_endpoint(); }
    bool is_secure() const noexcept { return message_->is_secure(); }
    std::optional<std::string_view> header(std::string_view name) const noexcept {
        return message_->header(name);
    }
    bool header_has_token(std::string_view name, std::string_view token) const noexcept {
        return message_->header_has_token(name, token);
    }
    std::optional<std::string> query_param(std::string_view name) const { return message_->query_param(name); }

    /// True if an earlier stage attached a value of type T.
    template <class T>
    static constexpr bool has = (std::is_same_v<T, Context> || ...);

    /// The context value of type T that an earlier stage attached.
    template <class T>
    const T& get() const noexcept {
        static_assert(has<T>, "weir: this request carries no context value of the requested type; a stage "
                              "before this one must attach it with `next(req.with(value))`");
        return std::get<T>(context_);
    }

    /// A request with one more context value, to pass to `next`.
    template <class T>
    request<Context..., std::decay_t<T>> with(T&& value) const {
        static_assert(!has<std::decay_t<T>>, "weir: a context value of this type is already attached to the "
                                             "request; attach a distinct type");
        return request<Context..., std::decay_t<T>>(
            *message_, std::tuple_cat(context_, std::tuple<std::decay_t<T>>(std::forward<T>(value))));
    }

private:
    const http_request* message_;
    std::tuple<Context...> context_;
};

/// True for weir::request<...> types.
template <class T>
inline constexpr bool is_request_v = false;
template <class... C>
inline constexpr bool is_request_v<request<C...>> = true;

} // namespace weir
