#pragma once

#include <weir/detail/base64.hpp>
#include <weir/detail/chars.hpp>
#include <weir/detail/config.hpp>
#include <weir/detail/sha1.hpp>
#include <weir/detail/websocket_deflate_negotiation.hpp>
#include <weir/http/request.hpp>
#include <weir/http/response.hpp>
#include <weir/websocket/options.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir {

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 section 4.2.2).
WEIR_DECL std::string websocket_accept_key(std::string_view key);

/// True if the request's Origin may open a WebSocket: no Origin (not a browser), a listed origin (exact,
/// case-insensitive: "https://app.example.com"), or the server's own (http:// or https:// followed by the
/// Host field).
template <class Request>
bool websocket_origin_allowed(const Request& req, const std::vector<std::string>& allowed) {
    auto origin = req.header("origin");
    if (!origin) return true;
    for (auto& a : allowed)
        if (detail::iequals(a, *origin)) return true;
    auto host = req.header("host");
    if (!host || host->empty()) return false;
    std::string_view o = *origin;
    for (std::string_view scheme : {"http://", "https://"})
        if (o.size() > scheme.size() && detail::iequals(o.substr(0, scheme.size()), scheme) &&
            detail::iequals(o.substr(scheme.size()), *host))
            return true;
    return false;
}

/// True if the request asks for a WebSocket (Upgrade: websocket), valid or not.
template <class Request>
bool is_websocket_request(const Request& req) {
    return req.header_has_token("upgrade", "websocket");
}

/// What a valid handshake yields: the accept key, the chosen subprotocol (empty if none) and the
/// permessage-deflate agreement (none unless websocket_options::deflate.enabled, zlib is there and the client
/// offered something acceptable).
struct websocket_handshake {
    std::string accept_key;
    std::string subprotocol;
    std::optional<detail::ws_deflate_agreement> deflate{};
};

namespace detail {

// True if a Sec-WebSocket-Protocol list holds `name` exactly (subprotocol names are case-sensitive: a
// browser fails the connection unless the answer is one of its offers, byte for byte).
constexpr bool ws_offers(std::string_view list, std::string_view name) noexcept {
    while (!list.empty()) {
        auto comma = list.find(',');
        if (trim_ows(list.substr(0, comma)) == name) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

template <class Request>
std::size_t ws_count_fields(const Request& req, std::string_view name) {
    std::size_t n = 0;
    for (auto& f : req.message().fields())
        if (iequals(f.name, name)) ++n;
    return n;
}

} // namespace detail

/// Checks a WebSocket opening handshake (RFC 6455 section 4.2.1). On success returns the accept key and the
/// chosen subprotocol; otherwise fills `refusal` with the answer: 426 with Sec-WebSocket-Version: 13 for
/// another (or no) version, 403 for an Origin the options refuse, 400 for anything else malformed: not a
/// GET, not HTTP/1.1, no Host, no `Upgrade: websocket`, no `Connection: Upgrade`, a key that is not 16
/// bytes in base64, or the key or version given twice.
template <class Request>
std::optional<websocket_handshake> check_websocket_handshake(const Request& req, const websocket_options& options,
                                                             response& refusal) {
    auto refuse = [&](status code, std::string_view why) {
        refusal = response(code, std::string(why) + "\n");
        if (code == status::upgrade_required) refusal.headers().set("Sec-WebSocket-Version", "13");
        return std::nullopt;
    };
    if (req.method() != "GET") return refuse(status::bad_request, "a WebSocket handshake is a GET request");
    if (req.version() != 11) return refuse(status::bad_request, "a WebSocket handshake needs HTTP/1.1");
    if (!req.header("host")) return refuse(status::bad_request, "missing Host");
    if (!req.header_has_token("upgrade", "websocket"))
        return refuse(status::bad_request, "missing Upgrade: websocket");
    if (!req.header_has_token("connection", "upgrade"))
        return refuse(status::bad_request, "missing Connection: Upgrade");
    if (detail::ws_count_fields(req, "sec-websocket-version") > 1)
        return refuse(status::bad_request, "Sec-WebSocket-Version given twice");
    auto version = req.header("sec-websocket-version");
    if (!version || detail::trim_ows(*version) != "13")
        return refuse(status::upgrade_required, "unsupported WebSocket version");
    if (detail::ws_count_fields(req, "sec-websocket-key") != 1)
        return refuse(status::bad_request, "missing or repeated Sec-WebSocket-Key");
    auto key = detail::trim_ows(*req.header("sec-websocket-key"));
    auto decoded = detail::base64_decode(key);
    if (!decoded || decoded->size() != 16) return refuse(status::bad_request, "invalid Sec-WebSocket-Key");
    if (options.check_origin && !websocket_origin_allowed(req, options.allowed_origins))
        return refuse(status::forbidden, "origin not allowed");
    websocket_handshake result{websocket_accept_key(key), {}, {}};
    // The first of the server's subprotocols that the client offered; none (never an empty header) else.
    for (auto& mine : options.subprotocols) {
        if (!detail::is_token(mine)) continue;
        for (auto& f : req.message().fields())
            if (detail::iequals(f.name, "sec-websocket-protocol") && detail::ws_offers(f.value, mine)) {
                result.subprotocol = mine;
                break;
            }
        if (!result.subprotocol.empty()) break;
    }
#if defined(WEIR_HAS_ZLIB)
    // permessage-deflate: the first acceptable offer, fields in order. Without zlib it is never accepted.
    if (options.deflate.enabled)
        for (auto& f : req.message().fields())
            if (detail::iequals(f.name, "sec-websocket-extensions"))
                if ((result.deflate = detail::ws_negotiate_deflate(f.value, options.deflate))) break;
#endif
    return result;
}

} // namespace weir

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/websocket_handshake.ipp>
#endif
