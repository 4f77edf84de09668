#pragma once

#include <weir/detail/chars.hpp>
#include <weir/pipeline.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace weir {

/// What the CORS stage allows (Fetch standard, "CORS protocol").
struct cors_config {
    std::vector<std::string> allowed_origins{};              ///< exact origins ("https://app.example")
    std::function<bool(std::string_view)> origin_allowed{}; ///< or a predicate, consulted after the list
    std::vector<std::string> allow_methods = {"GET", "HEAD", "POST"};
    std::vector<std::string> allow_headers{};  ///< request headers a preflight may ask for; empty: echo the request
    std::vector<std::string> expose_headers{}; ///< response headers scripts may read
    unsigned max_age_seconds = 600;          ///< how long a browser may cache a preflight
    bool allow_private_network = false;      ///< answer Private Network Access preflights
};

/// Whether cross-origin requests may carry credentials (cookies, Authorization).
enum class cors_credentials { omit, include };

/// Allows every origin; with credentials this does not compile (the Fetch standard forbids it).
struct any_origin_t {};
inline constexpr any_origin_t any_origin{};

/// Cross-Origin Resource Sharing. For an allowed Origin it echoes the exact origin, adds Vary: Origin and
/// (with credentials) Access-Control-Allow-Credentials on every reply, rejections from later stages
/// included, so a browser can read a 401 or 429. Preflights (OPTIONS with Access-Control-Request-Method)
/// are answered here with 204 and never reach later stages such as authentication. Note that CORS does not
/// protect WebSockets: check their Origin in the handshake (websocket_options::allowed_origins).
template <cors_credentials Credentials = cors_credentials::omit>
class cors {
public:
    /// Allows the listed origins (or those the predicate accepts). Throws std::invalid_argument for "*" with
    /// credentials.
    explicit cors(cors_config config) : config_(std::move(config)) {
        for (auto& o : config_.allowed_origins)
            if (o == "*") {
                if constexpr (Credentials == cors_credentials::include)
                    throw std::invalid_argument("weir: CORS forbids credentials with the \"*\" origin; list the "
                                                "origins instead");
                any_ = true;
            }
    }

    /// Allows every origin (sends "*"), without credentials.
    template <class Tag>
        requires std::is_same_v<Tag, any_origin_t>
    explicit cors(Tag, cors_config config = {}) : config_(std::move(config)), any_(true) {
        static_assert(Credentials == cors_credentials::omit,
                      "weir: CORS forbids credentials with a wildcard origin (Fetch standard); list the allowed "
                      "origins instead of weir::any_origin");
    }

    bool allows(std::string_view origin) const {
        if (any_) return true;
        for (auto& o : config_.allowed_origins)
            if (o == origin) return true;
        return config_.origin_allowed && config_.origin_allowed(origin);
    }

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        auto origin = req.header("origin");
        if (origin && req.method() == "OPTIONS" && req.header("access-control-request-method"))
            return respond(next, preflight(req, *origin));
        std::string allowed = origin && allows(*origin) ? std::string(*origin) : std::string();
        return after_next(next, req, [this, allowed](auto& reply) {
            auto& h = reply.headers();
            if (!any_ && !h.list_contains("Vary", "Origin")) h.add("Vary", "Origin");
            if (allowed.empty()) return;
            h.set("Access-Control-Allow-Origin", any_ && Credentials == cors_credentials::omit ? "*" : allowed);
            if constexpr (Credentials == cors_credentials::include) h.set("Access-Control-Allow-Credentials", "true");
            if (!config_.expose_headers.empty()) h.set("Access-Control-Expose-Headers", join(config_.expose_headers));
        });
    }

private:
    template <class Request>
    response preflight(const Request& req, std::string_view origin) const {
        if (!allows(origin)) {
            response r(status::forbidden, "CORS: origin not allowed\n");
            r.headers().add("Vary", "Origin");
            return r;
        }
        response r(status::no_content);
        auto& h = r.headers();
        h.set("Access-Control-Allow-Origin", any_ && Credentials == cors_credentials::omit ? std::string("*")
                                                                                              : std::string(origin));
        if constexpr (Credentials == cors_credentials::include) h.set("Access-Control-Allow-Credentials", "true");
        h.set("Access-Control-Allow-Methods", join(config_.allow_methods));
        if (!config_.allow_headers.empty()) h.set("Access-Control-Allow-Headers", join(config_.allow_headers));
        else if (auto asked = req.header("access-control-request-headers")) h.set("Access-Control-Allow-Headers", *asked);
        h.set("Access-Control-Max-Age", std::to_string(config_.max_age_seconds));
        if (config_.allow_private_network && req.header("access-control-request-private-network") == "true")
            h.set("Access-Control-Allow-Private-Network", "true");
        h.add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
        return r;
    }

    static std::string join(const std::vector<std::string>& items) {
        std::string out;
        for (auto& i : items) {
            if (!out.empty()) out += ", ";
            out += i;
        }
        return out;
    }

    cors_config config_;
    bool any_ = false;
};

} // namespace weir
