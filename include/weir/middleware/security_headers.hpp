#pragma once

#include <weir/pipeline.hpp>

#include <string>

namespace weir {

/// Adds the common security headers to every reply (plain responses, SSE heads and 101s), unless the handler
/// set its own. Empty strings leave a header out.
struct security_headers {
    std::string content_type_options = "nosniff";
    std::string frame_options = "DENY";
    std::string referrer_policy = "no-referrer";
    std::string strict_transport_security{}; ///< e.g. "max-age=63072000; includeSubDomains" (behind TLS only)
    std::string content_security_policy{};   ///< e.g. "default-src 'self'"

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        return after_next(next, req, [this](auto& reply) {
            auto& h = reply.headers();
            auto put = [&](const char* name, const std::string& value) {
                if (!value.empty() && !h.contains(name)) h.set(name, value);
            };
            put("X-Content-Type-Options", content_type_options);
            put("X-Frame-Options", frame_options);
            put("Referrer-Policy", referrer_policy);
            put("Strict-Transport-Security", strict_transport_security);
            put("Content-Security-Policy", content_security_policy);
        });
    }
};

} // namespace weir
