// permessage-deflate: the negotiation answers (RFC 7692 section 7), the codec in the frame reader, fed whole and
// byte by byte, and a session that agreed on it, over a socket pair.

#include <weir/detail/websocket_deflate_negotiation.hpp>
#include <weir/detail/websocket_frame.hpp>

#if defined(WEIR_HAS_ZLIB)
#include <weir/detail/websocket_deflate.hpp>
#include <weir/websocket.hpp>

#include "socket_pair.hpp"

#include <asio/io_context.hpp>
#include <asio/write.hpp>
#endif

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using weir::detail::ws_negotiate_deflate;

std::optional<std::string> answer(std::string_view offer, weir::websocket_deflate_options o = {}) {
    o.enabled = true;
    auto a = ws_negotiate_deflate(offer, o);
    if (!a) return std::nullopt;
    return a->response;
}

} // namespace

TEST_CASE("permessage-deflate: an offer without parameters is accepted as it is") {
    CHECK(answer("permessage-deflate") == "permessage-deflate");
    CHECK(answer("  permessage-deflate  ") == "permessage-deflate");
    auto a = ws_negotiate_deflate("permessage-deflate", {});
    REQUIRE(a);
    CHECK(!a->server_no_context_takeover);
    CHECK(!a->client_no_context_takeover);
    CHECK(a->server_window_bits == 15);
    CHECK(a->client_window_bits == 15);
}

TEST_CASE("permessage-deflate: each of the four parameters is honoured, never widened") {
    CHECK(answer("permessage-deflate; server_no_context_takeover") == "permessage-deflate; server_no_context_takeover");
    CHECK(answer("permessage-deflate; client_no_context_takeover") == "permessage-deflate; client_no_context_takeover");
    CHECK(answer("permessage-deflate; server_max_window_bits=10") == "permessage-deflate; server_max_window_bits=10");
    CHECK(answer("permessage-deflate; client_max_window_bits") == "permessage-deflate; client_max_window_bits=15");
    CHECK(answer("permessage-deflate; client_max_window_bits=9") == "permessage-deflate; client_max_window_bits=9");
    CHECK(answer("permessage-deflate;server_max_window_bits=\"12\"") == "permessage-deflate; server_max_window_bits=12");
    weir::websocket_deflate_options narrow;
    narrow.server_window_bits = 10;
    narrow.client_window_bits = 9;
    // The server narrows what the client allowed, and announces its own window even unasked.
    CHECK(answer("permessage-deflate; server_max_window_bits=12; client_max_window_bits", narrow) ==
          "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9");
    CHECK(answer("permessage-deflate; server_max_window_bits=9; client_max_window_bits=8", narrow) ==
          "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8");
    // client_max_window_bits is answered only if offered.
    CHECK(answer("permessage-deflate", narrow) == "permessage-deflate; server_max_window_bits=10");
    weir::websocket_deflate_options no_context;
    no_context.server_context_takeover = false;
    no_context.client_context_takeover = false;
    CHECK(answer("permessage-deflate", no_context) ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
}

TEST_CASE("permessage-deflate: an invalid offer is declined and the next one considered") {
    for (auto bad : {"permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=7",
                     "permessage-deflate; server_max_window_bits=16", "permessage-deflate; server_max_window_bits=010",
                     "permessage-deflate; server_max_window_bits=8", "permessage-deflate; client_max_window_bits=x",
                     "permessage-deflate; client_no_context_takeover=1",
                     "permessage-deflate; client_max_window_bits; client_max_window_bits",
                     "permessage-deflate; server_max_window_bits=\"1 0\"", "permessage-deflate; whatever",
                     "permessage-deflate; ", "permessage-deflate; x=\"unterminated", "deflate-frame", ""}) {
        CAPTURE(bad);
        CHECK(!answer(bad));
    }
    CHECK(answer("permessage-deflate; foo, permessage-deflate; server_no_context_takeover") ==
          "permessage-deflate; server_no_context_takeover");
    CHECK(answer("x-webkit-deflate-frame; no_context_takeover, ,permessage-deflate") == "permessage-deflate");
}

#if defined(WEIR_HAS_ZLIB)

namespace {

using weir::detail::ws_event;

std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin, bool rsv1) {
    std::string f;
    f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode));
    std::uint64_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xffff) {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xff));
    } else {
        f.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    }
    const unsigned char key[4] = {0x12, 0x9a, 0x4f, 0xe1};
    f.append(reinterpret_cast<const char*>(key), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
    return f;
}

struct seen {
    ws_event::kind_type kind;
    std::string data;
    unsigned code = 0;
};

