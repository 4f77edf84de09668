// libFuzzer target: the WebSocket frame reader gives the same events whether the client's bytes come at
// once, in pieces of a size the input picks, or partly through direct_window; and every event keeps the
// limits (message size, control payloads of at most 125 bytes, text in UTF-8, close codes that may be sent,
// failures as 1002, 1007 or 1009).

#include <weir/detail/utf8.hpp>
#include <weir/detail/websocket_frame.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using weir::detail::ws_event;

struct seen {
    ws_event::kind_type kind;
    std::string payload;
    unsigned code;
    bool binary;
    bool operator==(const seen&) const = default;
};

void check(bool ok) {
    if (!ok) std::abort();
}

void record(weir::detail::ws_frame_reader& reader, const ws_event& e, std::size_t max_message, std::vector<seen>& out) {
    if (e.kind == ws_event::none) return;
    seen s{e.kind, {}, e.code, e.binary};
    switch (e.kind) {
    case ws_event::message:
        s.payload = reader.take_message();
        check(s.payload.size() <= max_message);
        if (!e.binary) check(weir::detail::is_valid_utf8(s.payload));
        break;
    case ws_event::ping:
    case ws_event::pong: check(e.payload.size() <= 125); s.payload = std::string(e.payload); break;
    case ws_event::close:
        check(e.payload.size() <= 123);
        check(e.code == 1005 || weir::detail::ws_close_code_allowed(e.code));
        check(weir::detail::is_valid_utf8(e.payload));
        s.payload = std::string(e.payload);
        break;
    case ws_event::fail: check(e.code == 1002 || e.code == 1007 || e.code == 1009); break;
    case ws_event::none: break;
    }
    out.push_back(std::move(s));
}

// piece 0: all at once. direct: payloads of large frames go through direct_window in pieces of `piece`.
std::vector<seen> read_all(std::string bytes, std::size_t piece, std::size_t max_message, bool direct) {
    weir::detail::ws_frame_reader reader(max_message);
    std::vector<seen> out;
    std::size_t at = 0;
    while (at < bytes.size()) {
        ws_event e;
        if (direct && reader.payload_left() > 0) {
            auto [dst, room] = reader.direct_window(std::max<std::size_t>(piece, 1));
            std::size_t n = std::min(room, bytes.size() - at);
            std::copy(bytes.data() + at, bytes.data() + at + n, dst);
            at += n;
            reader.commit_direct(n, e);
        } else {
            std::size_t len = piece ? std::min(piece, bytes.size() - at) : bytes.size() - at;
            std::size_t used = reader.feed(bytes.data() + at, len, e);
            check(used <= len);
            check(used > 0 || e.kind != ws_event::none);
            at += used;
        }
        record(reader, e, max_message, out);
        if (!out.empty() && (out.back().kind == ws_event::fail || out.back().kind == ws_event::close)) break;
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    // The first byte picks the message limit, the second the piece size; the rest is what the client sent.
    std::size_t max_message = std::size_t(1) << (data[0] % 17); // 1 B .. 64 KiB
    std::size_t piece = 1 + data[1] % 64;
    std::string bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
    auto whole = read_all(bytes, 0, max_message, false);
    check(read_all(bytes, 1, max_message, false) == whole);
    check(read_all(bytes, piece, max_message, false) == whole);
    check(read_all(bytes, piece, max_message, true) == whole);
    return 0;
}
