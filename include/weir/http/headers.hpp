#pragma once

#include <weir/detail/chars.hpp>
#include <weir/detail/config.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace weir {

/// Thrown when a stage sets a header that only the final stage may write (framing and upgrade headers).
class protocol_header_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// True for the headers that frame a message or an upgrade: weir's final stage writes them, so no stage can
/// break a handshake or the message framing by setting them.
constexpr bool is_protocol_owned_header(std::string_view name) noexcept {
    using detail::iequals;
    // By length first: every set() and add() asks, and most names match no length here.
    switch (name.size()) {
    case 7: return iequals(name, "upgrade");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14: return iequals(name, "content-length");
    case 17: return iequals(name, "transfer-encoding");
    case 20: return iequals(name, "sec-websocket-accept");
    case 22: return iequals(name, "sec-websocket-protocol");
    case 24: return iequals(name, "sec-websocket-extensions");
    default: return false;
    }
}

/// The header fields of a response: an ordered multimap with case-insensitive names, so several Set-Cookie
/// or Vary fields survive side by side.
class headers {
public:
    using field = std::pair<std::string, std::string>;
    using const_iterator = std::vector<field>::const_iterator;

    /// Appends a field, keeping any others of the same name (Set-Cookie, Vary, Link ...).
    /// Throws protocol_header_error for a framing or upgrade header, std::invalid_argument for a name that
    /// is not a token or a value with CR, LF or NUL (response splitting).
    WEIR_DECL void add(std::string_view name, std::string_view value);

    /// Replaces every field of this name with one field.
    WEIR_DECL void set(std::string_view name, std::string_view value);

    /// Removes every field of this name; returns how many were removed.
    WEIR_DECL std::size_t erase(std::string_view name);

    /// The value of the first field of this name, if any.
    std::optional<std::string_view> get(std::string_view name) const noexcept {
        auto it = std::find_if(fields_.begin(), fields_.end(), named{name});
        if (it == fields_.end()) return std::nullopt;
        return std::string_view(it->second);
    }

    /// Every value of this name, in order.
    WEIR_DECL std::vector<std::string_view> get_all(std::string_view name) const;

    /// True if a field of this name is present.
    bool contains(std::string_view name) const noexcept { return get(name).has_value(); }

    /// True if a field of this name holds `token` in its comma-separated list (Vary: Origin ...).
    WEIR_DECL bool list_contains(std::string_view name, std::string_view token) const noexcept;

    std::size_t size() const noexcept { return fields_.size(); }
    bool empty() const noexcept { return fields_.empty(); }
    const_iterator begin() const noexcept { return fields_.begin(); }
    const_iterator end() const noexcept { return fields_.end(); }
    void clear() noexcept { fields_.clear(); }

private:
    struct named {
        std::string_view name;
        bool operator()(const field& f) const noexcept { return detail::iequals(f.first, name); }
    };

    WEIR_DECL static void check(std::string_view name, std::string_view value);

    // A response usually gets a handful of fields, one at a time from several stages: room for them all at the
    // first, instead of growing (and moving every field) at the 2nd, 3rd and 5th.
    void make_room() {
        if (fields_.capacity() == 0) fields_.reserve(8);
    }

    std::vector<field> fields_;
};

} // namespace weir

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/headers.ipp>
#endif
