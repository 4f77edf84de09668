#pragma once

// permessage-deflate (RFC 7692) on zlib, free of I/O: a compressor for whole messages, an incremental
// decompressor bounded by the message size limit, and the codec a session uses. zlib state is allocated
// when the first compressed message goes either way, and given back between messages wherever no context is
// kept: without server context takeover every session on a thread compresses with one shared compressor,
// and a message shared by many sessions is compressed once.

#ifndef WEIR_HAS_ZLIB
#error "weir/detail/websocket_deflate.hpp needs zlib: link weir::zlib (CMake) or define WEIR_HAS_ZLIB and link -lz"
#endif

#include <weir/detail/websocket_deflate_negotiation.hpp>
#include <weir/detail/websocket_frame.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace weir::detail {

// The four bytes every compressed message ends with, which the sender removes (RFC 7692 7.2.1).
inline constexpr std::array<unsigned char, 4> ws_deflate_tail{0x00, 0x00, 0xff, 0xff};

// How a compressor is set up; compressors with equal settings are interchangeable between messages when
// no context is kept.
struct ws_deflate_settings {
    int level = 6;
    int window_bits = 15;
    int memory_level = 8;
    bool operator==(const ws_deflate_settings&) const = default;
};

// Compresses whole messages into frame payloads. With `keep_context` a message may refer to earlier ones
// (context takeover); without, each is compressed alone.
class ws_deflater {
public:
    ws_deflater(ws_deflate_settings settings, bool keep_context) noexcept
        : settings_(settings), keep_context_(keep_context) {}
    ws_deflater(const ws_deflater&) = delete;
    ws_deflater& operator=(const ws_deflater&) = delete;
    ~ws_deflater() { release(); }

    // The payload of the compressed frame: the deflate blocks, flushed, without the final 00 00 ff ff.
    std::string compress(std::string_view message) {
        std::string out;
        if (!ready()) throw std::bad_alloc();
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(message.data()));
        z_.avail_in = static_cast<uInt>(message.size());
        std::size_t bound = deflateBound(&z_, static_cast<uLong>(message.size())) + 16;
        for (;;) {
            std::size_t at = out.size();
            out.resize(at + bound);
            z_.next_out = reinterpret_cast<Bytef*>(out.data() + at);
            z_.avail_out = static_cast<uInt>(bound);
            int rc = deflate(&z_, Z_SYNC_FLUSH);
            out.resize(out.size() - z_.avail_out);
            if (rc != Z_OK && rc != Z_BUF_ERROR) throw std::bad_alloc();
            if (z_.avail_in == 0 && z_.avail_out > 0) break; // flushed: everything is out
            bound = std::max<std::size_t>(bound, 1024);
        }
        if (out.size() >= 4 && std::memcmp(out.data() + out.size() - 4, ws_deflate_tail.data(), 4) == 0)
            out.resize(out.size() - 4);
        if (!keep_context_) deflateReset(&z_);
        return out;
    }

    // Frees the zlib state (the next message allocates it again).
    void release() noexcept {
        if (!allocated_) return;
        deflateEnd(&z_);
        allocated_ = false;
    }

    bool allocated() const noexcept { return allocated_; }
    const ws_deflate_settings& settings() const noexcept { return settings_; }

private:
    bool ready() noexcept {
        if (allocated_) return true;
        z_ = z_stream{};
        // A negative window: raw deflate, no zlib header or checksum.
        allocated_ = deflateInit2(&z_, std::clamp(settings_.level, 0, 9), Z_DEFLATED,
                                  -std::clamp(settings_.window_bits, 9, 15), std::clamp(settings_.memory_level, 1, 9),
                                  Z_DEFAULT_STRATEGY) == Z_OK;
        return allocated_;
    }

    ws_deflate_settings settings_;
    bool keep_context_;
    bool allocated_ = false;
    z_stream z_{};
};

