#pragma once

#ifndef WEIR_HAS_ZLIB
#error "weir/middleware/compression.hpp needs zlib: link weir::zlib (CMake) or define WEIR_HAS_ZLIB and link -lz"
#endif

#include <weir/detail/chars.hpp>
#include <weir/pipeline.hpp>

#include <zlib.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

namespace weir {

/// Compresses plain buffered responses with gzip when the client accepts it, the body is large enough and
/// its type compresses. It only ever sees the `response` alternative: SSE heads, 101s and their streams are
/// other alternatives, so they cannot be compressed by construction.
struct compression {
    std::size_t min_bytes = 1024;
    int level = 6;

    static bool compressible(std::string_view type) {
        return type.starts_with("text/") || type.find("json") != std::string_view::npos ||
               type.find("javascript") != std::string_view::npos || type.find("xml") != std::string_view::npos ||
               type.find("svg") != std::string_view::npos;
    }

    /// The weight of a qvalue (RFC 9110 12.4.2) in thousandths: "0" to "1", at most three decimals. Anything
    /// else ("1.5", "-1", "0.0001", "abc", empty) is not a qvalue: std::nullopt.
    static std::optional<int> parse_qvalue(std::string_view q) noexcept {
        if (q.empty() || q.size() > 5 || (q[0] != '0' && q[0] != '1')) return std::nullopt;
        int whole = q[0] - '0';
        if (q.size() == 1) return whole * 1000;
        if (q[1] != '.') return std::nullopt;
        int frac = 0;
        std::size_t digits = 0;
        for (char c : q.substr(2)) {
            if (c < '0' || c > '9') return std::nullopt;
            frac = frac * 10 + (c - '0');
            ++digits;
        }
        for (; digits < 3; ++digits) frac *= 10;
        if (whole == 1 && frac != 0) return std::nullopt;
        return whole * 1000 + frac;
    }

    /// True when Accept-Encoding (RFC 9110 12.5.3) makes gzip acceptable and not less preferred than no
    /// coding. The most specific entry wins: `gzip` (or `x-gzip`) over `*`; q=0 in any spelling means "not
    /// acceptable"; an entry whose qvalue is not valid is ignored; an empty field accepts no coding. Without
    /// an `identity` entry, identity weighs what `*` does; when neither is listed it does not compete with gzip.
    static bool accepts_gzip(std::string_view accept_encoding) noexcept {
        std::optional<int> gzip_q, any_q, identity_q;
        while (true) {
            auto comma = accept_encoding.find(',');
            auto item = accept_encoding.substr(0, comma);
            auto semi = item.find(';');
            auto coding = detail::trim_ows(item.substr(0, semi));
            std::optional<int> q = 1000;
            auto params = semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
            while (!params.empty()) {
                auto next = params.find(';');
                auto param = params.substr(0, next);
                auto eq = param.find('=');
                if (eq != std::string_view::npos && detail::iequals(detail::trim_ows(param.substr(0, eq)), "q"))
                    q = parse_qvalue(detail::trim_ows(param.substr(eq + 1)));
                if (next == std::string_view::npos) break;
                params.remove_prefix(next + 1);
            }
            if (q && !coding.empty()) {
                // A coding listed twice keeps its highest weight.
                auto keep = [&](std::optional<int>& slot) { slot = std::max(slot.value_or(*q), *q); };
                if (detail::iequals(coding, "gzip") || detail::iequals(coding, "x-gzip")) keep(gzip_q);
                else if (coding == "*") keep(any_q);
                else if (detail::iequals(coding, "identity")) keep(identity_q);
            }
            if (comma == std::string_view::npos) break;
            accept_encoding.remove_prefix(comma + 1);
        }
        int gzip_weight = gzip_q.value_or(any_q.value_or(0));
        int identity_weight = identity_q.value_or(any_q.value_or(0));
        return gzip_weight > 0 && gzip_weight >= identity_weight;
    }

    static bool gzip(std::string_view in, std::string& out, int level) {
        z_stream z{};
        if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
        out.resize(deflateBound(&z, static_cast<uLong>(in.size())) + 32);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z.avail_in = static_cast<uInt>(in.size());
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        int rc = deflate(&z, Z_FINISH);
        out.resize(z.total_out);
        deflateEnd(&z);
        return rc == Z_STREAM_END;
    }

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        bool wanted = false;
        if (auto ae = req.header("accept-encoding")) wanted = accepts_gzip(*ae);
        return after_next(next, req, [this, wanted](auto& reply) {
            if (auto* r = reply.template get_if<response>()) {
                if (!r->headers().list_contains("Vary", "Accept-Encoding")) r->headers().add("Vary", "Accept-Encoding");
                auto type = r->headers().get("Content-Type");
                if (!wanted || r->body().size() < min_bytes || !type || !compressible(*type) ||
                    r->headers().contains("Content-Encoding"))
                    return;
                std::string packed;
                if (!gzip(r->body(), packed, level) || packed.size() >= r->body().size()) return;
                r->set_body(std::move(packed));
                r->headers().set("Content-Encoding", "gzip");
            }
        });
    }
};

} // namespace weir
