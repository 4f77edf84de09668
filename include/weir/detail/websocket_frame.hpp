#pragma once

// The WebSocket frame codec (RFC 6455 section 5), free of I/O: a reader that turns the bytes a client sent
// into messages and control frames, enforcing every rule a frame must follow, and a writer of server frame
// headers. The session feeds it whatever the socket gave; it is tested byte by byte.

#include <weir/detail/utf8.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace weir::detail {

enum ws_opcode : std::uint8_t {
    ws_continuation = 0x0,
    ws_text = 0x1,
    ws_binary = 0x2,
    ws_close = 0x8,
    ws_ping = 0x9,
    ws_pong = 0xA,
};

// Close codes a close frame may carry (RFC 6455 section 7.4 and the IANA registry): 1000-1003, 1007-1014,
// and 3000-4999 for libraries and applications. 1004 is reserved; 1005, 1006 and 1015 only describe closes
// and never appear in a frame.
constexpr bool ws_close_code_allowed(unsigned code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// Writes the header of an unmasked (server) frame into `out`; returns its size (2, 4 or 10 bytes).
inline std::size_t write_ws_frame_header(char* out, std::uint8_t opcode, std::uint64_t size, bool fin = true) noexcept {
    out[0] = static_cast<char>((fin ? 0x80 : 0x00) | opcode);
    if (size < 126) {
        out[1] = static_cast<char>(size);
        return 2;
    }
    if (size <= 0xffff) {
        out[1] = 126;
        out[2] = static_cast<char>(size >> 8);
        out[3] = static_cast<char>(size & 0xff);
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<char>((size >> (56 - 8 * i)) & 0xff);
    return 10;
}

// XORs `size` bytes with the masking key, starting `phase` bytes into it; eight bytes per step.
inline void ws_unmask(char* data, std::size_t size, const std::uint8_t (&key)[4], std::size_t phase) noexcept {
    std::uint8_t rotated[8];
    for (int i = 0; i < 8; ++i) rotated[i] = key[(phase + i) & 3];
    std::uint64_t k;
    std::memcpy(&k, rotated, 8);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        std::uint64_t v;
        std::memcpy(&v, data + i, 8);
        v ^= k;
        std::memcpy(data + i, &v, 8);
    }
    for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ rotated[i & 7]);
}

// Decompresses the payloads of messages whose first frame has RSV1 set (permessage-deflate). Implemented
// with zlib (websocket_deflate.hpp); the frame reader knows only this.
class ws_message_inflater {
public:
    enum class result : std::uint8_t { ok, too_big, corrupt };
    // Inflates `size` bytes of a message's compressed payload, appending to `out`, which may grow to
    // `limit` bytes and no further (too_big as soon as more would come out). `message_end`: the message's
    // last bytes were given (`size` may be 0): the stream is flushed.
    virtual result inflate(const char* in, std::size_t size, bool message_end, std::string& out,
                           std::size_t limit) = 0;

protected:
    ~ws_message_inflater() = default;
};

// What the reader found. Views point into the reader and stay valid until the next call.
struct ws_event {
    enum kind_type : std::uint8_t { none, message, ping, pong, close, fail };
    kind_type kind = none;
    std::string_view payload; // ping and pong: the payload; close: the reason
    unsigned short code = 0;  // close: the peer's code (1005 when it sent none); fail: the code to close with
    std::string_view why;     // fail: what rule the client broke
    bool binary = false;      // message: binary rather than text
};

// Reads the frames of a client, unmasking their payloads in place. Data frames are reassembled into
// messages, text validated as it arrives (a bad byte fails the read before the message ends), control
// frames reported as they come, even between the fragments of a message.
class ws_frame_reader {
public:
    explicit ws_frame_reader(std::size_t max_message_size) : max_message_(max_message_size) {}

