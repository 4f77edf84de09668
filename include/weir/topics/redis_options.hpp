#pragma once

/// Options of the Redis Streams topic backend (<weir/topics/redis.hpp>), and Redis URLs. Needs no hiredis.

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace weir {

/// Where the Redis server is and how topics live in it.
struct redis_topic_options {
    std::string host = "127.0.0.1"; ///< the Redis server's host name or address
    std::uint16_t port = 6379;      ///< and port
    /// A topic's stream is the key `key_prefix + topic`: servers that share a prefix share their topics.
    std::string key_prefix = "weir:topic:";
    /// Entries each stream keeps, roughly (`XADD ... MAXLEN ~`): how far back a client can resume.
    std::size_t max_length = 100'000;
    /// How long a publish (or a history read for a resume) waits for Redis before it fails.
    std::chrono::milliseconds timeout{2000};
    /// The first wait before reconnecting the reading connection; it doubles up to max_reconnect_delay.
    std::chrono::milliseconds reconnect_delay{50};
    std::chrono::milliseconds max_reconnect_delay{1000}; ///< the longest wait between reconnection attempts
    /// Events of each topic this process keeps from its stream, so that most resumes need no trip to Redis.
    std::size_t kept_events = 1000;
};

/// Options for the server at `url`, "redis://HOST[:PORT]" (port 6379 by default); `options` gives the rest.
/// Throws std::invalid_argument for anything else (user names, passwords, databases and TLS are not supported).
inline redis_topic_options parse_redis_url(std::string_view url, redis_topic_options options = {}) {
    constexpr std::string_view scheme = "redis://";
    if (!url.starts_with(scheme)) throw std::invalid_argument("a Redis URL starts with redis://");
    url.remove_prefix(scheme.size());
    if (!url.empty() && url.back() == '/') url.remove_suffix(1);
    if (url.empty() || url.find_first_of("@/?") != std::string_view::npos)
        throw std::invalid_argument("a Redis URL is redis://HOST[:PORT]");
    std::string_view host = url;
    auto colon = url.rfind(':');
    if (colon != std::string_view::npos && url.find(']', colon) == std::string_view::npos) {
        host = url.substr(0, colon);
        auto port = url.substr(colon + 1);
        unsigned value = 0;
        auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (port.empty() || err != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
            throw std::invalid_argument("the port of a Redis URL is a number from 1 to 65535");
        options.port = static_cast<std::uint16_t>(value);
    }
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) throw std::invalid_argument("a Redis URL names a host");
    options.host = std::string(host);
    return options;
}

} // namespace weir
