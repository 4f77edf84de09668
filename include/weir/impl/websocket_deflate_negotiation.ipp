#pragma once

// permessage-deflate's negotiation: included by <weir/detail/websocket_deflate_negotiation.hpp> (header-only) or
// compiled once by <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION). It needs no zlib (a program without zlib
// never calls it), so libweir.a holds it whatever the program defines.

#include <weir/detail/websocket_deflate_negotiation.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir::detail {

WEIR_DECL std::optional<ws_deflate_agreement> ws_negotiate_deflate(std::string_view field,
                                                                   const websocket_deflate_options& options) {
    ws_ext::cursor c{field};
    std::vector<ws_ext::param> params;
    for (;;) {
        // Empty list elements (", ,") are allowed (RFC 9110 5.6.1).
        c.skip_ows();
        while (!c.done() && c.peek() == ',') {
            ++c.i;
            c.skip_ows();
        }
        if (c.done()) return std::nullopt;
        auto name = c.token();
        if (name.empty()) return std::nullopt;
        params.clear();
        c.skip_ows();
        while (!c.done() && c.peek() == ';') {
            ++c.i;
            c.skip_ows();
            ws_ext::param p;
            p.name = c.token();
            if (p.name.empty()) return std::nullopt;
            c.skip_ows();
            if (!c.done() && c.peek() == '=') {
                ++c.i;
                c.skip_ows();
                p.has_value = true;
                if (!c.done() && c.peek() == '"') {
                    auto q = c.quoted();
                    if (!q) return std::nullopt;
                    p.value = std::move(*q);
                    // The unquoted value must itself be a token (RFC 6455 section 9.1).
                    if (p.value.empty() || !std::all_of(p.value.begin(), p.value.end(), ws_ext::is_tchar))
                        p.value = "\x01"; // fails every check below: the offer is declined
                } else {
                    p.value = std::string(c.token());
                    if (p.value.empty()) return std::nullopt;
                }
                c.skip_ows();
            }
            params.push_back(std::move(p));
        }
        if (!c.done() && c.peek() != ',') return std::nullopt;
        if (iequals(name, "permessage-deflate"))
            if (auto a = ws_ext::answer(params, options)) return a;
    }
}

} // namespace weir::detail
