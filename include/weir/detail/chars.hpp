#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace weir::detail {

// Character classes of RFC 9110 section 5.6.2 (tchar) and 5.5 (field-vchar), as lookup tables so the
// parser's inner loops are one load per byte.
constexpr std::array<bool, 256> make_token_table() {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
}
inline constexpr std::array<bool, 256> token_table = make_token_table();

constexpr bool is_token_char(char c) noexcept { return token_table[static_cast<unsigned char>(c)]; }

// Four lookups per step and no branch per byte: names are short and nearly always valid, so an early exit
// buys nothing and the branches cost.
constexpr bool is_token(std::string_view s) noexcept {
    if (s.empty()) return false;
    const char* p = s.data();
    std::size_t n = s.size(), i = 0;
    auto at = [p](std::size_t k) { return static_cast<unsigned>(is_token_char(p[k])); };
    unsigned ok = 1;
    for (; i + 4 <= n; i += 4) ok &= at(i) & at(i + 1) & at(i + 2) & at(i + 3);
    for (; i < n; ++i) ok &= at(i);
    return ok != 0;
}

// field-vchar / SP / HTAB / obs-text: everything but controls other than HTAB, and DEL.
constexpr bool is_field_value_char(char c) noexcept {
    auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// Eight bytes at a time skip a clean word (no byte below 0x20, no DEL); a word with one of them (a tab is
// allowed) and the tail go byte by byte.
constexpr bool is_field_value(std::string_view s) noexcept {
    std::size_t i = 0;
    if (!std::is_constant_evaluated()) {
        constexpr std::uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
        for (; i + 8 <= s.size(); i += 8) {
            std::uint64_t x = 0;
            std::memcpy(&x, s.data() + i, 8);
            std::uint64_t del = x ^ (ones * 0x7f);
            // Bit 7 of a byte is set where the byte is below 0x20 (resp. zero): exact for "any byte" (a borrow
            // only starts at such a byte).
            if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & highs) break;
        }
    }
    for (; i < s.size(); ++i)
        if (!is_field_value_char(s[i])) return false;
    return true;
}

constexpr char to_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (to_lower(a[i]) != to_lower(b[i])) return false;
    return true;
}

constexpr std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// True when the comma-separated list `list` holds `token`, compared case-insensitively (Connection,
// Upgrade, Transfer-Encoding are such lists).
constexpr bool list_contains(std::string_view list, std::string_view token) noexcept {
    while (!list.empty()) {
        auto comma = list.find(',');
        auto item = trim_ows(list.substr(0, comma));
        if (iequals(item, token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

} // namespace weir::detail
