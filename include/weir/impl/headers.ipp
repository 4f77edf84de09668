#pragma once

// weir::headers' definitions: included by <weir/http/headers.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/http/headers.hpp>

namespace weir {

WEIR_DECL void headers::add(std::string_view name, std::string_view value) {
    check(name, value);
    make_room();
    fields_.emplace_back(name, value);
}

WEIR_DECL void headers::set(std::string_view name, std::string_view value) {
    check(name, value);
    auto it = std::find_if(fields_.begin(), fields_.end(), named{name});
    if (it == fields_.end()) {
        make_room();
        fields_.emplace_back(name, value);
        return;
    }
    it->second.assign(value);
    fields_.erase(std::remove_if(std::next(it), fields_.end(), named{name}), fields_.end());
}

WEIR_DECL std::size_t headers::erase(std::string_view name) {
    auto old = fields_.size();
    fields_.erase(std::remove_if(fields_.begin(), fields_.end(), named{name}), fields_.end());
    return old - fields_.size();
}

WEIR_DECL std::vector<std::string_view> headers::get_all(std::string_view name) const {
    std::vector<std::string_view> out;
    for (auto& f : fields_)
        if (detail::iequals(f.first, name)) out.emplace_back(f.second);
    return out;
}

WEIR_DECL bool headers::list_contains(std::string_view name, std::string_view token) const noexcept {
    for (auto& f : fields_)
        if (detail::iequals(f.first, name) && detail::list_contains(f.second, token)) return true;
    return false;
}

WEIR_DECL void headers::check(std::string_view name, std::string_view value) {
    if (!detail::is_token(name)) throw std::invalid_argument("weir: header name is not an HTTP token");
    if (!detail::is_field_value(value))
        throw std::invalid_argument("weir: header value holds a control character (CR, LF or NUL)");
    if (is_protocol_owned_header(name))
        throw protocol_header_error("weir: the " + std::string(name) +
                                    " header belongs to the final stage, which writes it; a stage "
                                    "cannot set it");
}

} // namespace weir
