// libFuzzer target: the request parser never crashes, never reads out of bounds, and gives the same answer
// whether a request arrives at once or split at an arbitrary byte.

#include <weir/http/parser.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

struct outcome {
    weir::parse_result::kind state;
    std::size_t consumed;
    weir::status error_status;
    std::string body;
    std::string method, target;
};

outcome parse_split(std::string_view data, std::size_t split) {
    weir::http_limits limits;
    limits.max_body_bytes = 64 * 1024;
    weir::request_parser parser(limits);
    weir::http_request msg;
    weir::parse_result r;
    // Feed a growing prefix, as a connection does; the bytes live in a fresh copy each time, as after a
    // buffer reallocation.
    for (std::size_t end : {split, data.size()}) {
        std::string copy(data.substr(0, end));
        r = parser.parse(copy, msg);
        if (r.state != weir::parse_result::kind::incomplete) {
            outcome o{r.state, r.consumed, r.error_status, {}, {}, {}};
            if (r.state == weir::parse_result::kind::complete) {
                o.body = std::string(msg.body());
                o.method = std::string(msg.method());
                o.target = std::string(msg.target());
            }
            return o;
        }
    }
    return {r.state, 0, r.error_status, {}, {}, {}};
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    auto whole = parse_split(input, input.size());
    auto split = parse_split(input, size / 2);
    if (whole.state != split.state || whole.consumed != split.consumed || whole.body != split.body ||
        whole.method != split.method || whole.target != split.target ||
        (whole.state == weir::parse_result::kind::error && whole.error_status != split.error_status))
        std::abort();
    if (whole.state == weir::parse_result::kind::complete && whole.consumed > size) std::abort();
    return 0;
}
