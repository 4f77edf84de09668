#pragma once

// Definitions of weir::request_parser: included at the end of weir/http/parser.hpp (header-only), or compiled
// once by <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/detail/config.hpp>
#include <weir/http/parser.hpp>

#include <array>
#include <cstring>

namespace weir {

WEIR_DECL request_parser::request_parser(const http_limits& limits) noexcept : limits_(limits) {}

WEIR_DECL bool request_parser::head_complete() const noexcept { return phase_ != phase::head; }

WEIR_DECL bool request_parser::expects_continue() const noexcept {
    return expect_continue_ && (phase_ == phase::body || phase_ == phase::chunked);
}

WEIR_DECL std::size_t request_parser::decoded_bytes() const noexcept {
    if (phase_ != phase::chunked && phase_ != phase::trailers) return 0;
    return chunk_pos_ - head_end_;
}

WEIR_DECL void request_parser::discard_decoded() noexcept {
    if (phase_ == phase::chunked || phase_ == phase::trailers) chunk_pos_ = head_end_;
}

WEIR_DECL void request_parser::reset() noexcept {
    phase_ = phase::head;
    base_ = nullptr;
    start_ = line_start_ = scanned_ = head_end_ = 0;
    content_length_ = chunk_pos_ = chunk_left_ = trailer_count_ = chunk_ext_bytes_ = 0;
    in_chunk_data_ = expect_continue_ = false;
    // An idle keep-alive connection must not keep the last request's body: free it, do not just clear it.
    std::string().swap(chunked_body_);
}

// The connection may move its buffer between calls: views already handed out follow it.
WEIR_DECL void request_parser::rebase(std::string_view data, http_request& out) noexcept {
    const char* now = data.data();
    if (base_ == nullptr || base_ == now || phase_ == phase::head) {
        base_ = now;
        return;
    }
    auto move = [&](std::string_view& v) {
        if (!v.data()) return;
        v = std::string_view(now + (v.data() - base_), v.size());
    };
    move(out.method_);
    move(out.target_);
    move(out.path_);
    move(out.query_);
    for (auto& f : out.fields_) {
        move(f.name);
        move(f.value);
    }
    base_ = now;
}

WEIR_DECL parse_result request_parser::parse(std::string_view data, http_request& out) {
    rebase(data, out);
    switch (phase_) {
    case phase::head: {
        auto r = scan_head(data, out);
        if (r.state != parse_result::kind::incomplete || phase_ == phase::head) return r;
        return parse(data, out);
    }
    case phase::body:
        if (data.size() - head_end_ < content_length_) return {};
        out.body_ = data.substr(head_end_, content_length_);
        return complete(head_end_ + content_length_);
    case phase::chunked:
    case phase::trailers: return parse_chunked(data, out);
    case phase::done: break;
    }
    return fail(status::bad_request, "parser used after the end of a request");
}

// Finds the end of the head line by line, rejecting bare CR and bare LF as soon as they arrive, and
// enforcing the request-line and head limits before the whole head is buffered.
WEIR_DECL parse_result request_parser::scan_head(std::string_view data, http_request& out) {
    const char* p = data.data();
    // Empty lines before the request line are ignored (RFC 9112 section 2.2).
    while (start_ == line_start_ && scanned_ == start_) {
        if (data.size() - start_ >= 2 && p[start_] == '\r' && p[start_ + 1] == '\n') {
            start_ += 2;
            line_start_ = scanned_ = start_;
            if (start_ > 64) return fail(status::bad_request, "too many empty lines before the request");
            continue;
        }
        if (data.size() - start_ == 1 && p[start_] == '\r') return {};
        break;
    }
    while (scanned_ < data.size()) {
        const void* nl = std::memchr(p + scanned_, '\n', data.size() - scanned_);
        std::size_t end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - p) : data.size();
        if (nl && (end == line_start_ || p[end - 1] != '\r'))
            return fail(status::bad_request, "bare LF in the request head");
        // A CR anywhere but right before the LF is a bare CR.
        std::size_t check_to = nl ? end - 1 : (p[data.size() - 1] == '\r' ? data.size() - 1 : data.size());
        if (check_to > scanned_ && std::memchr(p + scanned_, '\r', check_to - scanned_))
            return fail(status::bad_request, "bare CR in the request head");
        if (!nl) {
            if (p[data.size() - 1] == '\r') scanned_ = data.size() - 1;
            else scanned_ = data.size();
            break;
        }
        std::size_t line_length = end - 1 - line_start_;
        if (line_start_ == start_ && line_length > limits_.max_request_line)
            return fail(status::uri_too_long, "request line too long");
        scanned_ = end + 1;
        if (line_length == 0) {
            head_end_ = end + 1;
            if (head_end_ - start_ > limits_.max_header_bytes)
                return fail(status::request_header_fields_too_large, "request head too large");
            return parse_head(data, out);
        }
        line_start_ = end + 1;
        if (scanned_ - start_ > limits_.max_header_bytes)
            return fail(status::request_header_fields_too_large, "request head too large");
    }
    // Incomplete: fail early on limits rather than waiting for bytes that cannot be accepted.
    if (line_start_ == start_ && data.size() - start_ > limits_.max_request_line + 2)
        return fail(status::uri_too_long, "request line too long");
    if (data.size() - start_ > limits_.max_header_bytes)
        return fail(status::request_header_fields_too_large, "request head too large");
    return {};
}