    // permessage-deflate was negotiated: messages whose first frame has RSV1 set are inflated with
    // `inflater` (which must outlive the reader), bounded by the message size limit as they inflate.
    void use_inflater(ws_message_inflater* inflater) noexcept { inflater_ = inflater; }

    // Consumes bytes from [data, data + size), unmasking them in place. Stops right after the first event
    // and returns how many bytes it consumed; the caller feeds the rest next. After a `fail` or `close`
    // event it reports nothing more and swallows whatever it is given.
    std::size_t feed(char* data, std::size_t size, ws_event& event) {
        event = ws_event{};
        std::size_t used = 0;
        while (used < size && event.kind == ws_event::none) {
            switch (state_) {
            case state::header: used += read_header(data + used, size - used, event); break;
            case state::data_payload: {
                std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size - used));
                char* p = data + used;
                used += n;
                if (!payload_bytes(p, n, event)) break;
                if (!compressed_) message_.append(p, n);
                if (remaining_ == 0) end_data_frame(event);
                break;
            }
            case state::control_payload: {
                std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size - used));
                std::memcpy(control_.data() + control_size_, data + used, n);
                ws_unmask(control_.data() + control_size_, n, key_, control_size_);
                control_size_ = static_cast<std::uint8_t>(control_size_ + n);
                remaining_ -= n;
                used += n;
                if (remaining_ == 0) end_control_frame(event);
                break;
            }
            case state::done: return size;
            }
        }
        return used;
    }

    // Inside a data frame's payload, room to read up to `limit` of its next bytes straight into the message
    // (then call commit_direct); empty elsewhere. Saves a copy for large frames.
    std::pair<char*, std::size_t> direct_window(std::size_t limit) {
        if (state_ != state::data_payload || remaining_ == 0 || compressed_) return {nullptr, 0};
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, limit));
        window_at_ = message_.size();
        message_.resize(window_at_ + n);
        return {message_.data() + window_at_, n};
    }

    // `n` bytes were read into the window direct_window gave (0 if the read failed).
    void commit_direct(std::size_t n, ws_event& event) {
        event = ws_event{};
        message_.resize(window_at_ + n);
        if (n == 0) return;
        if (!payload_bytes(message_.data() + window_at_, n, event)) return;
        if (remaining_ == 0) end_data_frame(event);
    }

    // Payload bytes still to come in the current data frame (0 between frames and in control frames).
    std::uint64_t payload_left() const noexcept { return state_ == state::data_payload ? remaining_ : 0; }

    // Payload bytes still to come that direct_window may take (compressed payloads are inflated instead).
    std::uint64_t direct_payload_left() const noexcept { return compressed_ ? 0 : payload_left(); }

    // Offers a buffer for a later message (the session hands back the payloads it wrote): an echo then
    // reads into the memory it just wrote from, instead of fresh pages.
    void recycle(std::string&& buffer) noexcept {
        if (buffer.capacity() > spare_.capacity()) spare_ = std::move(buffer);
    }
    // Frees what a quiet session need not keep: the spare buffer, and a control frame's payload.
    void drop_spare() noexcept {
        spare_ = std::string();
        if (state_ != state::control_payload) control_ = std::string();
    }

    // The message of the last `message` event; take it before feeding more.
    std::string take_message() noexcept {
        std::string m = std::move(message_);
        message_ = std::string();
        return m;
    }

