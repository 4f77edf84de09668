#pragma once

// Incremental UTF-8 validation (RFC 3629): fails on the first byte that cannot start or continue a valid
// sequence (overlongs, surrogates, code points above U+10FFFF), so a WebSocket text message that goes wrong
// is refused without waiting for its end. A table-driven automaton, with runs of ASCII skipped eight bytes
// at a time: long messages are validated at memory speed.

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace weir::detail {

namespace utf8_tables {

// Byte classes: which bytes may follow in each state differ only by these ranges.
enum : std::uint8_t {
    ascii,          // 00..7F
    cont_80_8f,     // 80..8F
    cont_90_9f,     // 90..9F
    cont_a0_bf,     // A0..BF
    invalid,        // C0, C1, F5..FF
    lead2,          // C2..DF
    lead_e0,        // E0 (next A0..BF: no overlongs)
    lead3,          // E1..EC, EE, EF
    lead_ed,        // ED (next 80..9F: no surrogates)
    lead_f0,        // F0 (next 90..BF: no overlongs)
    lead4,          // F1..F3
    lead_f4,        // F4 (next 80..8F: nothing above U+10FFFF)
    class_count
};

// States: how many continuation bytes are still owed, and which range the next one must fall in.
enum : std::uint8_t {
    accept,   // between code points
    reject,   // not UTF-8; stays here
    need1,    // one continuation byte 80..BF
    need2,    // two continuation bytes 80..BF
    need3,    // three continuation bytes 80..BF
    after_e0, // A0..BF, then one more
    after_ed, // 80..9F, then one more
    after_f0, // 90..BF, then two more
    after_f4, // 80..8F, then two more
    state_count
};

constexpr std::array<std::uint8_t, 256> make_classes() {
    std::array<std::uint8_t, 256> c{};
    for (int b = 0; b < 256; ++b) {
        if (b < 0x80) c[b] = ascii;
        else if (b < 0x90) c[b] = cont_80_8f;
        else if (b < 0xA0) c[b] = cont_90_9f;
        else if (b < 0xC0) c[b] = cont_a0_bf;
        else if (b < 0xC2) c[b] = invalid;
        else if (b < 0xE0) c[b] = lead2;
        else if (b == 0xE0) c[b] = lead_e0;
        else if (b == 0xED) c[b] = lead_ed;
        else if (b < 0xF0) c[b] = lead3;
        else if (b == 0xF0) c[b] = lead_f0;
        else if (b < 0xF4) c[b] = lead4;
        else if (b == 0xF4) c[b] = lead_f4;
        else c[b] = invalid;
    }
    return c;
}

constexpr std::array<std::array<std::uint8_t, class_count>, state_count> make_transitions() {
    std::array<std::array<std::uint8_t, class_count>, state_count> t{};
    for (auto& row : t) row.fill(reject);
    t[accept][ascii] = accept;
    t[accept][lead2] = need1;
    t[accept][lead_e0] = after_e0;
    t[accept][lead3] = need2;
    t[accept][lead_ed] = after_ed;
    t[accept][lead_f0] = after_f0;
    t[accept][lead4] = need3;
    t[accept][lead_f4] = after_f4;
    for (auto cont : {cont_80_8f, cont_90_9f, cont_a0_bf}) {
        t[need1][cont] = accept;
        t[need2][cont] = need1;
        t[need3][cont] = need2;
    }
    t[after_e0][cont_a0_bf] = need1;
    t[after_ed][cont_80_8f] = need1;
    t[after_ed][cont_90_9f] = need1;
    t[after_f0][cont_90_9f] = need2;
    t[after_f0][cont_a0_bf] = need2;
    t[after_f4][cont_80_8f] = need2;
    return t;
}

inline constexpr auto classes = make_classes();
inline constexpr auto transitions = make_transitions();

} // namespace utf8_tables

class utf8_validator {
public:
    // Feeds more bytes; false as soon as the input cannot be valid UTF-8 (and from then on).
    bool feed(std::string_view bytes) noexcept {
        using namespace utf8_tables;
        auto p = reinterpret_cast<const unsigned char*>(bytes.data());
        auto end = p + bytes.size();
        std::uint8_t s = state_;
        while (p != end) {
            if (s == accept) {
                // Between code points: skip ASCII a word at a time.
                while (end - p >= 8) {
                    std::uint64_t w;
                    std::memcpy(&w, p, 8);
                    if (w & 0x8080808080808080ull) break;
                    p += 8;
                }
                while (p != end && *p < 0x80) ++p;
                if (p == end) break;
            }
            s = transitions[s][classes[*p++]];
            if (s == reject) break;
        }
        state_ = s;
        return s != reject;
    }
    // True if the input so far ends on a whole code point (and was valid).
    bool complete() const noexcept { return state_ == utf8_tables::accept; }
    void reset() noexcept { state_ = utf8_tables::accept; }

private:
    std::uint8_t state_ = utf8_tables::accept;
};

inline bool is_valid_utf8(std::string_view s) noexcept {
    utf8_validator v;
    return v.feed(s) && v.complete();
}

} // namespace weir::detail