namespace detail {

constexpr bool is_target_char(char c) noexcept {
    auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && c != '#';
}

constexpr bool is_host_char(char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
    case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'': case '(': case ')':
    case '*': case '+': case ',': case ';': case '=': case ':': case '[': case ']': case '%': return true;
    default: return false;
    }
}

// Every request has a target and a Host: their bytes are checked by table, without a branch per byte.
template <bool (*Allowed)(char)>
constexpr std::array<bool, 256> make_char_table() {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = Allowed(static_cast<char>(c));
    return t;
}
inline constexpr std::array<bool, 256> target_table = make_char_table<is_target_char>();
inline constexpr std::array<bool, 256> host_table = make_char_table<is_host_char>();

inline bool all_in(const std::array<bool, 256>& table, std::string_view s) noexcept {
    bool ok = true;
    for (char c : s) ok &= table[static_cast<unsigned char>(c)];
    return ok;
}

// s[pos, pos + n) of a range already known to hold it: no bounds check, no call.
constexpr std::string_view slice(std::string_view s, std::size_t pos, std::size_t n) noexcept {
    return {s.data() + pos, n};
}

// 1*DIGIT without sign, space or list; false on overflow.
constexpr bool parse_decimal(std::string_view s, std::size_t& out) noexcept {
    if (s.empty() || s.size() > 18) return false;
    std::size_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::size_t>(c - '0');
    }
    out = v;
    return true;
}

constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), chunk-ext-val = token /
// quoted-string (RFC 9112 section 7.1.1). Whitespace is allowed only around ";" and "=": "5 " alone, or a
// trailing space after an extension, matches no rule and is refused.
inline bool is_chunk_ext(std::string_view s) noexcept {
    std::size_t i = 0;
    auto skip_bws = [&] {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    };
    auto token = [&] {
        std::size_t from = i;
        while (i < s.size() && is_token_char(s[i])) ++i;
        return i > from;
    };
    while (i < s.size()) {
        skip_bws();
        if (i == s.size() || s[i] != ';') return false;
        ++i;
        skip_bws();
        if (!token()) return false;
        std::size_t before = i;
        skip_bws();
        if (i == s.size() || s[i] != '=') {
            i = before; // the whitespace, if any, must precede the next ';'
            continue;
        }
        ++i;
        skip_bws();
        if (i < s.size() && s[i] == '"') {
            ++i;
            for (;;) {
                if (i == s.size()) return false;
                auto c = static_cast<unsigned char>(s[i]);
                if (c == '"') break;
                if (c == '\\') {
                    if (++i == s.size()) return false;
                    c = static_cast<unsigned char>(s[i]);
                    if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) return false;
                } else if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) {
                    return false;
                }
                ++i;
            }
            ++i;
        } else if (!token()) {
            return false;
        }
    }
    return true;
}

// Parses a field line "name: value" (no CRLF). Returns false if malformed.
inline bool parse_field_line(std::string_view line, request_field& field) noexcept {
    if (line.empty() || line.front() == ' ' || line.front() == '\t') return false; // obs-fold or empty name
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    auto name = slice(line, 0, colon);
    if (!is_token(name)) return false; // covers whitespace before the colon
    auto value = trim_ows(slice(line, colon + 1, line.size() - colon - 1));
    if (!is_field_value(value)) return false;
    field.name = name;
    field.value = value;
    return true;
}

} // namespace detail

