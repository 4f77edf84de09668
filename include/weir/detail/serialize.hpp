#pragma once

#include <weir/detail/config.hpp>
#include <weir/http/headers.hpp>
#include <weir/http/status.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>

namespace weir::detail {

// The IMF-fixdate for the current second, formatted once a second per thread (RFC 9110 section 6.6.1).
WEIR_DECL std::string_view http_date();

inline void append(std::string& out, std::string_view s) { out.append(s.data(), s.size()); }

// Copies s to p and returns the end: for text written into room made beforehand.
inline char* put(char* p, std::string_view s) noexcept {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
}

// The decimal digits of n, written at the end of buf.
inline std::string_view format_number(char (&buf)[24], std::size_t n) noexcept {
    char* end = buf + sizeof buf;
    char* p = end;
    do {
        *--p = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n != 0);
    return {p, static_cast<std::size_t>(end - p)};
}

inline void append_number(std::string& out, std::size_t n) {
    char buf[24];
    append(out, format_number(buf, n));
}

// Status line, Date and the stage-editable fields, then room for `tail` more bytes, made in one step; returns
// where the tail goes (the caller writes all of it). Framing fields and the final CRLF are the caller's.
WEIR_DECL char* append_head_start(std::string& out, status code, const headers& fields, std::size_t tail);

inline void append_head_start(std::string& out, status code, const headers& fields) {
    append_head_start(out, code, fields, 0);
}

} // namespace weir::detail

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/serialize.ipp>
#endif
