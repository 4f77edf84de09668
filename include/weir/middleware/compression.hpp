#pragma once

#ifndef WEIR_HAS_ZLIB
#error "weir/middleware/compression.hpp needs zlib: link weir::zlib (CMake) or define WEIR_HAS_ZLIB and link -lz"
#endif

#include <weir/detail/chars.hpp>
#include <weir/pipeline.hpp>

#include <zlib.h>

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

    static bool accepts_gzip(std::string_view accept_encoding) {
        while (!accept_encoding.empty()) {
            auto comma = accept_encoding.find(',');
            auto item = detail::trim_ows(accept_encoding.substr(0, comma));
            auto semi = item.find(';');
            auto coding = detail::trim_ows(item.substr(0, semi));
            if (detail::iequals(coding, "gzip") || coding == "*") {
                auto params = semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
                auto q = params.find("q=");
                return q == std::string_view::npos || detail::trim_ows(params.substr(q + 2)) != "0";
            }
            if (comma == std::string_view::npos) break;
            accept_encoding.remove_prefix(comma + 1);
        }
        return false;
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
