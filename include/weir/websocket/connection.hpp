#pragma once

#include <weir/detail/utf8.hpp>
#include <weir/reply.hpp>
#include <weir/upgrade.hpp>
#include <weir/websocket/handshake.hpp>
#include <weir/websocket/options.hpp>

#include <asio/awaitable.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace weir {

/// A whole WebSocket message, reassembled from its frames.
struct websocket_message {
    std::string data;
    bool binary = false;
};

class websocket_connection;

/// Sends to a WebSocket session from any thread. Holding one does not keep the session open.
class websocket_sender {
public:
    /// Queues a text message; false if the session is gone. A session whose send queue is full is closed
    /// with 1008 (policy violation): a reader that slow must reconnect rather than grow memory.
    bool send(std::string text) { return send_shared(std::make_shared<const std::string>(std::move(text)), false); }
    /// Queues a message whose bytes are shared with other sessions (a broadcast encodes once).
    bool send_shared(std::shared_ptr<const std::string> payload, bool binary = false);
    /// Starts the closing handshake.
    void close(close_code code = close_code::normal);

private:
    friend class websocket_connection;
    explicit websocket_sender(std::weak_ptr<websocket_connection> c, asio::any_io_executor ex)
        : connection_(std::move(c)), executor_(std::move(ex)) {}
    std::weak_ptr<websocket_connection> connection_;
    asio::any_io_executor executor_;
};

/// One WebSocket session (RFC 6455), as its handler sees it: `co_await read()` for each message,
/// `co_await send(...)` to answer. Lives on its connection's executor; use sender() from other threads.
class websocket_connection : public std::enable_shared_from_this<websocket_connection> {
    struct outgoing {
        std::uint8_t opcode;
        std::shared_ptr<const std::string> payload;
    };

public:
    websocket_connection(asio::ip::tcp::socket& socket, websocket_options options, std::string subprotocol,
                         std::string leftover)
        : socket_(socket), options_(std::move(options)), subprotocol_(std::move(subprotocol)),
          in_(std::move(leftover)), inbox_signal_(socket.get_executor()), outbox_signal_(socket.get_executor()),
          room_signal_(socket.get_executor()), ticker_(socket.get_executor()) {
        for (auto* t : {&inbox_signal_, &outbox_signal_, &room_signal_}) t->expires_at(asio::steady_timer::time_point::max());
    }

    /// The next message, or nothing once the session has closed.
    asio::awaitable<std::optional<websocket_message>> read() {
        while (inbox_.empty() && !closed_for_reading_) co_await wait(inbox_signal_);
        if (inbox_.empty()) co_return std::nullopt;
        auto m = std::move(inbox_.front());
        inbox_.pop_front();
        inbox_signal_.cancel(); // the reader may wait for room
        co_return m;
    }

    /// Sends a text message; waits while the send queue is full. False once the session is closing.
    asio::awaitable<bool> send(std::string_view text) {
        co_return co_await send_shared(std::make_shared<const std::string>(text), false);
    }
    /// Sends a binary message.
    asio::awaitable<bool> send_binary(std::string_view bytes) {
        co_return co_await send_shared(std::make_shared<const std::string>(bytes), true);
    }
    /// Sends a message whose bytes are shared (a broadcast encodes its payload once).
    asio::awaitable<bool> send_shared(std::shared_ptr<const std::string> payload, bool binary) {
        while (!close_queued_ && outbox_.size() >= options_.send_queue_capacity) co_await wait(room_signal_);
        co_return enqueue(binary ? 0x2 : 0x1, std::move(payload));
    }

    /// Starts the closing handshake (if not started) and returns; read() then returns nothing.
    /// Codes 1005, 1006 and 1015 are never sent: they only describe closes.
    asio::awaitable<void> close(close_code code = close_code::normal, std::string_view reason = {}) {
        start_close(static_cast<unsigned short>(code), reason);
        co_return;
    }

    /// A handle to send from other threads.
    std::shared_ptr<websocket_sender> sender() {
        return std::shared_ptr<websocket_sender>(new websocket_sender(weak_from_this(), socket_.get_executor()));
    }

    /// The subprotocol chosen in the handshake, or "".
    const std::string& subprotocol() const noexcept { return subprotocol_; }

    /// True until the closing handshake starts.
    bool is_open() const noexcept { return !close_queued_ && !closed_for_reading_; }

