#pragma once

#include <cstddef>
#include <string_view>

namespace weir {

/**
 * True when `given` and `expected` hold the same bytes, compared in time that depends only on the length of
 * `given`: neither where the strings first differ nor the secret's length or content shows in how long the
 * call takes. Use it to check tokens, API keys and passwords a client sent against a secret (`==` stops at
 * the first difference, which lets an attacker guess a secret byte by byte from response times).
 * Pass what the client sent first and the secret second. Never throws.
 */
inline bool constant_time_equal(std::string_view given, std::string_view expected) noexcept {
    // Every byte of `given` is read and compared against `expected` read cyclically; a length difference
    // is folded into the result, so there is no early return on either.
    std::size_t diff = given.size() ^ expected.size();
    const std::size_t n = expected.size();
    for (std::size_t i = 0; i < given.size(); ++i) {
        auto a = static_cast<unsigned char>(given[i]);
        auto b = n == 0 ? static_cast<unsigned char>(~a) : static_cast<unsigned char>(expected[i % n]);
        diff |= static_cast<std::size_t>(a ^ b);
    }
    // Through a volatile, so the compiler cannot turn the loop back into one that stops early.
    volatile std::size_t result = diff;
    return result == 0;
}

} // namespace weir
