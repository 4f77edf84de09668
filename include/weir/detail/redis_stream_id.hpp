#pragma once

// Redis stream ids ("<milliseconds>-<sequence>") as the 64-bit event ids of topics: the milliseconds in the
// high 44 bits, the sequence number in the low 20. The packing keeps the order of stream ids and is one-to-one
// for every id it accepts: milliseconds up to 2^44 - 1 (the year 2527) and up to 2^20 (1,048,576) entries of
// one stream within one millisecond, far beyond what one Redis server appends to one stream.

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weir::detail {

inline constexpr int stream_sequence_bits = 20;
inline constexpr std::uint64_t stream_max_sequence = (std::uint64_t{1} << stream_sequence_bits) - 1;
inline constexpr std::uint64_t stream_max_milliseconds = (std::uint64_t{1} << (64 - stream_sequence_bits)) - 1;

// The event id of stream id `text`, or nothing when it is not a stream id or lies outside the packing's range.
inline std::optional<std::uint64_t> pack_stream_id(std::string_view text) {
    auto dash = text.find('-');
    if (dash == std::string_view::npos || dash == 0 || dash + 1 == text.size()) return std::nullopt;
    std::uint64_t ms = 0, seq = 0;
    auto digits = [](std::string_view s, std::uint64_t& out) {
        if (s.empty() || s.front() < '0' || s.front() > '9') return false; // no sign, no space
        auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), out);
        return err == std::errc() && end == s.data() + s.size();
    };
    if (!digits(text.substr(0, dash), ms) || !digits(text.substr(dash + 1), seq)) return std::nullopt;
    if (ms > stream_max_milliseconds || seq > stream_max_sequence) return std::nullopt;
    return (ms << stream_sequence_bits) | seq;
}

// The stream id an event id stands for.
inline std::string stream_id_string(std::uint64_t id) {
    return std::to_string(id >> stream_sequence_bits) + '-' + std::to_string(id & stream_max_sequence);
}

} // namespace weir::detail
