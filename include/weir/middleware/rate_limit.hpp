#pragma once

#include <weir/pipeline.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace weir {

/// Token-bucket rate limiting per key (the client's address by default). A request takes one token; an
/// empty bucket gets 429 with Retry-After (whole seconds, rounded up). Memory is bounded: idle buckets are
/// pruned, and beyond `max_keys` the oldest are dropped. Thread-safe; copies share their buckets.
class rate_limit {
public:
    struct options {
        double burst = 20;              ///< bucket size
        double per_second = 10;         ///< refill rate
        std::size_t max_keys = 100'000; ///< buckets kept at most
        /// The key of a request; default: the peer's address.
        std::function<std::string(const http_request&)> key{};
    };

    /// Throws std::invalid_argument unless `per_second` is finite and above 0, `burst` is finite and at
    /// least 1 (a request takes one token), and `max_keys` is at least 1.
    explicit rate_limit(options o) : state_(std::make_shared<state>(checked(std::move(o)))) {}

    template <class Request, class Next>
    next_result_t<Next> operator()(const Request& req, Next next) const {
        double wait = state_->take(state_->opts.key ? state_->opts.key(req.message())
                                                    : req.remote_endpoint().address().to_string());
        if (wait > 0) {
            response r(status::too_many_requests, "Too Many Requests\n");
            r.headers().set("Retry-After", std::to_string(static_cast<long>(std::ceil(wait))));
            return respond(next, std::move(r));
        }
        return next(req);
    }

private:
    static options checked(options o) {
        if (!std::isfinite(o.per_second) || !(o.per_second > 0))
            throw std::invalid_argument("weir::rate_limit: per_second must be finite and above 0");
        if (!std::isfinite(o.burst) || !(o.burst >= 1))
            throw std::invalid_argument("weir::rate_limit: burst must be finite and at least 1");
        if (o.max_keys == 0) throw std::invalid_argument("weir::rate_limit: max_keys must be at least 1");
        return o;
    }

    struct state {
        using clock = std::chrono::steady_clock;
        struct bucket {
            double tokens;
            clock::time_point last;
        };
        explicit state(options o) : opts(std::move(o)) {}

        // Seconds to wait before a token is available; 0 if one was taken.
        double take(const std::string& key) {
            std::lock_guard lock(mutex);
            auto now = clock::now();
            if (buckets.size() >= opts.max_keys) prune(now);
            auto [it, fresh] = buckets.try_emplace(key, bucket{opts.burst, now});
            auto& b = it->second;
            if (!fresh) {
                double elapsed = std::chrono::duration<double>(now - b.last).count();
                b.tokens = std::min(opts.burst, b.tokens + elapsed * opts.per_second);
                b.last = now;
            }
            if (b.tokens >= 1) {
                b.tokens -= 1;
                return 0;
            }
            return (1 - b.tokens) / opts.per_second;
        }

        // Full buckets carry no information; drop them, and if that is not enough, the stalest half.
        void prune(clock::time_point now) {
            std::erase_if(buckets, [&](auto& kv) {
                double elapsed = std::chrono::duration<double>(now - kv.second.last).count();
                return kv.second.tokens + elapsed * opts.per_second >= opts.burst;
            });
            if (buckets.size() < opts.max_keys) return;
            std::vector<clock::time_point> times;
            for (auto& kv : buckets) times.push_back(kv.second.last);
            auto mid = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2);
            std::nth_element(times.begin(), mid, times.end());
            auto cut = *mid;
            std::erase_if(buckets, [&](auto& kv) { return kv.second.last <= cut; });
        }

        options opts;
        std::mutex mutex;
        std::unordered_map<std::string, bucket> buckets;
    };
    std::shared_ptr<state> state_;
};

} // namespace weir