WEIR_DECL parse_result request_parser::parse_head(std::string_view data, http_request& out) {
    using detail::iequals;
    const char* p = data.data();
    std::string_view head(p + start_, head_end_ - start_);
    // scan_head() has seen every line of the head end in CRLF, with no CR elsewhere: a line ends one byte
    // before its LF.
    auto first_end = head.find('\n') - 1;
    std::string_view line = detail::slice(head, 0, first_end);

    // request-line = method SP request-target SP HTTP-version
    auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return fail(status::bad_request, "malformed request line");
    auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return fail(status::bad_request, "malformed request line");
    auto method = detail::slice(line, 0, sp1);
    auto target = detail::slice(line, sp1 + 1, sp2 - sp1 - 1);
    auto version = detail::slice(line, sp2 + 1, line.size() - sp2 - 1);
    if (!detail::is_token(method)) return fail(status::bad_request, "invalid method");
    if (target.empty()) return fail(status::bad_request, "empty request target");
    if (!detail::all_in(detail::target_table, target))
        return fail(status::bad_request, "invalid character in request target");
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
        version[5] > '9' || version[7] < '0' || version[7] > '9')
        return fail(status::bad_request, "malformed HTTP version");
    if (version == "HTTP/1.1") out.version_ = 11;
    else if (version == "HTTP/1.0") out.version_ = 10;
    else return fail(status::http_version_not_supported, "unsupported HTTP version");

    std::string_view path_and_query;
    if (method == "CONNECT") return fail(status::not_implemented, "CONNECT is not supported");
    if (target.front() == '/') {
        path_and_query = target;
    } else if (target == "*") {
        if (method != "OPTIONS") return fail(status::bad_request, "asterisk-form is only for OPTIONS");
        path_and_query = target;
    } else {
        // absolute-form: scheme "://" authority path-abempty [ "?" query ]
        auto scheme_end = target.find("://");
        if (scheme_end == std::string_view::npos || scheme_end == 0 ||
            !(iequals(target.substr(0, scheme_end), "http") || iequals(target.substr(0, scheme_end), "https")))
            return fail(status::bad_request, "invalid request target");
        auto rest = target.substr(scheme_end + 3);
        auto slash = rest.find_first_of("/?");
        path_and_query = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    }
    auto q = path_and_query.find('?');
    out.method_ = method;
    out.target_ = target;
    out.path_ = path_and_query.substr(0, q);
    // An empty path-abempty ("http://h" or "http://h?q") is the path "/" (RFC 9110 section 4.2.3).
    if (out.path_.empty()) out.path_ = "/";
    out.query_ = q == std::string_view::npos ? std::string_view() : path_and_query.substr(q + 1);

    // Fields.
    out.fields_.clear();
    std::size_t host_count = 0;
    bool has_length = false, chunked = false;
    std::size_t length = 0;
    std::string_view rest = detail::slice(head, first_end + 2, head.size() - first_end - 2);
    while (rest.size() > 2) {
        auto end = rest.find('\n') - 1;
        auto field_line = detail::slice(rest, 0, end);
        rest.remove_prefix(end + 2);
        request_field f;
        if (!field_line.empty() && (field_line.front() == ' ' || field_line.front() == '\t'))
            return fail(status::bad_request, "obsolete line folding");
        if (!detail::parse_field_line(field_line, f)) return fail(status::bad_request, "malformed header field");
        if (out.fields_.size() >= limits_.max_header_count)
            return fail(status::request_header_fields_too_large, "too many header fields");
        out.fields_.push_back(f);

        if (iequals(f.name, "host")) {
            ++host_count;
            if (!detail::all_in(detail::host_table, f.value)) return fail(status::bad_request, "invalid Host");
        } else if (iequals(f.name, "content-length")) {
            std::size_t v = 0;
            if (!detail::parse_decimal(f.value, v)) return fail(status::bad_request, "invalid Content-Length");
            if (has_length && v != length) return fail(status::bad_request, "conflicting Content-Length");
            has_length = true;
            length = v;
        } else if (iequals(f.name, "transfer-encoding")) {
            std::string_view list = f.value;
            while (true) {
                auto comma = list.find(',');
                auto coding = detail::trim_ows(list.substr(0, comma));
                if (coding.empty()) return fail(status::bad_request, "empty transfer coding");
                if (chunked) return fail(status::bad_request, "chunked must be the last transfer coding");
                if (iequals(coding, "chunked")) chunked = true;
                else if (comma == std::string_view::npos) return fail(status::bad_request, "chunked must be the last transfer coding");
                else if (!detail::is_token(coding)) return fail(status::bad_request, "invalid transfer coding");
                else return fail(status::not_implemented, "unsupported transfer coding");
                if (comma == std::string_view::npos) break;
                list.remove_prefix(comma + 1);
            }
        } else if (iequals(f.name, "expect")) {
            if (!iequals(f.value, "100-continue")) return fail(status::expectation_failed, "unsupported Expect");
            expect_continue_ = out.version_ == 11;
        }
    }
    bool has_te = chunked;
    if (out.version_ == 11 && host_count != 1)
        return fail(status::bad_request, host_count == 0 ? "missing Host" : "more than one Host");
    if (host_count > 1) return fail(status::bad_request, "more than one Host");
    if (has_te && has_length) return fail(status::bad_request, "Content-Length with Transfer-Encoding");
    if (has_te && out.version_ == 10) return fail(status::bad_request, "Transfer-Encoding in HTTP/1.0");
    if (has_length && length > limits_.max_body_bytes) return fail(status::payload_too_large, "body too large");

    base_ = data.data();
    out.body_ = {};
    if (chunked) {
        phase_ = phase::chunked;
        chunk_pos_ = head_end_;
        return {};
    }
    if (has_length && length > 0) {
        content_length_ = length;
        phase_ = phase::body;
        return {};
    }
    expect_continue_ = false;
    return complete(head_end_);
}

// chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 section 7.1), decoded incrementally.
WEIR_DECL parse_result request_parser::parse_chunked(std::string_view data, http_request& out) {
    const char* p = data.data();
    while (true) {
        if (phase_ == phase::trailers) {
            auto end = data.find("\r\n", chunk_pos_);
            if (end == std::string_view::npos) {
                if (data.size() - chunk_pos_ > limits_.max_header_bytes)
                    return fail(status::request_header_fields_too_large, "trailer too large");
                return {};
            }
            auto line = data.substr(chunk_pos_, end - chunk_pos_);
            if (line.find('\r') != std::string_view::npos || line.find('\n') != std::string_view::npos)
                return fail(status::bad_request, "bare CR or LF in trailer");
            chunk_pos_ = end + 2;
            if (line.empty()) {
                out.body_ = chunked_body_;
                expect_continue_ = false;
                return complete(chunk_pos_);
            }
            request_field f;
            if (!detail::parse_field_line(line, f)) return fail(status::bad_request, "malformed trailer field");
            if (++trailer_count_ > limits_.max_header_count)
                return fail(status::request_header_fields_too_large, "too many trailer fields");
            continue;
        }
        if (in_chunk_data_) {
            std::size_t available = data.size() - chunk_pos_;
            std::size_t take = available < chunk_left_ ? available : chunk_left_;
            chunked_body_.append(p + chunk_pos_, take);
            chunk_pos_ += take;
            chunk_left_ -= take;
            if (chunk_left_ > 0) return {};
            if (data.size() - chunk_pos_ < 2) return {};
            if (p[chunk_pos_] != '\r' || p[chunk_pos_ + 1] != '\n')
                return fail(status::bad_request, "chunk data not followed by CRLF");
            chunk_pos_ += 2;
            in_chunk_data_ = false;
            continue;
        }
        // chunk-size [ chunk-ext ] CRLF
        std::size_t max_line = 16 + (limits_.max_chunk_ext_bytes - chunk_ext_bytes_);
        auto end = data.find("\r\n", chunk_pos_);
        if (end == std::string_view::npos) {
            if (data.size() - chunk_pos_ > max_line + 1)
                return fail(status::bad_request, "chunk extensions too long");
            // A non-hex byte where the size must be can be rejected before the line ends.
            if (data.size() > chunk_pos_ && detail::hex_value(p[chunk_pos_]) < 0)
                return fail(status::bad_request, "invalid chunk size");
            return {};
        }
        auto line = data.substr(chunk_pos_, end - chunk_pos_);
        std::size_t i = 0, size = 0;
        while (i < line.size() && detail::hex_value(line[i]) >= 0) {
            if (i >= 16) return fail(status::bad_request, "chunk size overflows");
            size = size * 16 + static_cast<std::size_t>(detail::hex_value(line[i]));
            ++i;
        }
        if (i == 0) return fail(status::bad_request, "invalid chunk size");
        auto ext = line.substr(i);
        chunk_ext_bytes_ += ext.size();
        if (chunk_ext_bytes_ > limits_.max_chunk_ext_bytes)
            return fail(status::bad_request, "chunk extensions too long");
        if (!detail::is_chunk_ext(ext)) return fail(status::bad_request, "invalid chunk extension");
        if (size > limits_.max_body_bytes || chunked_body_.size() + size > limits_.max_body_bytes)
            return fail(status::payload_too_large, "body too large");
        chunk_pos_ = end + 2;
        if (size == 0) {
            phase_ = phase::trailers;
            continue;
        }
        chunk_left_ = size;
        in_chunk_data_ = true;
    }
}

} // namespace weir
