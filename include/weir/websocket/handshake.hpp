#pragma once

#include <weir/detail/base64.hpp>
#include <weir/detail/chars.hpp>
#include <weir/detail/sha1.hpp>
#include <weir/http/request.hpp>
#include <weir/http/response.hpp>
#include <weir/websocket/options.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir {

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 section 4.2.2).
inline std::string websocket_accept_key(std::string_view key) {
    std::string input(key);
    input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    auto digest = detail::sha1(input);
    return detail::base64_encode(digest.data(), digest.size());
}

/// True if the request's Origin may open a WebSocket: no Origin (not a browser), a listed origin, or the
/// server's own (same scheme-less host as the Host field).
template <class Request>
bool websocket_origin_allowed(const Request& req, const std::vector<std::string>& allowed) {
    auto origin = req.header("origin");
    if (!origin) return true;
    for (auto& a : allowed)
        if (detail::iequals(a, *origin)) return true;
    auto host = req.header("host");
    if (!host) return false;
    std::string_view o = *origin;
    for (std::string_view scheme : {"http://", "https://"})
        if (o.size() > scheme.size() && detail::iequals(o.substr(0, scheme.size()), scheme) &&
            detail::iequals(o.substr(scheme.size()), *host))
            return true;
    return false;
}

/// What a valid handshake yields: the accept key and the chosen subprotocol (empty if none).
struct websocket_handshake {
    std::string accept_key;
    std::string subprotocol;
};

/// Checks a WebSocket opening handshake (RFC 6455 section 4.2.1). On success returns the accept key and the
/// chosen subprotocol; otherwise fills `refusal` with the answer: 426 with Sec-WebSocket-Version: 13 for
/// another version, 403 for a refused Origin, 400 for anything else malformed.
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
    auto version = req.header("sec-websocket-version");
    if (!version || detail::trim_ows(*version) != "13")
        return refuse(status::upgrade_required, "unsupported WebSocket version");
    auto key = req.header("sec-websocket-key");
    if (!key) return refuse(status::bad_request, "missing Sec-WebSocket-Key");
    auto trimmed = detail::trim_ows(*key);
    auto decoded = detail::base64_decode(trimmed);
    if (!decoded || decoded->size() != 16) return refuse(status::bad_request, "invalid Sec-WebSocket-Key");
    if (!options.allowed_origins.empty() || options.same_origin_only) {
        if (!websocket_origin_allowed(req, options.allowed_origins))
            return refuse(status::forbidden, "origin not allowed");
    }
    websocket_handshake result{websocket_accept_key(trimmed), {}};
    // The first of the server's subprotocols that the client offered; never an empty header.
    for (auto& mine : options.subprotocols) {
        for (auto& f : req.message().fields())
            if (detail::iequals(f.name, "sec-websocket-protocol") && detail::list_contains(f.value, mine)) {
                result.subprotocol = mine;
                break;
            }
        if (!result.subprotocol.empty()) break;
    }
    return result;
}

} // namespace weir
