#pragma once

#include <weir/pipeline.hpp>

#include <cstddef>

namespace weir {

/// A per-route body limit below the server's (server_options::limits.max_body_bytes, which the parser
/// enforces for every request): a larger body gets 413 and never reaches the handler.
struct body_limit {
    std::size_t max_bytes;

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        if (req.body().size() > max_bytes)
            return respond(next, response(status::payload_too_large, "Content Too Large\n"));
        return next(req);
    }
};

} // namespace weir
