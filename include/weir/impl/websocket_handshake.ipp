#pragma once

// The WebSocket handshake's accept key: included by <weir/websocket/handshake.hpp> (header-only) or compiled
// once by <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/detail/base64.hpp>
#include <weir/detail/sha1.hpp>
#include <weir/websocket/handshake.hpp>

#include <string>
#include <string_view>

namespace weir {

WEIR_DECL std::string websocket_accept_key(std::string_view key) {
    std::string input(key);
    input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    auto digest = detail::sha1(input);
    return detail::base64_encode(digest.data(), digest.size());
}

} // namespace weir
