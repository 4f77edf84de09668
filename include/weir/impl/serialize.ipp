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

WEIR_DECL char* append_head_start(std::string& out, status code, const headers& fields, std::size_t tail) {
    char number[24];
    std::string_view code_text = format_number(number, to_int(code));
    std::string_view reason = reason_phrase(code);
    std::string_view date = http_date();
    constexpr std::string_view version = "HTTP/1.1 ", date_name = "\r\nDate: ", crlf = "\r\n", colon = ": ";
    std::size_t size = version.size() + code_text.size() + 1 + reason.size() + date_name.size() + date.size() +
                       crlf.size() + tail;
    for (auto& [name, value] : fields) size += name.size() + colon.size() + value.size() + crlf.size();
    std::size_t at = out.size();
    out.resize(at + size);
    char* p = out.data() + at;
    p = put(p, version);
    p = put(p, code_text);
    *p++ = ' ';
    p = put(p, reason);
    p = put(p, date_name);
    p = put(p, date);
    p = put(p, crlf);
    for (auto& [name, value] : fields) {
        p = put(p, name);
        p = put(p, colon);
        p = put(p, value);
        p = put(p, crlf);
    }
    return p;
}

} // namespace weir::detail
