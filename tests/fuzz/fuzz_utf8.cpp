// libFuzzer target: the incremental UTF-8 validator agrees with a straightforward decoder, whatever the split.

#include <weir/detail/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

// A reference decoder written for clarity, not speed (RFC 3629).
bool reference_valid(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::uint32_t cp;
        std::size_t n;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) cp = c & 0x1F, n = 1;
        else if ((c & 0xF0) == 0xE0) cp = c & 0x0F, n = 2;
        else if ((c & 0xF8) == 0xF0) cp = c & 0x07, n = 3;
        else return false;
        if (i + n >= s.size()) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false; // overlong
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view s(reinterpret_cast<const char*>(data), size);
    bool expected = reference_valid(s);
    if (weir::detail::is_valid_utf8(s) != expected) std::abort();
    // Split at every third of the input: the incremental result must not change.
    weir::detail::utf8_validator v;
    bool ok = v.feed(s.substr(0, size / 3)) && v.feed(s.substr(size / 3, size / 3)) && v.feed(s.substr(2 * (size / 3)));
    if ((ok && v.complete()) != expected) std::abort();
    return 0;
}
