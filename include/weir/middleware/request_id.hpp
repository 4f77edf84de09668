#pragma once

#include <weir/pipeline.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace weir {

/// The request's id, attached as typed context by the request_id stage: `req.get<weir::request_id_value>()`.
struct request_id_value {
    std::string value;
};

/// Gives every request an id: a valid incoming X-Request-Id (1 to 128 of A-Z a-z 0-9 . _ -) is kept, anything
/// else is replaced by a fresh random one. The id is attached as request_id_value and sent back in
/// X-Request-Id on every reply: plain responses, SSE heads and 101s alike.
struct request_id {
    using provides = weir::provides<request_id_value>;

    std::string header = "X-Request-Id";

    static bool acceptable(std::string_view id) noexcept {
        if (id.empty() || id.size() > 128) return false;
        for (char c : id)
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-'))
                return false;
        return true;
    }

    static std::string generate() {
        thread_local std::mt19937_64 engine{std::random_device{}()};
        static constexpr char digits[] = "0123456789abcdef";
        std::string id(32, '0');
        std::uint64_t a = engine(), b = engine();
        for (int i = 0; i < 16; ++i) {
            id[i] = digits[(a >> (4 * i)) & 15];
            id[16 + i] = digits[(b >> (4 * i)) & 15];
        }
        return id;
    }

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        auto incoming = req.header(header);
        std::string id = incoming && acceptable(*incoming) ? std::string(*incoming) : generate();
        return after_next(next, req.with(request_id_value{id}),
                          [this, id](auto& reply) { reply.headers().set(header, id); });
    }
};

} // namespace weir