// A reader with an inflater, fed `bytes` in pieces of `piece` bytes (0: at once).
std::vector<seen> read_all(std::string bytes, std::size_t piece, bool keep_context = true,
                           std::size_t max_message = 1 << 20, int window_bits = 15) {
    weir::detail::ws_inflater inflater(window_bits, keep_context);
    weir::detail::ws_frame_reader reader(max_message);
    reader.use_inflater(&inflater);
    std::vector<seen> out;
    std::size_t at = 0;
    while (at < bytes.size()) {
        std::size_t end = at + (piece ? std::min(piece, bytes.size() - at) : bytes.size() - at);
        while (at < end) {
            ws_event e;
            at += reader.feed(bytes.data() + at, end - at, e);
            if (e.kind == ws_event::message) out.push_back({e.kind, reader.take_message(), 0});
            else if (e.kind != ws_event::none) out.push_back({e.kind, std::string(e.payload), e.code});
            if (e.kind == ws_event::fail) return out;
        }
    }
    return out;
}

std::string text_of(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    const char* words[] = {"weir ", "deflate ", "h\xc3\xa9llo ", "w\xc3\xb6rld ", "frame ", "0123456789 "};
    std::string s;
    while (s.size() < size) s += words[rng() % 6];
    s.resize(size);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0xC0) s.pop_back(); // no cut sequence
    return s;
}

} // namespace

TEST_CASE("permessage-deflate: compressed messages read byte by byte equal those read at once") {
    weir::detail::ws_deflater deflater({6, 15, 8}, true);
    std::string stream;
    std::vector<std::string> messages;
    for (std::size_t size : {0, 1, 16, 125, 126, 4096, 70000}) {
        messages.push_back(text_of(size, static_cast<unsigned>(size)));
        auto compressed = deflater.compress(messages.back());
        // Every other message in three fragments, a ping between them.
        if (messages.size() % 2 == 0 && compressed.size() >= 3) {
            auto third = compressed.size() / 3;
            stream += client_frame(0x1, compressed.substr(0, third), false, true);
            stream += client_frame(0x9, "p", true, false);
            stream += client_frame(0x0, compressed.substr(third, third), false, false);
            stream += client_frame(0x0, compressed.substr(2 * third), true, false);
        } else {
            stream += client_frame(0x1, compressed, true, true);
        }
        stream += client_frame(0x2, "plain", true, false); // uncompressed messages mix in
    }
    for (std::size_t piece : {std::size_t(0), std::size_t(1), std::size_t(7), std::size_t(4096)}) {
        CAPTURE(piece);
        auto events = read_all(stream, piece);
        std::vector<std::string> texts;
        for (auto& e : events)
            if (e.kind == ws_event::message && e.data != "plain") texts.push_back(e.data);
        CHECK(texts == messages);
    }
}

TEST_CASE("permessage-deflate: with a narrow window the context between messages is its last bytes only") {
    // The client agreed to a 512-byte window and keeps its context: each message may refer to the one before.
    weir::detail::ws_deflater deflater({6, 9, 1}, true);
    std::vector<std::string> messages;
    std::string stream;
    for (std::size_t size : {300, 40, 2000, 0, 700, 5}) {
        messages.push_back(text_of(size, static_cast<unsigned>(size) + 11));
        stream += client_frame(0x1, deflater.compress(messages.back()), true, true);
    }
    for (std::size_t piece : {std::size_t(0), std::size_t(1), std::size_t(3)}) {
        CAPTURE(piece);
        auto events = read_all(stream, piece, true, 1 << 20, 9);
        std::vector<std::string> texts;
        for (auto& e : events) texts.push_back(e.data);
        CHECK(texts == messages);
    }
    // Between messages the session holds no zlib state, only the window's bytes.
    weir::detail::ws_inflater inflater(9, true);
    std::string out;
    auto first = weir::detail::ws_deflater({6, 9, 1}, true).compress(messages[0]);
    CHECK(inflater.inflate(first.data(), first.size(), true, out, 1 << 20) ==
          weir::detail::ws_message_inflater::result::ok);
    CHECK(out == messages[0]);
    CHECK(!inflater.allocated());
}

