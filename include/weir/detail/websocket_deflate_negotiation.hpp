#pragma once

// permessage-deflate negotiation (RFC 7692 section 7.1), free of zlib: reads the offers of a
// Sec-WebSocket-Extensions field, takes the first the server can honour and writes the answer. An offer with
// an unknown, repeated or malformed parameter is declined (the next one is considered); a syntax error ends
// the field. The answer never grants more than the offer asked for.

#include <weir/detail/chars.hpp>
#include <weir/detail/config.hpp>
#include <weir/detail/websocket_frame.hpp>
#include <weir/websocket/options.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir::detail {

// What both sides agreed on.
struct ws_deflate_agreement {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    int server_window_bits = 15; // the server compresses with at most this window
    int client_window_bits = 15; // the client compresses with at most this window
    std::string response;        // the Sec-WebSocket-Extensions value of the 101
};

namespace ws_ext {

struct param {
    std::string_view name;
    std::string value;
    bool has_value = false;
};

constexpr bool is_tchar(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

struct cursor {
    std::string_view s;
    std::size_t i = 0;
    bool done() const noexcept { return i >= s.size(); }
    char peek() const noexcept { return s[i]; }
    void skip_ows() noexcept {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    }
    std::string_view token() noexcept {
        std::size_t start = i;
        while (i < s.size() && is_tchar(s[i])) ++i;
        return s.substr(start, i - start);
    }
    // A quoted-string (RFC 9110 5.6.4), unescaped; nullopt if unterminated or holding a control character.
    std::optional<std::string> quoted() {
        std::string out;
        ++i; // the opening quote
        while (i < s.size()) {
            char c = s[i++];
            if (c == '"') return out;
            if (c == '\\') {
                if (i >= s.size()) return std::nullopt;
                c = s[i++];
            }
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return std::nullopt;
            out.push_back(c);
        }
        return std::nullopt;
    }
};

// A window size parameter: "8" to "15", digits only, no leading zero.
inline std::optional<int> window_bits(std::string_view v) noexcept {
    if (v.empty() || v.size() > 2 || v[0] == '0') return std::nullopt;
    int n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + (c - '0');
    }
    if (n < 8 || n > 15) return std::nullopt;
    return n;
}

// The answer to one permessage-deflate offer, or nullopt to decline it.
inline std::optional<ws_deflate_agreement> answer(const std::vector<param>& params,
                                                  const websocket_deflate_options& options) {
    bool server_no_context = false, client_no_context = false;
    bool seen_server_bits = false, seen_client_bits = false;
    int offered_server_bits = 15, offered_client_bits = 15;
    for (auto& p : params) {
        if (iequals(p.name, "server_no_context_takeover")) {
            if (p.has_value || server_no_context) return std::nullopt;
            server_no_context = true;
        } else if (iequals(p.name, "client_no_context_takeover")) {
            if (p.has_value || client_no_context) return std::nullopt;
            client_no_context = true;
        } else if (iequals(p.name, "server_max_window_bits")) {
            if (!p.has_value || seen_server_bits) return std::nullopt;
            auto bits = window_bits(p.value);
            if (!bits) return std::nullopt;
            seen_server_bits = true;
            offered_server_bits = *bits;
        } else if (iequals(p.name, "client_max_window_bits")) {
            if (seen_client_bits) return std::nullopt;
            seen_client_bits = true;
            if (p.has_value) {
                auto bits = window_bits(p.value);
                if (!bits) return std::nullopt;
                offered_client_bits = *bits;
            }
        } else {
            return std::nullopt; // an unknown parameter: the offer cannot be understood
        }
    }
    ws_deflate_agreement a;
    a.server_no_context_takeover = server_no_context || !options.server_context_takeover;
    a.client_no_context_takeover = client_no_context || !options.client_context_takeover;
    a.server_window_bits = std::min(std::clamp(options.server_window_bits, 9, 15), offered_server_bits);
    // zlib compresses with windows of 512 bytes and more: a client that allows only 256 is declined.
    if (a.server_window_bits < 9) return std::nullopt;
    // The client's window may be narrowed only if it said so (client_max_window_bits); it never widens what
    // it offered.
    a.client_window_bits = seen_client_bits ? std::min(std::clamp(options.client_window_bits, 8, 15), offered_client_bits)
                                            : 15;
    a.response = "permessage-deflate";
    if (a.server_no_context_takeover) a.response += "; server_no_context_takeover";
    if (a.client_no_context_takeover) a.response += "; client_no_context_takeover";
    if (seen_server_bits || a.server_window_bits < 15)
        a.response += "; server_max_window_bits=" + std::to_string(a.server_window_bits);
    if (seen_client_bits) a.response += "; client_max_window_bits=" + std::to_string(a.client_window_bits);
    return a;
}

} // namespace ws_ext

// The first permessage-deflate offer in one Sec-WebSocket-Extensions field that the server accepts, and its
// answer; nullopt if there is none (or the field breaks the grammar before one is found).
WEIR_DECL std::optional<ws_deflate_agreement> ws_negotiate_deflate(std::string_view field,
                                                                   const websocket_deflate_options& options);

} // namespace weir::detail

namespace weir::detail {

// What a session with permessage-deflate negotiated uses: its decompressor, and compression of what it
// sends. Abstract so that a session's layout does not depend on whether zlib is there.
class ws_deflate_codec {
public:
    virtual ~ws_deflate_codec() = default;
    virtual ws_message_inflater& inflater() noexcept = 0;
    // True if a message of this size goes out compressed.
    virtual bool compresses(std::size_t size) const noexcept = 0;
    // The payload of the compressed frame (RSV1) for `message`.
    virtual std::string compress(std::string_view message) = 0;
    // The same for bytes shared with other sessions: without a server context, sessions on one thread
    // with the same settings share one compressed copy (a broadcast is compressed once per thread).
    virtual std::shared_ptr<const std::string> compress_shared(const std::shared_ptr<const std::string>& message) = 0;
};

} // namespace weir::detail

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/websocket_deflate_negotiation.ipp>
#endif
