#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace weir {

/// One Server-Sent Event (WHATWG HTML, "Server-sent events"). Empty fields are left out.
struct sse_event {
    std::optional<std::string> id; ///< the event's id (becomes the client's Last-Event-ID); "" resets it
    std::string event;             ///< the event type; empty means "message"
    std::string data;              ///< the payload; CR, LF and CRLF each start a new `data:` line
    std::optional<unsigned> retry; ///< the client's reconnection delay, in milliseconds
    std::string comment;           ///< a comment, ignored by clients (one `:` line per line)
};

namespace detail {

inline void append_lines(std::string& out, std::string_view prefix, std::string_view text) {
    // Every line terminator the spec knows (CRLF, CR, LF) ends a line, so no text can start a new field.
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || text[i] == '\r' || text[i] == '\n') {
            out += prefix;
            out.append(text.substr(start, i - start));
            out += '\n';
            if (i < text.size() && text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
            start = i + 1;
        }
    }
}

} // namespace detail

/// Encodes an event as it goes on the wire, ending with the blank line that dispatches it.
/// Throws std::invalid_argument if the id or the event type holds CR or LF, or the id holds NUL: those
/// would let the text inject fields of its own.
inline std::string encode(const sse_event& e) {
    auto check = [](std::string_view what, std::string_view value, bool no_nul) {
        if (value.find_first_of("\r\n") != std::string_view::npos)
            throw std::invalid_argument("weir: an SSE " + std::string(what) + " cannot contain CR or LF");
        if (no_nul && value.find('\0') != std::string_view::npos)
            throw std::invalid_argument("weir: an SSE " + std::string(what) + " cannot contain NUL");
    };
    std::string out;
    out.reserve(e.data.size() + e.event.size() + 32);
    if (!e.comment.empty()) detail::append_lines(out, ": ", e.comment);
    if (e.id) {
        check("id", *e.id, true);
        out += "id: ";
        out += *e.id;
        out += '\n';
    }
    if (!e.event.empty()) {
        check("event type", e.event, false);
        out += "event: ";
        out += e.event;
        out += '\n';
    }
    if (e.retry) {
        out += "retry: ";
        out += std::to_string(*e.retry);
        out += '\n';
    }
    if (!e.data.empty() || e.id || !e.event.empty()) detail::append_lines(out, "data: ", e.data);
    out += '\n';
    return out;
}

} // namespace weir
