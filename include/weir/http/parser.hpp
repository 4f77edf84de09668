#pragma once

#include <weir/detail/chars.hpp>
#include <weir/detail/config.hpp>
#include <weir/http/request.hpp>
#include <weir/http/status.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace weir {

/// Limits on what a client controls in a request. Exceeding one is answered with the matching status
/// (414, 431, 413, 400) and the connection is closed.
struct http_limits {
    std::size_t max_request_line = 8 * 1024;  ///< request-line bytes, CRLF excluded -> 414
    std::size_t max_header_bytes = 16 * 1024; ///< whole head (request line and fields) -> 431
    std::size_t max_header_count = 100;       ///< number of header fields -> 431
    std::size_t max_body_bytes = 1024 * 1024; ///< decoded body -> 413
    std::size_t max_chunk_ext_bytes = 4 * 1024; ///< chunk extensions, summed over one request's chunks -> 400
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

    /// While a chunked body arrives: how many raw bytes, starting at `decoded_offset()` from the request's
    /// first byte, are decoded and no longer needed. The caller may cut them out of its buffer (keeping the
    /// head before them and the bytes after them) and then call discard_decoded(), so a chunked request never
    /// holds its raw framing in memory. 0 when there is nothing to drop.
    std::size_t decoded_bytes() const noexcept;
    std::size_t decoded_offset() const noexcept { return head_end_; }

    /// The caller removed the decoded_bytes() at decoded_offset() from the data it passes to parse().
    void discard_decoded() noexcept;

    /// Forgets the current request and frees what it held (a decoded chunked body).
    void reset() noexcept;

private:
    enum class phase { head, body, chunked, trailers, done };

    parse_result fail(weir::status code, std::string_view reason) noexcept {
        phase_ = phase::done;
        parse_result r;
        r.state = parse_result::kind::error;
        r.error_status = code;
        r.error_reason = reason;
        return r;
    }
    parse_result complete(std::size_t consumed) noexcept {
        phase_ = phase::done;
        parse_result r;
        r.state = parse_result::kind::complete;
        r.consumed = consumed;
        return r;
    }
    parse_result scan_head(std::string_view data, http_request& out);
    parse_result parse_head(std::string_view data, http_request& out);
    parse_result parse_chunked(std::string_view data, http_request& out);
    void rebase(std::string_view data, http_request& out) noexcept;

    http_limits limits_;
    phase phase_ = phase::head;
    const char* base_ = nullptr;   // where `data` started at the last call, to move views if it moved
    std::size_t start_ = 0;        // first byte of the request line (after empty lines)
    std::size_t line_start_ = 0;   // first byte of the line being scanned
    std::size_t scanned_ = 0;      // bytes of the head already checked
    std::size_t head_end_ = 0;     // one past the empty line ending the head
    std::size_t content_length_ = 0;
    std::size_t chunk_pos_ = 0;    // next unparsed byte of a chunked body
    std::size_t chunk_left_ = 0;   // data bytes left in the current chunk
    std::size_t trailer_count_ = 0;
    std::size_t chunk_ext_bytes_ = 0; // chunk extension bytes seen in this request
    bool in_chunk_data_ = false;
    bool expect_continue_ = false;
    std::string chunked_body_;
};

} // namespace weir

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/detail/parser_impl.hpp>
#endif
