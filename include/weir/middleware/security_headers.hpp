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
    /// e.g. "max-age=63072000; includeSubDomains": sent only on requests that arrived over TLS (RFC 6797 says a
    /// browser ignores it over plain HTTP, and a plain answer must not claim it)...
    std::string strict_transport_security{};
    /// ...or on every request, when TLS ends at a proxy in front of the server.
    bool strict_transport_security_behind_proxy = false;
    std::string content_security_policy{};   ///< e.g. "default-src 'self'"

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        bool tls = req.is_secure() || strict_transport_security_behind_proxy;
        return after_next(next, req, [this, tls](auto& reply) {
            auto& h = reply.headers();
            auto put = [&](const char* name, const std::string& value) {
                if (!value.empty() && !h.contains(name)) h.set(name, value);
            };
            put("X-Content-Type-Options", content_type_options);
            put("X-Frame-Options", frame_options);
            put("Referrer-Policy", referrer_policy);
            if (tls) put("Strict-Transport-Security", strict_transport_security);
            put("Content-Security-Policy", content_security_policy);
        });
    }
};

} // namespace weir