    asio::any_io_executor get_executor() const { return socket_.get_executor(); }

    // Runs the session: frames in, frames out, keep-alive pings, and the user's handler.
    asio::awaitable<void> run(std::function<asio::awaitable<void>(websocket_connection&)> handler) {
        using namespace asio::experimental::awaitable_operators;
        last_heard_ = std::chrono::steady_clock::now();
        co_await (read_loop() || write_loop() || keepalive_loop() || handle(std::move(handler)));
        shut();
    }

    // Where the session's written bytes are counted (the connection's summary).
    void count_into(upgraded_connection* counter) noexcept { counter_ = counter; }

    // Called on the executor when the server shuts down.
    void going_away() { start_close(1001, "server shutting down"); }

    // For websocket_sender, on the executor.
    bool enqueue_from_elsewhere(std::uint8_t opcode, std::shared_ptr<const std::string> payload) {
        if (close_queued_) return false;
        if (outbox_.size() >= options_.send_queue_capacity) {
            start_close(1008, "send queue full");
            return false;
        }
        return enqueue(opcode, std::move(payload));
    }
    void close_from_elsewhere(unsigned short code) { start_close(code, {}); }

private:
    static asio::awaitable<void> wait(asio::steady_timer& signal) {
        asio::error_code ec;
        co_await signal.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        signal.expires_at(asio::steady_timer::time_point::max());
    }

    bool enqueue(std::uint8_t opcode, std::shared_ptr<const std::string> payload) {
        if (close_queued_) return false;
        outbox_.push_back({opcode, std::move(payload)});
        outbox_signal_.cancel();
        return true;
    }

    void start_close(unsigned short code, std::string_view reason) {
        if (close_queued_) return;
        close_queued_ = true;
        std::string payload;
        if (code != 0) {
            payload.push_back(static_cast<char>(code >> 8));
            payload.push_back(static_cast<char>(code & 0xff));
            payload.append(reason.substr(0, 123));
        }
        // A close goes out after what is already queued, ahead of nothing else.
        outbox_.push_back({0x8, std::make_shared<const std::string>(std::move(payload))});
        outbox_signal_.cancel();
        room_signal_.cancel();
        close_deadline_ = std::chrono::steady_clock::now() + options_.close_timeout;
        ticker_.cancel();
    }

    void shut() {
        closed_for_reading_ = true;
        asio::error_code ec;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
        socket_.close(ec);
        inbox_signal_.cancel();
        room_signal_.cancel();
        outbox_signal_.cancel();
        ticker_.cancel();
    }

    // A protocol error: close with `code` and read nothing more.
    void fail(unsigned short code, std::string_view why) {
        stop_reading_ = true;
        start_close(code, why);
    }

    asio::awaitable<void> handle(std::function<asio::awaitable<void>(websocket_connection&)> handler) {
        co_await handler(*this);
        start_close(1000, {});
        // Stay until the closing handshake ends the session (this wait is then cancelled).
        asio::steady_timer forever(socket_.get_executor(), asio::steady_timer::time_point::max());
        asio::error_code ec;
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    // Ensures `n` bytes from `pos_` are buffered. False on EOF or error.
    asio::awaitable<bool> need(std::size_t n) {
        while (in_.size() - pos_ < n) {
            if (pos_ > 0 && pos_ == in_.size()) {
                in_.clear();
                pos_ = 0;
            } else if (pos_ > 64 * 1024) {
                in_.erase(0, pos_);
                pos_ = 0;
            }
            std::size_t old = in_.size();
            std::size_t want = std::max<std::size_t>(n - (in_.size() - pos_), 4 * 1024);
            in_.resize(old + want);
            asio::error_code ec;
            std::size_t got = co_await socket_.async_read_some(asio::buffer(in_.data() + old, want),
                                                               asio::redirect_error(asio::use_awaitable, ec));
            in_.resize(old + got);
            if (ec) co_return false;
            last_heard_ = std::chrono::steady_clock::now();
        }
        co_return true;
    }

    static void unmask(char* data, std::size_t size, const std::uint8_t key[4], std::size_t offset) {
        std::uint8_t k[8];
        for (int i = 0; i < 8; ++i) k[i] = key[(offset + i) & 3];
        std::uint64_t k64;
        std::memcpy(&k64, k, 8);
        std::size_t i = 0;
        for (; i + 8 <= size; i += 8) {
            std::uint64_t v;
            std::memcpy(&v, data + i, 8);
            v ^= k64;
            std::memcpy(data + i, &v, 8);
        }
        for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ key[(offset + i) & 3]);
    }