// Inflates the compressed messages of one peer as their bytes arrive, never producing more than the limit.
//
// zlib checks a back-reference against the window it was given only for the part of the distance that lies
// before the current inflate() call's output, so with a window smaller than 15 bits the same stream could be
// accepted when its bytes come at once and refused when they trickle in. The stream is therefore always
// inflated with the full 32 KiB window, which accepts every distance deflate can express that reaches into
// bytes already produced: the outcome depends on the bytes only, never on how the network cut them. A
// smaller agreed window still pays off: with context takeover the session keeps, between messages, only
// the last 2^bits bytes it produced (handed to the next message's stream as its dictionary) instead of
// zlib's state and window.
class ws_inflater final : public ws_message_inflater {
public:
    ws_inflater(int window_bits, bool keep_context) noexcept
        : window_bits_(std::clamp(window_bits, 9, 15)), keep_context_(keep_context) {}
    ws_inflater(const ws_inflater&) = delete;
    ws_inflater& operator=(const ws_inflater&) = delete;
    ~ws_inflater() { release(); }

    result inflate(const char* in, std::size_t size, bool message_end, std::string& out,
                   std::size_t limit) override {
        if (!ready()) return result::corrupt;
        if (size > 0) {
            if (stream_ended_) return result::corrupt; // bytes after a final block
            if (auto r = run(reinterpret_cast<const unsigned char*>(in), size, out, limit); r != result::ok) return r;
        }
        if (!message_end) return result::ok;
        if (!stream_ended_)
            if (auto r = run(ws_deflate_tail.data(), ws_deflate_tail.size(), out, limit); r != result::ok) return r;
        end_message();
        return result::ok;
    }

    // Frees the zlib state and the window (the next compressed message allocates them again).
    void release() noexcept {
        if (!z_) return;
        inflateEnd(z_.get());
        z_.reset();
        stream_ended_ = false;
    }

    bool allocated() const noexcept { return z_ != nullptr; }

private:
    static constexpr int stream_window_bits = 15;

    bool ready() noexcept {
        if (z_) return true;
        // The stream itself (112 bytes) is allocated only with zlib's state: an idle session holds neither.
        z_.reset(new (std::nothrow) z_stream{});
        if (!z_) return false;
        // A raw stream (negative bits) has no header or checksum.
        if (inflateInit2(z_.get(), -stream_window_bits) != Z_OK) {
            z_.reset();
            return false;
        }
        if (!history_.empty()) {
            inflateSetDictionary(z_.get(), reinterpret_cast<const Bytef*>(history_.data()),
                                 static_cast<uInt>(history_.size()));
            std::string().swap(history_); // zlib's window holds it now
        }
        return true;
    }

    // A message is complete: what the next one may refer to is kept, or nothing.
    void end_message() {
        // A message whose last block was final (BFINAL) ended the stream: the next one starts afresh.
        if (!keep_context_ || stream_ended_) {
            release();
            return;
        }
        if (window_bits_ == stream_window_bits) return; // the stream is the context
        // The stream's window ends with what this message and those before it produced: keep its tail.
        thread_local std::array<Bytef, std::size_t(1) << stream_window_bits> window;
        uInt have = 0;
        inflateGetDictionary(z_.get(), window.data(), &have);
        std::size_t keep = std::min<std::size_t>(have, std::size_t(1) << window_bits_);
        history_.assign(reinterpret_cast<const char*>(window.data()) + (have - keep), keep);
        release();
    }