TEST_CASE("permessage-deflate: a reference beyond the agreed window gives one answer however the bytes arrive") {
    // A stream from a client that broke its 512-byte window: zlib alone accepts it read at once and refuses
    // it read byte by byte. The decompressor's answer must not depend on the network's cuts.
    weir::detail::ws_deflater wide({6, 15, 8}, false);
    std::string text;
    for (int i = 0; text.size() < 3000; ++i) text += "line " + std::to_string(i % 7) + std::string(90, 'a' + i % 5) + "\n";
    auto compressed = wide.compress(text);
    auto at_once = read_all(client_frame(0x1, compressed, true, true), 0, false, 1 << 20, 9);
    auto bytewise = read_all(client_frame(0x1, compressed, true, true), 1, false, 1 << 20, 9);
    REQUIRE(at_once.size() == 1);
    REQUIRE(bytewise.size() == 1);
    CHECK(at_once[0].kind == bytewise[0].kind);
    CHECK(at_once[0].data == bytewise[0].data);
    CHECK(at_once[0].data == text);
}

TEST_CASE("permessage-deflate: RSV1 on a control or continuation frame, or without the extension, is 1002") {
    weir::detail::ws_deflater deflater({6, 15, 8}, false);
    auto c = deflater.compress("hello hello hello");
    auto ping = read_all(client_frame(0x9, "x", true, true), 0);
    REQUIRE(ping.size() == 1);
    CHECK(ping[0].kind == ws_event::fail);
    CHECK(ping[0].code == 1002);
    auto cont = read_all(client_frame(0x1, c.substr(0, 3), false, true) + client_frame(0x0, c.substr(3), true, true), 0);
    REQUIRE(cont.size() == 1);
    CHECK(cont[0].code == 1002);
    weir::detail::ws_frame_reader plain(1 << 20);
    auto bytes = client_frame(0x1, c, true, true);
    ws_event e;
    plain.feed(bytes.data(), bytes.size(), e);
    CHECK(e.kind == ws_event::fail);
    CHECK(e.code == 1002);
}

TEST_CASE("permessage-deflate: a corrupt stream or bad UTF-8 inside is 1007") {
    auto garbage = read_all(client_frame(0x1, "\xff\xff\xff\xff garbage", true, true), 1);
    REQUIRE(garbage.size() == 1);
    CHECK(garbage[0].code == 1007);
    weir::detail::ws_deflater deflater({6, 15, 8}, false);
    auto bad_text = read_all(client_frame(0x1, deflater.compress("ok \xc3\x28 no"), true, true), 1);
    REQUIRE(bad_text.size() == 1);
    CHECK(bad_text[0].code == 1007);
    auto fine_binary = read_all(client_frame(0x2, deflater.compress("ok \xc3\x28 no"), true, true), 1);
    REQUIRE(fine_binary.size() == 1);
    CHECK(fine_binary[0].data == "ok \xc3\x28 no");
}

TEST_CASE("permessage-deflate: inflating stops at max_message_size (1009), not after the whole bomb") {
    weir::detail::ws_deflater deflater({9, 15, 9}, false);
    std::string zeros(64 << 20, '\0');
    auto bomb = deflater.compress(zeros);
    CHECK(bomb.size() < 128 * 1024);
    weir::detail::ws_inflater inflater(15, false);
    std::string out;
    auto r = inflater.inflate(bomb.data(), bomb.size(), true, out, 1 << 20);
    CHECK(r == weir::detail::ws_message_inflater::result::too_big);
    CHECK(out.size() <= (1 << 20) + 1);
    CHECK(out.capacity() < (4 << 20));
    auto events = read_all(client_frame(0x2, bomb, true, true), 0, false, 1 << 20);
    REQUIRE(events.size() == 1);
    CHECK(events[0].code == 1009);
    // Exactly at the limit is fine.
    auto at_limit = read_all(client_frame(0x2, deflater.compress(std::string(1 << 20, 'a')), true, true), 0, false,
                             1 << 20);
    REQUIRE(at_limit.size() == 1);
    CHECK(at_limit[0].data.size() == (1u << 20));
}

TEST_CASE("permessage-deflate: without context the decompressor is released after each message") {
    weir::detail::ws_deflater deflater({6, 15, 8}, false);
    auto c = deflater.compress("some text to compress, some text to compress");
    weir::detail::ws_inflater inflater(15, false);
    std::string out;
    CHECK(!inflater.allocated());
    CHECK(inflater.inflate(c.data(), c.size(), false, out, 1 << 20) == weir::detail::ws_message_inflater::result::ok);
    CHECK(inflater.allocated());
    CHECK(inflater.inflate(nullptr, 0, true, out, 1 << 20) == weir::detail::ws_message_inflater::result::ok);
    CHECK(out == "some text to compress, some text to compress");
    CHECK(!inflater.allocated());
    // The same bytes again inflate the same way: no context was needed.
    out.clear();
    CHECK(inflater.inflate(c.data(), c.size(), true, out, 1 << 20) == weir::detail::ws_message_inflater::result::ok);
    CHECK(out == "some text to compress, some text to compress");
}

