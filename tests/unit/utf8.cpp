// The UTF-8 validator against Markus Kuhn's UTF-8 decoder stress test (the cases Autobahn's category 6
// sends), an exhaustive comparison with a plain decoder, and incremental feeding.

#include <weir/detail/utf8.hpp>
#include <weir/utf8.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::string bytes(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) s.push_back(static_cast<char>(b));
    return s;
}

bool valid(const std::string& s) { return weir::detail::is_valid_utf8(s); }

// Valid in one piece, and in every split into two pieces, and byte by byte.
bool valid_however_split(const std::string& s) {
    bool whole = valid(s);
    for (std::size_t cut = 0; cut <= s.size(); ++cut) {
        weir::detail::utf8_validator v;
        bool ok = v.feed(std::string_view(s).substr(0, cut)) && v.feed(std::string_view(s).substr(cut)) && v.complete();
        if (ok != whole) return !whole; // disagreement: report the opposite of `whole`, failing the check
    }
    weir::detail::utf8_validator v;
    bool ok = true;
    for (char c : s) ok = ok && v.feed(std::string_view(&c, 1));
    if ((ok && v.complete()) != whole) return !whole;
    return whole;
}

// Written for clarity, not speed (RFC 3629).
bool reference_valid(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::uint32_t cp;
        std::size_t n;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if ((c & 0xE0) == 0xC0) cp = c & 0x1F, n = 1;
        else if ((c & 0xF0) == 0xE0) cp = c & 0x0F, n = 2;
        else if ((c & 0xF8) == 0xF0) cp = c & 0x07, n = 3;
        else return false;
        if (i + n >= s.size()) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

} // namespace

TEST_CASE("UTF-8 (Kuhn 1): correct text is accepted, however it is split") {
    CHECK(valid_however_split(bytes({0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5}))); // κόσμε
    CHECK(valid_however_split("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"));
    CHECK(valid_however_split(""));
    CHECK(valid_however_split(std::string(100, 'a') + "\xe2\x82\xac" + std::string(37, 'b')));
}

TEST_CASE("UTF-8 (Kuhn 2): the first and last code points of each length are accepted; longer forms are not") {
    // 2.1 first of each length
    CHECK(valid_however_split(bytes({0x00})));
    CHECK(valid_however_split(bytes({0xC2, 0x80})));
    CHECK(valid_however_split(bytes({0xE0, 0xA0, 0x80})));
    CHECK(valid_however_split(bytes({0xF0, 0x90, 0x80, 0x80})));
    CHECK(!valid_however_split(bytes({0xF8, 0x88, 0x80, 0x80, 0x80})));
    CHECK(!valid_however_split(bytes({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80})));
    // 2.2 last of each length
    CHECK(valid_however_split(bytes({0x7F})));
    CHECK(valid_however_split(bytes({0xDF, 0xBF})));
    CHECK(valid_however_split(bytes({0xEF, 0xBF, 0xBF})));
    CHECK(!valid_however_split(bytes({0xF7, 0xBF, 0xBF, 0xBF})));
    CHECK(!valid_however_split(bytes({0xFB, 0xBF, 0xBF, 0xBF, 0xBF})));
    CHECK(!valid_however_split(bytes({0xFD, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF})));
    // 2.3 other boundaries
    CHECK(valid_however_split(bytes({0xED, 0x9F, 0xBF}))); // U+D7FF
    CHECK(valid_however_split(bytes({0xEE, 0x80, 0x80}))); // U+E000
    CHECK(valid_however_split(bytes({0xEF, 0xBF, 0xBD}))); // U+FFFD
    CHECK(valid_however_split(bytes({0xF4, 0x8F, 0xBF, 0xBF}))); // U+10FFFF
    CHECK(!valid_however_split(bytes({0xF4, 0x90, 0x80, 0x80}))); // U+110000
}

TEST_CASE("UTF-8 (Kuhn 3): unexpected continuations, lonely and truncated starts, impossible bytes are refused") {
    // 3.1 every continuation byte alone, and runs of them
    for (int b = 0x80; b <= 0xBF; ++b) CHECK(!valid_however_split(bytes({b})));
    CHECK(!valid_however_split(bytes({0x80, 0xBF})));
    CHECK(!valid_however_split(bytes({0x80, 0xBF, 0x80, 0xBF, 0x80, 0xBF, 0x80})));
    // 3.2 every start byte followed by a space
    for (int b = 0xC0; b <= 0xFD; ++b) CHECK(!valid_however_split(bytes({b, 0x20})));
    // 3.3 sequences missing their last byte, and 3.4 all of them together
    std::vector<std::string> truncated = {
        bytes({0xC0}),
        bytes({0xE0, 0x80}),
        bytes({0xF0, 0x80, 0x80}),
        bytes({0xF8, 0x80, 0x80, 0x80}),
        bytes({0xFC, 0x80, 0x80, 0x80, 0x80}),
        bytes({0xDF}),
        bytes({0xEF, 0xBF}),
        bytes({0xF7, 0xBF, 0xBF}),
        bytes({0xFB, 0xBF, 0xBF, 0xBF}),
        bytes({0xFD, 0xBF, 0xBF, 0xBF, 0xBF}),
    };
    std::string all;
    for (auto& t : truncated) {
        CHECK(!valid_however_split(t));
        CHECK(!valid_however_split("text " + t));
        all += t;
    }
    CHECK(!valid_however_split(all));
    // Correct prefixes that merely stop early are incomplete, not wrong, until the message ends.
    weir::detail::utf8_validator v;
    CHECK(v.feed(bytes({0xF0, 0x9F, 0x98})));
    CHECK(!v.complete());
    // 3.5 impossible bytes
    CHECK(!valid_however_split(bytes({0xFE})));
    CHECK(!valid_however_split(bytes({0xFF})));
    CHECK(!valid_however_split(bytes({0xFE, 0xFE, 0xFF, 0xFF})));
}

