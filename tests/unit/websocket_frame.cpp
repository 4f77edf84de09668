// The WebSocket frame codec without sockets: every rule a client frame must follow, fed whole and byte by
// byte.

#include <weir/detail/websocket_frame.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using weir::detail::ws_event;

// A client frame: masked unless told otherwise.
std::string frame(std::uint8_t opcode, std::string_view payload, bool fin = true, int rsv = 0, bool masked = true,
                  std::uint32_t key = 0x37fa213d) {
    std::string f;
    f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv << 4) | opcode));
    std::uint8_t mask_bit = masked ? 0x80 : 0;
    std::uint64_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(mask_bit | n));
    } else if (n <= 0xffff) {
        f.push_back(static_cast<char>(mask_bit | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xff));
    } else {
        f.push_back(static_cast<char>(mask_bit | 127));
        for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    }
    std::uint8_t k[4] = {std::uint8_t(key >> 24), std::uint8_t(key >> 16), std::uint8_t(key >> 8), std::uint8_t(key)};
    if (masked) f.append(reinterpret_cast<const char*>(k), 4);
    for (std::size_t i = 0; i < payload.size(); ++i)
        f.push_back(masked ? static_cast<char>(payload[i] ^ k[i % 4]) : payload[i]);
    return f;
}

struct seen {
    ws_event::kind_type kind;
    std::string payload; // message data, ping/pong payload or close reason
    unsigned code = 0;
    bool binary = false;
};

// Feeds `bytes` in pieces of `piece` bytes (0: all at once) and collects the events.
std::vector<seen> read_all(std::string bytes, std::size_t piece = 0, std::size_t max_message = 1 << 20) {
    weir::detail::ws_frame_reader reader(max_message);
    std::vector<seen> out;
    std::size_t at = 0;
    while (at < bytes.size()) {
        std::size_t len = piece ? std::min(piece, bytes.size() - at) : bytes.size() - at;
        std::size_t end = at + len;
        while (at < end) {
            ws_event e;
            at += reader.feed(bytes.data() + at, end - at, e);
            if (e.kind == ws_event::none) continue;
            seen s{e.kind, {}, e.code, e.binary};
            if (e.kind == ws_event::message) s.payload = reader.take_message();
            else s.payload = std::string(e.kind == ws_event::fail ? e.why : e.payload);
            out.push_back(s);
        }
    }
    return out;
}

// The events, the same whether the bytes come at once, one at a time, or in pieces of 7.
std::vector<seen> read_every_way(const std::string& bytes, std::size_t max_message = 1 << 20) {
    auto whole = read_all(bytes, 0, max_message);
    for (std::size_t piece : {1, 7}) {
        auto split = read_all(bytes, piece, max_message);
        REQUIRE(split.size() == whole.size());
        for (std::size_t i = 0; i < whole.size(); ++i) {
            CHECK(split[i].kind == whole[i].kind);
            CHECK(split[i].payload == whole[i].payload);
            CHECK(split[i].code == whole[i].code);
        }
    }
    return whole;
}

unsigned fails_with(const std::string& bytes, std::size_t max_message = 1 << 20) {
    auto events = read_every_way(bytes, max_message);
    if (events.empty() || events.back().kind != ws_event::fail) return 0;
    return events.back().code;
}

std::string close_payload(unsigned code, std::string_view reason = {}) {
    std::string p;
    p.push_back(static_cast<char>(code >> 8));
    p.push_back(static_cast<char>(code & 0xff));
    p.append(reason);
    return p;
}

} // namespace

TEST_CASE("frame headers use the shortest length form: 7 bits, 16 bits, then 64 bits") {
    char h[10];
    CHECK(weir::detail::write_ws_frame_header(h, 0x1, 0) == 2);
    CHECK(static_cast<unsigned char>(h[0]) == 0x81);
    CHECK(h[1] == 0);
    CHECK(weir::detail::write_ws_frame_header(h, 0x2, 125) == 2);
    CHECK(h[1] == 125);
    CHECK(weir::detail::write_ws_frame_header(h, 0x2, 126) == 4);
    CHECK(h[1] == 126);
    CHECK(static_cast<unsigned char>(h[2]) == 0);
    CHECK(static_cast<unsigned char>(h[3]) == 126);
    CHECK(weir::detail::write_ws_frame_header(h, 0x2, 65535) == 4);
    CHECK(weir::detail::write_ws_frame_header(h, 0x2, 65536) == 10);
    CHECK(h[1] == 127);
    CHECK(static_cast<unsigned char>(h[7]) == 1);
    CHECK(static_cast<unsigned char>(h[8]) == 0);
    CHECK(weir::detail::write_ws_frame_header(h, 0x8, 2, true) == 2);
    CHECK(static_cast<unsigned char>(h[0]) == 0x88);
    CHECK(weir::detail::write_ws_frame_header(h, 0x1, 3, false) == 2);
    CHECK(static_cast<unsigned char>(h[0]) == 0x01);
}