    static bool valid_close_code(unsigned code) {
        if (code >= 3000 && code <= 4999) return true;
        return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
    }

    asio::awaitable<void> read_loop() {
        auto self = shared_from_this();
        while (!stop_reading_) {
            // Back-pressure: a handler that does not read stops us reading the socket.
            while (inbox_.size() >= 64 && !stop_reading_) co_await wait(inbox_signal_);
            if (!co_await need(2)) break;
            auto b0 = static_cast<std::uint8_t>(in_[pos_]);
            auto b1 = static_cast<std::uint8_t>(in_[pos_ + 1]);
            bool fin = b0 & 0x80;
            std::uint8_t opcode = b0 & 0x0f;
            bool masked = b1 & 0x80;
            std::uint64_t length = b1 & 0x7f;
            std::size_t header = 2;
            if (length == 126) header += 2;
            else if (length == 127) header += 8;
            header += 4;
            if (!co_await need(header)) break;
            const char* h = in_.data() + pos_;
            if (length == 126) length = (std::uint64_t(std::uint8_t(h[2])) << 8) | std::uint8_t(h[3]);
            else if (length == 127) {
                length = 0;
                for (int i = 0; i < 8; ++i) length = (length << 8) | std::uint8_t(h[2 + i]);
                if (length >> 63) {
                    fail(1002, "length with the most significant bit set");
                    break;
                }
            }
            if (b0 & 0x70) {
                fail(1002, "reserved bits set without an extension");
                break;
            }
            if (!masked) {
                fail(1002, "client frames must be masked");
                break;
            }
            bool control = opcode & 0x8;
            if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xA) {
                fail(1002, "reserved opcode");
                break;
            }
            if (control && (!fin || length > 125)) {
                fail(1002, "control frames are short and unfragmented");
                break;
            }
            if (!control) {
                if (opcode == 0x0 && !in_message_) {
                    fail(1002, "continuation without a message");
                    break;
                }
                if (opcode != 0x0 && in_message_) {
                    fail(1002, "new message inside a fragmented one");
                    break;
                }
                if (message_.size() + length > options_.max_message_size) {
                    fail(1009, "message too big");
                    break;
                }
            }
            std::uint8_t key[4];
            std::memcpy(key, h + header - 4, 4);
            pos_ += header;
            if (control) {
                if (!co_await need(length)) break;
                unmask(in_.data() + pos_, length, key, 0);
                std::string payload(in_.data() + pos_, length);
                pos_ += length;
                if (!on_control(opcode, std::move(payload))) break;
                continue;
            }
            if (opcode != 0x0) {
                in_message_ = true;
                message_binary_ = opcode == 0x2;
                utf8_.reset();
            }
            // Data arrives in pieces: validate text as it comes so bad UTF-8 fails before the frame ends.
            std::uint64_t left = length;
            std::size_t offset = 0;
            bool ok = true;
            while (left > 0) {
                if (pos_ == in_.size() && !co_await need(1)) {
                    ok = false;
                    break;
                }
                std::size_t take = std::min<std::uint64_t>(left, in_.size() - pos_);
                char* p = in_.data() + pos_;
                unmask(p, take, key, offset);
                if (!message_binary_ && !utf8_.feed(std::string_view(p, take))) {
                    fail(1007, "invalid UTF-8");
                    ok = false;
                    break;
                }
                message_.append(p, take);
                pos_ += take;
                offset += take;
                left -= take;
            }
            if (!ok) break;
            if (fin) {
                if (!message_binary_ && !utf8_.complete()) {
                    fail(1007, "invalid UTF-8");
                    break;
                }
                inbox_.push_back({std::move(message_), message_binary_});
                message_.clear();
                in_message_ = false;
                inbox_signal_.cancel();
            }
        }
        // Nothing more will be read: tell the handler and the writer.
        closed_for_reading_ = true;
        inbox_signal_.cancel();
        outbox_signal_.cancel();
        if (!close_queued_) {
            // The peer vanished without a closing handshake: there is no one left to tell.
            peer_vanished_ = true;
            co_return;
        }
        // A close is queued: the writer ends the session once it is written.
        asio::steady_timer forever(socket_.get_executor(), asio::steady_timer::time_point::max());
        asio::error_code ec;
        co_await forever.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    // Returns false when reading must stop.
    bool on_control(std::uint8_t opcode, std::string payload) {
        if (opcode == 0x9) { // ping -> pong with the same payload
            if (!close_queued_) {
                control_.push_back({0xA, std::make_shared<const std::string>(std::move(payload))});
                outbox_signal_.cancel();
            }
            return true;
        }
        if (opcode == 0xA) return true; // pong: the peer is alive (last_heard_ updated)
        // close
        close_received_ = true;
        if (payload.size() == 1) {
            fail(1002, "one-byte close payload");
            return false;
        }
        unsigned short code = 0;
        if (payload.size() >= 2) {
            code = static_cast<unsigned short>((std::uint8_t(payload[0]) << 8) | std::uint8_t(payload[1]));
            if (!valid_close_code(code)) {
                fail(1002, "invalid close code");
                return false;
            }
            if (!detail::is_valid_utf8(std::string_view(payload).substr(2))) {
                fail(1007, "close reason is not UTF-8");
                return false;
            }
        }
        stop_reading_ = true;
        // Echo the peer's code (RFC 6455 section 5.5.1); an empty close is answered with an empty one.
        start_close(code, {});
        return false;
    }