TEST_CASE("permessage-deflate: a message shared by many sessions is compressed once per thread") {
    weir::detail::ws_deflate_settings settings{6, 12, 4};
    auto message = std::make_shared<const std::string>(text_of(4096, 3));
    auto a = weir::detail::ws_compress_once(message, settings);
    auto b = weir::detail::ws_compress_once(message, settings);
    CHECK(a == b);
    auto other_settings = weir::detail::ws_compress_once(message, {6, 15, 8});
    CHECK(other_settings != a);
    auto copy = std::make_shared<const std::string>(*message);
    auto c = weir::detail::ws_compress_once(copy, settings);
    CHECK(c != a);
    CHECK(*c == *a); // no context: equal input, equal output
    weir::detail::ws_inflater inflater(12, false);
    std::string out;
    CHECK(inflater.inflate(a->data(), a->size(), true, out, 1 << 20) == weir::detail::ws_message_inflater::result::ok);
    CHECK(out == *message);
}

// Also run against weir::separate, whose library is compiled without zlib: the session it compiles must still
// inflate and compress when the program's handshake agreed on the extension.
TEST_CASE("permessage-deflate: a session that agreed inflates what it reads and compresses what it sends") {
    asio::io_context io;
    socket_pair sockets(io);
    weir::websocket_options options;
    options.deflate.enabled = true;
    options.deflate.threshold = 16;
    auto agreement = ws_negotiate_deflate("permessage-deflate", options.deflate);
    REQUIRE(agreement);
    const std::string message = text_of(3000, 11);
    std::vector<std::string> seen;
    weir::websocket_callbacks cb;
    cb.on_message = [&](weir::websocket_connection& ws, weir::websocket_message m) {
        CHECK(ws.permessage_deflate());
        seen.push_back(m.data);
        CHECK(ws.try_send(std::move(m.data)));
    };
    auto link = std::make_shared<weir::upgraded_connection>(sockets.server, std::string());
    auto protocol = std::make_shared<weir::websocket>(weir::websocket_handshake{"key", "", agreement},
                                                      std::move(cb), options);
    bool ended = false;
    protocol->start(*link, [&](std::exception_ptr) {
        ended = true;
        sockets.server.close(); // as the connection does once the session ended
    });
    weir::detail::ws_deflater client_deflater({6, 15, 8}, true);
    asio::write(sockets.client, asio::buffer(client_frame(0x1, client_deflater.compress(message), true, true)));

    // The server's frames (unmasked): the answer, then its close. Once the answer is in, the client closes.
    std::string received;
    std::vector<std::pair<unsigned char, std::string>> frames; // first byte, payload
    char buffer[4096];
    std::function<void()> read = [&] {
        sockets.client.async_read_some(asio::buffer(buffer), [&](asio::error_code ec, std::size_t n) {
            if (ec) return;
            received.append(buffer, n);
            for (;;) {
                if (received.size() < 2) break;
                std::size_t size = static_cast<unsigned char>(received[1]) & 0x7f, at = 2;
                if (size == 126) {
                    if (received.size() < 4) break;
                    size = (std::size_t(static_cast<unsigned char>(received[2])) << 8) |
                           static_cast<unsigned char>(received[3]);
                    at = 4;
                }
                if (size == 127) { // the answer is compressed: never a 64-bit length
                    FAIL_CHECK("a frame longer than 64 KiB");
                    return;
                }
                if (received.size() < at + size) break;
                frames.emplace_back(static_cast<unsigned char>(received[0]), received.substr(at, size));
                received.erase(0, at + size);
                if (frames.size() == 1) {
                    asio::write(sockets.client, asio::buffer(client_frame(0x8, "\x03\xe8", true, false)));
                    sockets.client.shutdown(asio::socket_base::shutdown_send);
                }
            }
            read();
        });
    };
    read();
    io.run_for(std::chrono::seconds(5));

    CHECK(seen == std::vector<std::string>{message});
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].first == 0xC1); // FIN, RSV1 (compressed), text
    CHECK(frames[0].second.size() < message.size());
    weir::detail::ws_inflater inflater(15, true);
    std::string inflated;
    CHECK(inflater.inflate(frames[0].second.data(), frames[0].second.size(), true, inflated, 1 << 20) ==
          weir::detail::ws_message_inflater::result::ok);
    CHECK(inflated == message);
    CHECK(frames[1].first == 0x88); // the close, answered
    CHECK(ended);
}

#endif