private:
    enum class state : std::uint8_t { header, data_payload, control_payload, done };

    std::size_t read_header(const char* data, std::size_t size, ws_event& event) {
        std::size_t used = 0;
        // Gathers the header up to `total` bytes; a header split across calls resumes where it stopped, so
        // what is already held may exceed an earlier, smaller `total`.
        auto want = [&](std::size_t total) {
            if (header_size_ >= total) return true;
            std::size_t n = std::min(total - header_size_, size - used);
            std::memcpy(header_.data() + header_size_, data + used, n);
            header_size_ = static_cast<std::uint8_t>(header_size_ + n);
            used += n;
            return header_size_ == total;
        };
        if (!want(2)) return used;
        auto b0 = static_cast<std::uint8_t>(header_[0]);
        auto b1 = static_cast<std::uint8_t>(header_[1]);
        // What the first two bytes decide fails at once, before the rest of the header arrives.
        std::uint8_t opcode = b0 & 0x0f;
        bool fin = b0 & 0x80;
        bool control = opcode & 0x8;
        std::uint64_t length = b1 & 0x7f;
        bool rsv1 = b0 & 0x40;
        if (b0 & 0x30) return failed(event, 1002, "reserved bits set without an extension"), used;
        if (rsv1 && !inflater_) return failed(event, 1002, "RSV1 set without permessage-deflate"), used;
        if (rsv1 && control) return failed(event, 1002, "RSV1 set on a control frame"), used;
        if (rsv1 && opcode == ws_continuation) return failed(event, 1002, "RSV1 set on a continuation frame"), used;
        if ((opcode > ws_binary && opcode < ws_close) || opcode > ws_pong)
            return failed(event, 1002, "reserved opcode"), used;
        if (!(b1 & 0x80)) return failed(event, 1002, "client frames must be masked"), used;
        if (control && !fin) return failed(event, 1002, "fragmented control frame"), used;
        if (control && length > 125) return failed(event, 1002, "control frame longer than 125 bytes"), used;
        if (!control && opcode == ws_continuation && !in_message_)
            return failed(event, 1002, "continuation frame without a message"), used;
        if (!control && opcode != ws_continuation && in_message_)
            return failed(event, 1002, "new message before the last one ended"), used;
        std::size_t total = 2 + (length == 126 ? 2 : length == 127 ? 8 : 0) + 4;
        if (!want(total)) return used;
        if (length == 126) {
            length = (std::uint64_t(std::uint8_t(header_[2])) << 8) | std::uint8_t(header_[3]);
        } else if (length == 127) {
            length = 0;
            for (int i = 0; i < 8; ++i) length = (length << 8) | std::uint8_t(header_[2 + i]);
            if (length >> 63) return failed(event, 1002, "64-bit length with its most significant bit set"), used;
        }
        std::memcpy(key_, header_.data() + total - 4, 4);
        header_size_ = 0;
        remaining_ = length;
        if (control) {
            control_opcode_ = opcode;
            control_size_ = 0;
            control_.resize(static_cast<std::size_t>(length)); // up to 125: most pings fit in the string itself
            state_ = state::control_payload;
            if (length == 0) end_control_frame(event);
            return used;
        }
        bool compressed = opcode == ws_continuation ? compressed_ : rsv1;
        if (compressed) {
            // What inflates is bounded as it inflates; the compressed bytes only by a little more than the
            // limit (incompressible data grows by a few bytes per 64 KiB).
            std::uint64_t compressed_limit = std::uint64_t(max_message_) + max_message_ / 1024 + 64;
            if (opcode != ws_continuation) compressed_bytes_ = 0;
            if (length > compressed_limit - compressed_bytes_) return failed(event, 1009, "message too big"), used;
            compressed_bytes_ += length;
        } else if (length > max_message_ - message_.size()) {
            return failed(event, 1009, "message too big"), used;
        }
        if (opcode != ws_continuation) {
            compressed_ = rsv1;
            in_message_ = true;
            binary_ = opcode == ws_binary;
            utf8_.reset();
            message_.clear();
            // The spare fits, and is not so big that a small message would pin it.
            if (spare_.capacity() >= length && spare_.capacity() / 2 <= length) {
                message_.swap(spare_);
                message_.clear();
            }
        }
        fin_ = fin;
        phase_ = 0;
        // The declared length is within the limit; pages stay untouched until bytes arrive.
        if (!compressed_) message_.reserve(message_.size() + static_cast<std::size_t>(length));
        state_ = state::data_payload;
        if (length == 0) end_data_frame(event);
        return used;
    }

    // Unmasks and checks payload bytes in place; false if the message failed.
    bool payload_bytes(char* p, std::size_t n, ws_event& event) {
        ws_unmask(p, n, key_, phase_);
        phase_ = static_cast<std::uint8_t>((phase_ + n) & 3);
        remaining_ -= n;
        if (compressed_) return inflate_bytes(p, n, false, event);
        if (!binary_ && !utf8_.feed(std::string_view(p, n))) {
            failed(event, 1007, "text that is not UTF-8");
            return false;
        }
        return true;
    }

    // Inflates compressed payload bytes into the message and checks what came out.
    bool inflate_bytes(const char* p, std::size_t n, bool message_end, ws_event& event) {
        std::size_t before = message_.size();
        switch (inflater_->inflate(p, n, message_end, message_, max_message_)) {
        case ws_message_inflater::result::ok: break;
        case ws_message_inflater::result::too_big: return failed(event, 1009, "message too big"), false;
        case ws_message_inflater::result::corrupt: return failed(event, 1007, "invalid compressed data"), false;
        }
        if (!binary_ && !utf8_.feed(std::string_view(message_).substr(before))) {
            failed(event, 1007, "text that is not UTF-8");
            return false;
        }
        return true;
    }

    void end_data_frame(ws_event& event) {
        state_ = state::header;
        if (!fin_) return;
        if (compressed_ && !inflate_bytes(nullptr, 0, true, event)) return;
        if (!binary_ && !utf8_.complete()) return failed(event, 1007, "text that ends inside a UTF-8 sequence");
        in_message_ = false;
        event.kind = ws_event::message;
        event.binary = binary_;
    }

    void end_control_frame(ws_event& event) {
        state_ = state::header;
        std::string_view payload(control_.data(), control_size_);
        if (control_opcode_ == ws_ping) {
            event.kind = ws_event::ping;
            event.payload = payload;
            return;
        }
        if (control_opcode_ == ws_pong) {
            event.kind = ws_event::pong;
            event.payload = payload;
            return;
        }
        // A close: no code, or a code that may be sent and a reason in UTF-8.
        if (payload.size() == 1) return failed(event, 1002, "close frame with a one-byte payload");
        unsigned short code = 1005;
        if (payload.size() >= 2) {
            code = static_cast<unsigned short>((std::uint8_t(payload[0]) << 8) | std::uint8_t(payload[1]));
            if (!ws_close_code_allowed(code)) return failed(event, 1002, "close code that may not be sent");
            if (!is_valid_utf8(payload.substr(2))) return failed(event, 1007, "close reason that is not UTF-8");
        }
        state_ = state::done;
        event.kind = ws_event::close;
        event.code = code;
        event.payload = payload.size() > 2 ? payload.substr(2) : std::string_view();
    }

    void failed(ws_event& event, unsigned short code, std::string_view why) {
        state_ = state::done;
        event.kind = ws_event::fail;
        event.code = code;
        event.why = why;
    }

    // Laid out small: an idle session keeps one of these.
    std::size_t max_message_;
    ws_message_inflater* inflater_ = nullptr;
    std::uint64_t compressed_bytes_ = 0; // of the current compressed message
    std::uint64_t remaining_ = 0;
    std::size_t window_at_ = 0;
    std::string message_; // the message being read; once complete, until take_message
    std::string spare_;
    std::string control_; // a control frame's payload (at most 125 bytes)
    utf8_validator utf8_;
    std::array<char, 14> header_{};
    std::uint8_t header_size_ = 0;
    std::uint8_t key_[4] = {};
    std::uint8_t phase_ = 0;
    std::uint8_t control_opcode_ = 0;
    std::uint8_t control_size_ = 0;
    state state_ = state::header;
    bool compressed_ = false; // the current message is compressed
    bool fin_ = false;
    bool in_message_ = false;
    bool binary_ = false;
};

} // namespace weir::detail
