#pragma once

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
inline std::string_view http_date() {
    struct cache {
        std::time_t second = 0;
        char text[32] = {};
        std::size_t size = 0;
    };
    thread_local cache c;
    std::time_t now = std::time(nullptr);
    if (now != c.second) {
        std::tm tm{};
        gmtime_r(&now, &tm);
        c.size = std::strftime(c.text, sizeof c.text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        c.second = now;
    }
    return {c.text, c.size};
}

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
inline void append_head_start(std::string& out, status code, const headers& fields) {
    append(out, "HTTP/1.1 ");
    append_number(out, to_int(code));
    out.push_back(' ');
    append(out, reason_phrase(code));
    append(out, "\r\nDate: ");
    append(out, http_date());
    append(out, "\r\n");
    for (auto& [name, value] : fields) {
        append(out, name);
        append(out, ": ");
        append(out, value);
        append(out, "\r\n");
    }
}

} // namespace weir::detail
