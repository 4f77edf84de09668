#pragma once

// The serializer's definitions: included by <weir/detail/serialize.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/detail/serialize.hpp>

#include <ctime>

namespace weir::detail {

WEIR_DECL std::string_view http_date() {
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

WEIR_DECL void append_head_start(std::string& out, status code, const headers& fields) {
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
