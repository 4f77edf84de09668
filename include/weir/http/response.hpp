#pragma once

#include <weir/http/headers.hpp>
#include <weir/http/status.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace weir {

/// A plain HTTP response: status, headers and a buffered body. The final stage frames it (Content-Length),
/// leaves the body out for HEAD, 1xx, 204 and 304, and closes the connection if asked to.
class response {
public:
    /// An empty response with this status.
    response(weir::status code = weir::status::ok) : status_(code) {} // NOLINT(google-explicit-constructor)

    /// A response with a body and its media type.
    response(weir::status code, std::string body, std::string_view content_type = "text/plain; charset=utf-8")
        : status_(code), body_(std::move(body)) {
        headers_.add("Content-Type", content_type); // the first field: nothing to replace
    }

    /// A response made of a head whose upgrade did not happen: same status, same headers, no body.
    response(weir::status code, weir::headers fields) : status_(code), headers_(std::move(fields)) {}

    weir::status status() const noexcept { return status_; }
    void set_status(weir::status code) noexcept { status_ = code; }

    weir::headers& headers() noexcept { return headers_; }
    const weir::headers& headers() const noexcept { return headers_; }

    std::string& body() noexcept { return body_; }
    const std::string& body() const noexcept { return body_; }
    void set_body(std::string body) { body_ = std::move(body); }

    /// Asks the final stage to close the connection after this response (sends Connection: close).
    void close_connection() noexcept { close_ = true; }
    bool closes_connection() const noexcept { return close_; }

private:
    weir::status status_;
    weir::headers headers_;
    std::string body_;
    bool close_ = false;
};

} // namespace weir