TEST_CASE("unmasking gives the same bytes whatever the length, alignment and starting phase") {
    std::mt19937 rng(13);
    std::uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (std::size_t size : {0, 1, 3, 7, 8, 9, 15, 16, 17, 64, 1000}) {
        for (std::size_t phase = 0; phase < 4; ++phase) {
            std::string plain(size + 3, '\0');
            for (auto& c : plain) c = static_cast<char>(rng());
            std::string data = plain;
            for (std::size_t offset = 0; offset < 3; ++offset) {
                data = plain;
                weir::detail::ws_unmask(data.data() + offset, size, key, phase);
                bool same = true;
                for (std::size_t i = 0; i < size; ++i)
                    same = same && data[offset + i] == static_cast<char>(plain[offset + i] ^ key[(phase + i) & 3]);
                CHECK(same);
            }
        }
    }
}

TEST_CASE("masked text and binary messages are read whole, of every length form") {
    for (std::size_t size : {0, 1, 125, 126, 127, 65535, 65536, 100000}) {
        std::string text(size, 'x');
        auto events = read_all(frame(0x1, text) + frame(0x2, std::string(size, '\xff')));
        REQUIRE(events.size() == 2);
        CHECK(events[0].kind == ws_event::message);
        CHECK(!events[0].binary);
        CHECK(events[0].payload == text);
        CHECK(events[1].binary);
        CHECK(events[1].payload == std::string(size, '\xff'));
    }
    auto events = read_every_way(frame(0x1, "Hello") + frame(0x2, "\x01\x02\x03"));
    REQUIRE(events.size() == 2);
    CHECK(events[0].payload == "Hello");
    CHECK(events[1].payload == "\x01\x02\x03");
}

TEST_CASE("fragments make one message, with pings and pongs between them") {
    auto bytes = frame(0x1, "frag", false) + frame(0x9, "ping 1") + frame(0x0, "men", false) +
                 frame(0xA, "pong") + frame(0x0, "ted", true);
    auto events = read_every_way(bytes);
    REQUIRE(events.size() == 3);
    CHECK(events[0].kind == ws_event::ping);
    CHECK(events[0].payload == "ping 1");
    CHECK(events[1].kind == ws_event::pong);
    CHECK(events[2].kind == ws_event::message);
    CHECK(events[2].payload == "fragmented");
    // Empty fragments are fine, and an empty message too.
    events = read_every_way(frame(0x2, "", false) + frame(0x0, "", false) + frame(0x0, "", true) + frame(0x1, ""));
    REQUIRE(events.size() == 2);
    CHECK(events[0].binary);
    CHECK(events[0].payload.empty());
    CHECK(events[1].payload.empty());
}

TEST_CASE("a frame that breaks a framing rule fails with 1002") {
    CHECK(fails_with(frame(0x1, "not masked", true, 0, false)) == 1002);
    for (int rsv = 1; rsv < 8; ++rsv) {
        CHECK(fails_with(frame(0x1, "rsv", true, rsv)) == 1002);
        CHECK(fails_with(frame(0x9, "", true, rsv)) == 1002);
    }
    for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) CHECK(fails_with(frame(op, "")) == 1002);
    CHECK(fails_with(frame(0x9, std::string(126, 'p'))) == 1002);
    CHECK(fails_with(frame(0x9, "frag", false)) == 1002);
    CHECK(fails_with(frame(0x8, close_payload(1000), false)) == 1002);
    CHECK(fails_with(frame(0x0, "orphan")) == 1002);
    CHECK(fails_with(frame(0x1, "a", false) + frame(0x1, "b")) == 1002);
    CHECK(fails_with(frame(0x1, "a", false) + frame(0x2, "b")) == 1002);
    // A 64-bit length with its most significant bit set.
    std::string msb = "\x81\xff\x80";
    msb += std::string(7, '\0') + "abcd";
    CHECK(fails_with(msb) == 1002);
}

TEST_CASE("a rule broken in the first two bytes fails before the rest of the frame arrives") {
    weir::detail::ws_frame_reader reader(1024);
    std::string bytes = "\xC1\x85"; // RSV1 on a text frame; mask and payload never come
    ws_event e;
    reader.feed(bytes.data(), 2, e);
    CHECK(e.kind == ws_event::fail);
    CHECK(e.code == 1002);
    // Once failed, it reads nothing more.
    std::string more = frame(0x1, "late");
    CHECK(reader.feed(more.data(), more.size(), e) == more.size());
    CHECK(e.kind == ws_event::none);
}

