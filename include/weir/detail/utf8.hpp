#pragma once

// Incremental UTF-8 validation (RFC 3629): fails on the first byte that cannot start or continue a valid
// sequence (overlongs, surrogates, code points above U+10FFFF), so a WebSocket text message that goes wrong
// is refused without waiting for its end.

#include <cstdint>
#include <string_view>

namespace weir::detail {

class utf8_validator {
public:
    // Feeds more bytes; false as soon as the input cannot be valid UTF-8.
    bool feed(std::string_view bytes) noexcept {
        for (unsigned char c : bytes) {
            if (need_ == 0) {
                if (c < 0x80) continue;
                if (c >= 0xC2 && c <= 0xDF) need_ = 1, lo_ = 0x80, hi_ = 0xBF;
                else if (c == 0xE0) need_ = 2, lo_ = 0xA0, hi_ = 0xBF;
                else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need_ = 2, lo_ = 0x80, hi_ = 0xBF;
                else if (c == 0xED) need_ = 2, lo_ = 0x80, hi_ = 0x9F;
                else if (c == 0xF0) need_ = 3, lo_ = 0x90, hi_ = 0xBF;
                else if (c >= 0xF1 && c <= 0xF3) need_ = 3, lo_ = 0x80, hi_ = 0xBF;
                else if (c == 0xF4) need_ = 3, lo_ = 0x80, hi_ = 0x8F;
                else return false;
            } else {
                if (c < lo_ || c > hi_) return false;
                lo_ = 0x80, hi_ = 0xBF;
                --need_;
            }
        }
        return true;
    }
    // True if the input so far ends on a whole code point.
    bool complete() const noexcept { return need_ == 0; }
    void reset() noexcept { need_ = 0; }

private:
    int need_ = 0;
    unsigned char lo_ = 0x80, hi_ = 0xBF;
};

inline bool is_valid_utf8(std::string_view s) noexcept {
    utf8_validator v;
    return v.feed(s) && v.complete();
}

} // namespace weir::detail
