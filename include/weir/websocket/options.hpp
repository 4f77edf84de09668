#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace weir {

/// Limits and timeouts of one WebSocket session, and what its handshake accepts.
struct websocket_options {
    std::size_t max_message_size = 1024 * 1024; ///< a bigger message closes the session with 1009
    std::size_t send_queue_capacity = 1024;     ///< messages waiting to be written; `send` waits for room
    std::chrono::milliseconds ping_interval{30'000}; ///< ping a quiet peer this often (0: never)
    std::chrono::milliseconds idle_timeout{75'000};  ///< close a peer silent this long (0: never)
    std::chrono::milliseconds close_timeout{5'000};  ///< wait this long for the peer's close reply
    /// Subprotocols this server speaks, most preferred first; the first one the client also offers is chosen.
    std::vector<std::string> subprotocols{};
    /// If not empty, a handshake whose Origin is neither listed nor the server's own gets 403. A request
    /// without Origin (not from a browser) is allowed. CORS does not protect WebSockets: this does.
    std::vector<std::string> allowed_origins{};
    /// With allowed_origins empty: whether to check that Origin, if present, is the server's own.
    bool same_origin_only = false;
};

/// WebSocket close codes (RFC 6455 section 7.4.1) that an endpoint may send.
enum class close_code : unsigned short {
    normal = 1000,
    going_away = 1001,
    protocol_error = 1002,
    unsupported_data = 1003,
    invalid_payload = 1007,
    policy_violation = 1008,
    message_too_big = 1009,
    internal_error = 1011,
    try_again_later = 1013,
};

} // namespace weir
