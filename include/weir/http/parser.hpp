#pragma once

#include <weir/http/request.hpp>
#include <weir/http/status.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace weir {

/// Limits on what a client controls in a request. Exceeding one is answered with the matching status
/// (414, 431, 413) and the connection is closed.
struct http_limits {
    std::size_t max_request_line = 8 * 1024;  ///< request-line bytes, CRLF excluded -> 414
    std::size_t max_header_bytes = 16 * 1024; ///< whole head (request line and fields) -> 431
    std::size_t max_header_count = 100;       ///< number of header fields -> 431
    std::size_t max_body_bytes = 1024 * 1024; ///< decoded body -> 413
};

/// What one call to request_parser::parse found.
struct parse_result {
    enum class kind {
        incomplete, ///< need more bytes
        complete,   ///< one whole request (head and body) is in `out`
        error,      ///< malformed or over a limit: answer `error_status`, then close the connection
    };
    kind state = kind::incomplete;
    std::size_t consumed = 0; ///< with complete: bytes this request took from the start of `data`
    weir::status error_status = weir::status::bad_request; ///< with error
    std::string_view error_reason;                         ///< with error: a short static text for logs
};

/// An incremental HTTP/1.1 request parser (RFC 9112), strict on everything that enables request smuggling.
/// Feed it the bytes of one request as they arrive, always from the request's first byte; it remembers how
/// far it got so the total work stays linear. Call reset() before the next request.
class request_parser {
public:
    explicit request_parser(const http_limits& limits = {}) noexcept;

    /// Parses `data` (every byte received for this request so far, starting at its first byte).
    /// On complete, `out`'s views point into `data` (and into this parser, for a chunked body) and stay
    /// valid while `data` is unchanged and until reset().
    parse_result parse(std::string_view data, http_request& out);

    /// True once the head has been parsed (the body may still be missing).
    bool head_complete() const noexcept;

    /// True if the head asked for `Expect: 100-continue` and the body has not fully arrived.
    bool expects_continue() const noexcept;

    /// Forgets the current request.
    void reset() noexcept;

private:
    // implementation state (see detail)
};

} // namespace weir