    asio::awaitable<void> write_loop() {
        auto self = shared_from_this();
        std::vector<asio::const_buffer> buffers;
        std::vector<outgoing> batch;
        std::vector<std::array<char, 10>> headers;
        for (;;) {
            while (outbox_.empty() && control_.empty()) {
                if (closed_for_reading_ && close_sent_) co_return;
                co_await wait(outbox_signal_);
            }
            batch.clear();
            bool has_close = false;
            // Pongs and pings go first, in the order they were queued; then data, then a close.
            while (!control_.empty()) {
                batch.push_back(std::move(control_.front()));
                control_.pop_front();
            }
            while (!outbox_.empty() && batch.size() < 64) {
                batch.push_back(std::move(outbox_.front()));
                outbox_.pop_front();
                if (batch.back().opcode == 0x8) {
                    has_close = true;
                    outbox_.clear(); // nothing is sent after a close
                    break;
                }
            }
            room_signal_.cancel();
            headers.resize(batch.size());
            buffers.clear();
            for (std::size_t i = 0; i < batch.size(); ++i) {
                auto& h = headers[i];
                std::size_t n = batch[i].payload->size();
                std::size_t len = 2;
                h[0] = static_cast<char>(0x80 | batch[i].opcode);
                if (n < 126) h[1] = static_cast<char>(n);
                else if (n <= 0xffff) {
                    h[1] = 126;
                    h[2] = static_cast<char>(n >> 8);
                    h[3] = static_cast<char>(n & 0xff);
                    len = 4;
                } else {
                    h[1] = 127;
                    for (int b = 0; b < 8; ++b) h[2 + b] = static_cast<char>((std::uint64_t(n) >> (56 - 8 * b)) & 0xff);
                    len = 10;
                }
                buffers.emplace_back(h.data(), len);
                buffers.emplace_back(asio::buffer(*batch[i].payload));
            }
            asio::error_code ec;
            std::size_t n = co_await asio::async_write(socket_, buffers, asio::redirect_error(asio::use_awaitable, ec));
            if (counter_) counter_->count_written(n);
            if (ec) co_return;
            if (has_close) {
                close_sent_ = true;
                // After our close: if the peer's close already came (or it vanished), the session is over;
                // otherwise the keep-alive loop gives it close_timeout to answer.
                if (close_received_ || peer_vanished_ || stop_reading_) co_return;
            }
        }
    }

    asio::awaitable<void> keepalive_loop() {
        using clock = std::chrono::steady_clock;
        auto tick = std::chrono::milliseconds(250);
        if (options_.ping_interval.count() > 0) tick = std::min(tick, options_.ping_interval);
        auto last_ping = clock::now();
        for (;;) {
            ticker_.expires_after(tick);
            asio::error_code ec;
            co_await ticker_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            auto now = clock::now();
            if (close_queued_) {
                if (now >= close_deadline_) co_return; // the peer did not answer our close in time
                continue;
            }
            if (options_.idle_timeout.count() > 0 && now - last_heard_ >= options_.idle_timeout) co_return;
            if (options_.ping_interval.count() > 0 && now - last_heard_ >= options_.ping_interval &&
                now - last_ping >= options_.ping_interval) {
                last_ping = now;
                control_.push_back({0x9, std::make_shared<const std::string>()});
                outbox_signal_.cancel();
            }
        }
    }

