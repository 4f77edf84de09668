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

inline void append_number(std::string& out, std::size_t n) {
    char buf[24];
    char* end = buf + sizeof buf;
    char* p = end;
    do {
        *--p = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n != 0);
    out.append(p, static_cast<std::size_t>(end - p));
}

// Status line, Date and the stage-editable fields. Framing fields and the final CRLF are the caller's.
WEIR_DECL void append_head_start(std::string& out, status code, const headers& fields);

} // namespace weir::detail

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/serialize.ipp>
#endif