TEST_CASE("text that is not UTF-8 fails with 1007 as soon as the bad byte arrives, even across fragments") {
    CHECK(fails_with(frame(0x1, "ok \xed\xa0\x80")) == 1007);
    CHECK(fails_with(frame(0x1, "\xce\xba\xe1", false) + frame(0x0, "\xbd\xb9 ok")) == 0); // split code point is fine
    CHECK(fails_with(frame(0x1, "abc\xe2\x82")) == 1007);                                   // ends inside a character
    CHECK(fails_with(frame(0x1, "abc\xe2", false) + frame(0x0, "\x82", true)) == 1007);
    CHECK(fails_with(frame(0x2, "\xff\xfe")) == 0); // binary is not checked
    // The failure comes while the first fragment's payload is still arriving.
    weir::detail::ws_frame_reader reader(1 << 20);
    std::string bytes = frame(0x1, std::string("good \xc0\xaf") + std::string(1000, 'x'), false);
    ws_event e;
    std::size_t used = reader.feed(bytes.data(), 20, e);
    CHECK(e.kind == ws_event::fail);
    CHECK(e.code == 1007);
    CHECK(used <= 20);
}

TEST_CASE("a message over the limit fails with 1009, counted across fragments, before its payload arrives") {
    CHECK(fails_with(frame(0x1, std::string(101, 'x')), 100) == 1009);
    CHECK(fails_with(frame(0x1, std::string(100, 'x')), 100) == 0);
    CHECK(fails_with(frame(0x2, std::string(60, 'x'), false) + frame(0x0, std::string(41, 'x')), 100) == 1009);
    weir::detail::ws_frame_reader reader(100);
    std::string head = frame(0x2, std::string(5000, 'x')).substr(0, 8); // the header alone
    ws_event e;
    reader.feed(head.data(), head.size(), e);
    CHECK(e.kind == ws_event::fail);
    CHECK(e.code == 1009);
}

TEST_CASE("close frames: a code and UTF-8 reason, none at all, or a 1002 / 1007 failure") {
    auto events = read_every_way(frame(0x8, close_payload(1000, "bye")));
    REQUIRE(events.size() == 1);
    CHECK(events[0].kind == ws_event::close);
    CHECK(events[0].code == 1000);
    CHECK(events[0].payload == "bye");
    events = read_every_way(frame(0x8, ""));
    REQUIRE(events.size() == 1);
    CHECK(events[0].code == 1005);
    CHECK(fails_with(frame(0x8, "\x03")) == 1002);
    for (unsigned code : {0u, 999u, 1004u, 1005u, 1006u, 1015u, 1016u, 1100u, 2000u, 2999u, 5000u, 65535u})
        CHECK(fails_with(frame(0x8, close_payload(code))) == 1002);
    for (unsigned code : {1000u, 1001u, 1002u, 1003u, 1007u, 1008u, 1009u, 1010u, 1011u, 1012u, 1013u, 1014u,
                          3000u, 3999u, 4000u, 4999u}) {
        events = read_every_way(frame(0x8, close_payload(code)));
        REQUIRE(events.size() == 1);
        CHECK(events[0].kind == ws_event::close);
        CHECK(events[0].code == code);
    }
    CHECK(fails_with(frame(0x8, close_payload(1000, "\xed\xa0\x80"))) == 1007);
    // Nothing after a close is read.
    events = read_every_way(frame(0x8, close_payload(1000)) + frame(0x1, "after"));
    CHECK(events.size() == 1);
}

TEST_CASE("a large payload can be read straight into the message, unmasked and checked in place") {
    std::string text;
    for (int i = 0; i < 5000; ++i) text += "\xce\xba\xe1\xbd\xb9";
    std::string bytes = frame(0x1, text);
    weir::detail::ws_frame_reader reader(1 << 20);
    ws_event e;
    std::size_t at = reader.feed(bytes.data(), 100, e); // header and the first bytes, as a buffered read would
    CHECK(e.kind == ws_event::none);
    CHECK(reader.payload_left() == text.size() - (100 - 8));
    while (reader.payload_left() > 0) {
        auto [dst, room] = reader.direct_window(777);
        REQUIRE(room > 0);
        std::size_t n = std::min<std::size_t>(room, 333); // a short read
        std::copy(bytes.data() + at, bytes.data() + at + n, dst);
        at += n;
        reader.commit_direct(n, e);
        if (reader.payload_left() > 0) CHECK(e.kind == ws_event::none);
    }
    CHECK(at == bytes.size());
    CHECK(e.kind == ws_event::message);
    CHECK(reader.take_message() == text);
}

TEST_CASE("a recycled buffer is reused for a message of similar size, not for a small one") {
    weir::detail::ws_frame_reader reader(1 << 20);
    std::string big(8000, 'b');
    const char* storage = big.data();
    std::size_t similar = big.capacity() * 3 / 4;
    reader.recycle(std::move(big));
    std::string bytes = frame(0x2, std::string(20, 's'));
    ws_event e;
    reader.feed(bytes.data(), bytes.size(), e);
    CHECK(reader.take_message().data() != storage);
    bytes = frame(0x2, std::string(similar, 'l'));
    reader.feed(bytes.data(), bytes.size(), e);
    auto m = reader.take_message();
    CHECK(m == std::string(similar, 'l'));
    CHECK(m.data() == storage);
}