    asio::ip::tcp::socket& socket_;
    upgraded_connection* counter_ = nullptr;
    websocket_options options_;
    std::string subprotocol_;
    std::string in_;
    std::size_t pos_ = 0;
    std::string message_;
    bool in_message_ = false;
    bool message_binary_ = false;
    detail::utf8_validator utf8_;
    std::deque<websocket_message> inbox_;
    std::deque<outgoing> outbox_;
    std::deque<outgoing> control_;
    asio::steady_timer inbox_signal_, outbox_signal_, room_signal_, ticker_;
    std::chrono::steady_clock::time_point last_heard_{};
    std::chrono::steady_clock::time_point close_deadline_ = std::chrono::steady_clock::time_point::max();
    bool close_queued_ = false;
    bool close_sent_ = false;
    bool close_received_ = false;
    bool closed_for_reading_ = false;
    bool stop_reading_ = false;
    bool peer_vanished_ = false;
};

inline bool websocket_sender::send_shared(std::shared_ptr<const std::string> payload, bool binary) {
    if (connection_.expired()) return false;
    asio::post(executor_, [c = connection_, payload = std::move(payload), binary]() mutable {
        if (auto conn = c.lock()) conn->enqueue_from_elsewhere(binary ? 0x2 : 0x1, std::move(payload));
    });
    return true;
}

inline void websocket_sender::close(close_code code) {
    asio::post(executor_, [c = connection_, code] {
        if (auto conn = c.lock()) conn->close_from_elsewhere(static_cast<unsigned short>(code));
    });
}

/// What runs a WebSocket session: a coroutine given the connection.
using websocket_handler = std::function<asio::awaitable<void>(websocket_connection&)>;

/// The WebSocket protocol as a pending upgrade: `weir::pending<weir::websocket>`. The final stage writes
/// the 101 with every stage's headers plus Upgrade, Connection and Sec-WebSocket-Accept (and the chosen
/// Sec-WebSocket-Protocol), then runs the session.
class websocket {
public:
    static constexpr weir::status default_status = weir::status::switching_protocols;
    static constexpr std::string_view name = "websocket";
    static constexpr bool commits(weir::status s) noexcept { return s == weir::status::switching_protocols; }

    websocket(websocket_handshake handshake, websocket_handler handler, websocket_options options)
        : handshake_(std::move(handshake)), handler_(std::move(handler)), options_(std::move(options)) {}

    void prepare_head(weir::headers&) {}

    void write_protocol_fields(std::string& out) const {
        out += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
        out += handshake_.accept_key;
        out += "\r\n";
        if (!handshake_.subprotocol.empty()) {
            out += "Sec-WebSocket-Protocol: ";
            out += handshake_.subprotocol;
            out += "\r\n";
        }
    }

    asio::awaitable<void> run(upgraded_connection& connection) {
        auto session = std::make_shared<websocket_connection>(connection.socket(), options_, handshake_.subprotocol,
                                                              connection.take_leftover());
        session->count_into(&connection);
        connection.on_shutdown([weak = std::weak_ptr<websocket_connection>(session)] {
            if (auto s = weak.lock()) s->going_away();
        });
        co_await session->run(std::move(handler_));
        connection.on_shutdown({});
    }

    /// The subprotocol the handshake chose, or "".
    const std::string& subprotocol() const noexcept { return handshake_.subprotocol; }

private:
    websocket_handshake handshake_;
    websocket_handler handler_;
    websocket_options options_;
};

/// Answers a WebSocket handshake: `pending<websocket>` running `handler` if the handshake is valid, else a
/// plain 400, 403 or 426 response (see check_websocket_handshake).
template <class Request>
reply<websocket> accept_websocket(const Request& req, websocket_handler handler, websocket_options options = {}) {
    response refusal;
    auto handshake = check_websocket_handshake(req, options, refusal);
    if (!handshake) return refusal;
    return pending<websocket>(websocket(std::move(*handshake), std::move(handler), std::move(options)));
}

} // namespace weir
