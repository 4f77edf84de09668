// libFuzzer target: the inflate path of the WebSocket codec. The input's bytes are a compressed payload,
// framed as a compressed message (RSV1, fragmented where the input says) and read at once, byte by byte and
// in pieces: every reading gives the same message, or fails with 1007 or 1009 (which of the two may depend
// on how far the bytes had come); a message never exceeds the limit and text is UTF-8. The same bytes fed to
// the decompressor alone never make it produce more than the limit allows; and whatever the input, it
// survives compression and decompression unchanged.

#include <weir/detail/utf8.hpp>
#include <weir/detail/websocket_deflate.hpp>
#include <weir/detail/websocket_frame.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using weir::detail::ws_event;

void check(bool ok) {
    if (!ok) std::abort();
}

std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin, bool rsv1) {
    std::string f;
    f.push_back(static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode));
    std::uint64_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(0x80 | n));
    } else {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xff));
    }
    f.append("\0\0\0\0", 4); // a zero mask
    f.append(payload);
    return f;
}

struct outcome {
    bool failed = false;
    unsigned code = 0;
    std::string message;
};

outcome read_all(const std::string& bytes, std::size_t piece, std::size_t max_message, int window_bits,
                 bool keep_context, bool binary) {
    weir::detail::ws_inflater inflater(window_bits, keep_context);
    weir::detail::ws_frame_reader reader(max_message);
    reader.use_inflater(&inflater);
    std::string copy = bytes; // the reader unmasks in place
    outcome o;
    std::size_t at = 0;
    while (at < copy.size()) {
        ws_event e;
        std::size_t len = piece ? std::min(piece, copy.size() - at) : copy.size() - at;
        std::size_t used = reader.feed(copy.data() + at, len, e);
        check(used <= len);
        at += used;
        if (e.kind == ws_event::message) {
            o.message = reader.take_message();
            check(o.message.size() <= max_message);
            if (!binary) check(weir::detail::is_valid_utf8(o.message));
            return o;
        }
        if (e.kind == ws_event::fail) {
            check(e.code == 1007 || e.code == 1009);
            o.failed = true;
            o.code = e.code;
            return o;
        }
        check(e.kind == ws_event::none);
    }
    return o;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    // Byte 0: the limit, text or binary, context kept; byte 1: window bits and piece size; byte 2: where the
    // payload is cut into fragments. The rest is the compressed payload.
    std::size_t max_message = std::size_t(1) << (data[0] % 18); // 1 B .. 128 KiB
    bool binary = data[0] & 0x80;
    bool keep_context = data[0] & 0x40;
    int window_bits = 9 + data[1] % 7;
    std::size_t piece = 1 + (data[1] >> 3);
    std::string_view payload(reinterpret_cast<const char*>(data) + 3, size - 3);
    std::size_t cut = payload.empty() ? 0 : data[2] % (payload.size() + 1);
    std::uint8_t opcode = binary ? 0x2 : 0x1;
    std::string bytes = cut > 0 && cut < payload.size()
                            ? client_frame(opcode, payload.substr(0, cut), false, true) +
                                  client_frame(0x0, payload.substr(cut), true, false)
                            : client_frame(opcode, payload, true, true);
    auto whole = read_all(bytes, 0, max_message, window_bits, keep_context, binary);
    for (std::size_t p : {std::size_t(1), piece}) {
        auto pieces = read_all(bytes, p, max_message, window_bits, keep_context, binary);
        check(pieces.failed == whole.failed);
        if (!whole.failed) check(pieces.message == whole.message);
    }

    // The decompressor alone: bounded however much the bytes would inflate to.
    {
        weir::detail::ws_inflater inflater(window_bits, keep_context);
        std::string out;
        auto r = inflater.inflate(payload.data(), payload.size(), true, out, max_message);
        check(out.size() <= max_message + 1);
        if (r == weir::detail::ws_message_inflater::result::ok) check(out.size() <= max_message);
    }

    // Any bytes survive a round trip, with or without context.
    {
        weir::detail::ws_deflater deflater({1 + data[1] % 9, window_bits, 1 + data[2] % 9}, keep_context);
        weir::detail::ws_inflater inflater(window_bits, keep_context);
        for (int round = 0; round < 2; ++round) {
            auto compressed = deflater.compress(payload);
            std::string out;
            auto r = inflater.inflate(compressed.data(), compressed.size(), true, out, payload.size() + 1);
            check(r == weir::detail::ws_message_inflater::result::ok);
            check(out == payload);
        }
    }
    return 0;
}