TEST_CASE("UTF-8 (Kuhn 4): overlong forms of '/', of the largest values and of NUL are refused") {
    for (auto s : {bytes({0xC0, 0xAF}), bytes({0xE0, 0x80, 0xAF}), bytes({0xF0, 0x80, 0x80, 0xAF}),
                   bytes({0xF8, 0x80, 0x80, 0x80, 0xAF}), bytes({0xFC, 0x80, 0x80, 0x80, 0x80, 0xAF}),
                   bytes({0xC1, 0xBF}), bytes({0xE0, 0x9F, 0xBF}), bytes({0xF0, 0x8F, 0xBF, 0xBF}),
                   bytes({0xF8, 0x87, 0xBF, 0xBF, 0xBF}), bytes({0xFC, 0x83, 0xBF, 0xBF, 0xBF, 0xBF}),
                   bytes({0xC0, 0x80}), bytes({0xE0, 0x80, 0x80}), bytes({0xF0, 0x80, 0x80, 0x80}),
                   bytes({0xF8, 0x80, 0x80, 0x80, 0x80}), bytes({0xFC, 0x80, 0x80, 0x80, 0x80, 0x80})})
        CHECK(!valid_however_split(s));
}

TEST_CASE("UTF-8 (Kuhn 5): surrogates are refused, noncharacters accepted") {
    for (int second : {0xA0, 0xAD, 0xAE, 0xAF, 0xB0, 0xBE, 0xBF})
        CHECK(!valid_however_split(bytes({0xED, second, 0x80})));
    CHECK(!valid_however_split(bytes({0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80})));
    CHECK(!valid_however_split(bytes({0xED, 0xAF, 0xBF, 0xED, 0xBF, 0xBF})));
    CHECK(valid_however_split(bytes({0xEF, 0xBF, 0xBE}))); // U+FFFE
    CHECK(valid_however_split(bytes({0xEF, 0xBF, 0xBF}))); // U+FFFF
    CHECK(valid_however_split(bytes({0xEF, 0xB7, 0x90}))); // U+FDD0
}

TEST_CASE("UTF-8 validation agrees with a plain decoder on every one- to three-byte input") {
    std::string s;
    int disagreements = 0;
    for (int a = 0; a < 256; ++a) {
        s = bytes({a});
        disagreements += valid(s) != reference_valid(s);
        for (int b = 0; b < 256; ++b) {
            s = bytes({a, b});
            disagreements += valid(s) != reference_valid(s);
            if (a < 0xE0 || a > 0xF4) continue; // only three- and four-byte leads are interesting further
            for (int c = 0; c < 256; ++c) {
                s = bytes({a, b, c});
                disagreements += valid(s) != reference_valid(s);
                for (int d : {0x00, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF}) {
                    s = bytes({a, b, c, d});
                    disagreements += valid(s) != reference_valid(s);
                }
            }
        }
    }
    CHECK(disagreements == 0);
}

TEST_CASE("UTF-8 validation agrees with a plain decoder on random text, however it is fed") {
    std::mt19937 rng(6455);
    // Mostly valid text with rare damage, so both answers occur and the ASCII fast path is exercised.
    const std::vector<std::string> pieces = {"a", "hello world ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                             "\xed\x9f\xbf", "\xf4\x8f\xbf\xbf", "0123456789abcdef"};
    int checked = 0, valid_count = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string s;
        int n = static_cast<int>(rng() % 40);
        for (int i = 0; i < n; ++i) s += pieces[rng() % pieces.size()];
        if (!s.empty() && rng() % 3 == 0) s[rng() % s.size()] = static_cast<char>(rng() % 256);
        bool expected = reference_valid(s);
        valid_count += expected;
        REQUIRE(valid(s) == expected);
        weir::detail::utf8_validator v;
        bool ok = true;
        for (std::size_t at = 0; at < s.size();) {
            std::size_t len = std::min<std::size_t>(s.size() - at, 1 + rng() % 11);
            ok = v.feed(std::string_view(s).substr(at, len)) && ok;
            at += len;
        }
        REQUIRE((ok && v.complete()) == expected);
        ++checked;
    }
    CHECK(checked == 3000);
    CHECK(valid_count > 500);
    CHECK(valid_count < 2900);
}

TEST_CASE("the public is_valid_utf8 is the validator's answer") {
    CHECK(weir::is_valid_utf8("gr\xc3\xbc\xc3\x9f"
                              "e"));
    CHECK(!weir::is_valid_utf8("\xc3"));
}