    result run(const unsigned char* in, std::size_t size, std::string& out, std::size_t limit) {
        z_stream& z = *z_;
        z.next_in = const_cast<Bytef*>(in);
        z.avail_in = static_cast<uInt>(size);
        for (;;) {
            if (stream_ended_) return z.avail_in == 0 ? result::ok : result::corrupt;
            // Room for at most one byte past the limit: a bomb stops there.
            std::size_t room = limit >= out.size() ? limit - out.size() + 1 : 1;
            std::size_t chunk = std::min(std::max<std::size_t>(16 * 1024, size * 4), room);
            std::size_t at = out.size();
            out.resize(at + chunk);
            z.next_out = reinterpret_cast<Bytef*>(out.data() + at);
            z.avail_out = static_cast<uInt>(chunk);
            int rc = ::inflate(&z, Z_SYNC_FLUSH);
            out.resize(out.size() - z.avail_out);
            if (out.size() > limit) return result::too_big;
            if (rc == Z_STREAM_END) {
                stream_ended_ = true;
                continue;
            }
            if (rc == Z_BUF_ERROR) return z.avail_in == 0 ? result::ok : result::corrupt; // no progress possible
            if (rc != Z_OK) return result::corrupt;
            if (z.avail_in == 0 && z.avail_out > 0) return result::ok;
        }
    }

    int window_bits_; // the window the peer agreed to compress with
    bool keep_context_;
    bool stream_ended_ = false;
    std::unique_ptr<z_stream> z_; // while zlib's state exists
    std::string history_;         // between messages, with context and a window under 15 bits
};

// The compressor every session on this thread with these settings uses when no context is kept.
inline ws_deflater& ws_thread_deflater(const ws_deflate_settings& settings) {
    thread_local std::vector<std::unique_ptr<ws_deflater>> deflaters;
    for (auto& d : deflaters)
        if (d->settings() == settings) return *d;
    deflaters.push_back(std::make_unique<ws_deflater>(settings, false));
    return *deflaters.back();
}

// `message` compressed without context, once per thread: the sessions a broadcast reaches on one thread
// share the compressed bytes, as they share the uncompressed ones. Remembers the last 32 messages.
inline std::shared_ptr<const std::string> ws_compress_once(const std::shared_ptr<const std::string>& message,
                                                            const ws_deflate_settings& settings) {
    struct entry {
        std::weak_ptr<const std::string> source; // the same owner, not only the same address
        ws_deflate_settings settings;
        std::shared_ptr<const std::string> compressed;
    };
    thread_local std::array<entry, 32> recent; // a delivery pass's run of events (see topic_fanout)
    thread_local std::size_t next = 0;
    for (auto& e : recent)
        if (e.compressed && e.settings == settings && !e.source.owner_before(message) &&
            !message.owner_before(e.source) && !e.source.expired())
            return e.compressed;
    auto compressed = std::make_shared<const std::string>(ws_thread_deflater(settings).compress(*message));
    recent[next] = {message, settings, compressed};
    next = (next + 1) % recent.size();
    return compressed;
}

// The permessage-deflate state of one session.
class ws_deflate_session final : public ws_deflate_codec {
public:
    ws_deflate_session(const ws_deflate_agreement& agreement, const websocket_deflate_options& options)
        : settings_{options.level, agreement.server_window_bits, options.memory_level},
          keep_context_(!agreement.server_no_context_takeover), threshold_(options.threshold),
          inflater_(agreement.client_window_bits, !agreement.client_no_context_takeover) {}

    ws_message_inflater& inflater() noexcept override { return inflater_; }
    bool compresses(std::size_t size) const noexcept override { return size >= threshold_; }

    std::string compress(std::string_view message) override {
        if (!keep_context_) return ws_thread_deflater(settings_).compress(message);
        if (!deflater_) deflater_ = std::make_unique<ws_deflater>(settings_, true);
        return deflater_->compress(message);
    }

    std::shared_ptr<const std::string> compress_shared(const std::shared_ptr<const std::string>& message) override {
        if (!keep_context_) return ws_compress_once(message, settings_);
        return std::make_shared<const std::string>(compress(*message));
    }

private:
    ws_deflate_settings settings_;
    bool keep_context_;
    std::size_t threshold_;
    std::unique_ptr<ws_deflater> deflater_; // only with context takeover: kept until the session ends
    ws_inflater inflater_;
};

} // namespace weir::detail
