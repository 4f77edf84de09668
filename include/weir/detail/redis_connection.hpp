#pragma once

// A connection to Redis over an Asio socket. hiredis encodes the commands (redisFormatCommandArgv) and its
// reply reader (redisReader) decodes the replies; a batch of commands goes out in one write (pipelined) and
// its replies come back in order. Used from one thread: the Redis backend's.

#include <hiredis/hiredis.h>

#include <asio/awaitable.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace weir::detail {

// One reply, copied out of hiredis's reply objects.
struct redis_reply {
    enum class kind { string, status, error, integer, nil, array };
    kind type = kind::nil;
    std::string text; // string, status or error
    long long integer = 0;
    std::vector<redis_reply> elements;

    bool is_error() const noexcept { return type == kind::error; }
    bool is_nil() const noexcept { return type == kind::nil; }
};

inline redis_reply to_redis_reply(const redisReply& r) {
    redis_reply out;
    switch (r.type) {
    case REDIS_REPLY_STRING: out.type = redis_reply::kind::string; break;
    case REDIS_REPLY_STATUS: out.type = redis_reply::kind::status; break;
    case REDIS_REPLY_ERROR: out.type = redis_reply::kind::error; break;
    case REDIS_REPLY_INTEGER: out.type = redis_reply::kind::integer; break;
    case REDIS_REPLY_ARRAY: out.type = redis_reply::kind::array; break;
    default: out.type = redis_reply::kind::nil; break;
    }
    if (r.str) out.text.assign(r.str, r.len);
    out.integer = r.integer;
    for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(to_redis_reply(*r.element[i]));
    return out;
}

using redis_command = std::vector<std::string>;

class redis_connection {
public:
    using clock = std::chrono::steady_clock;

    explicit redis_connection(const asio::any_io_executor& executor) : socket_(executor) {}

    bool is_open() const { return socket_.is_open(); }

    void close() {
        asio::error_code ignored;
        socket_.close(ignored);
    }

    // Connects to host:port (closing what was open), giving up at `deadline`. Throws std::system_error.
    asio::awaitable<void> connect(const std::string& host, std::uint16_t port, clock::time_point deadline) {
        close();
        reader_.reset(redisReaderCreate());
        if (!reader_) throw std::bad_alloc();
        watchdog guard(*this, deadline);
        asio::ip::tcp::resolver resolver(socket_.get_executor());
        try {
            auto endpoints = co_await resolver.async_resolve(host, std::to_string(port), asio::use_awaitable);
            co_await asio::async_connect(socket_, endpoints, asio::use_awaitable);
            socket_.set_option(asio::ip::tcp::no_delay(true));
        } catch (const std::system_error& e) {
            close();
            throw std::system_error(guard.fired() ? std::make_error_code(std::errc::timed_out) : e.code());
        }
    }

    // Sends `commands` in one write and reads one reply for each, in order; gives up at `deadline`. A reply
    // that is a Redis error is returned as such; an I/O error, a timeout or a reply hiredis cannot read closes
    // the connection and throws std::system_error.
    asio::awaitable<std::vector<redis_reply>> run(const std::vector<redis_command>& commands,
                                                   clock::time_point deadline) {
        std::string out;
        for (auto& c : commands) append_command(out, c);
        watchdog guard(*this, deadline);
        std::vector<redis_reply> replies;
        try {
            co_await asio::async_write(socket_, asio::buffer(out), asio::use_awaitable);
            while (replies.size() < commands.size()) {
                void* reply = nullptr;
                if (redisReaderGetReply(reader_.get(), &reply) != REDIS_OK)
                    throw std::system_error(std::make_error_code(std::errc::protocol_error));
                if (reply) {
                    std::unique_ptr<redisReply, void (*)(void*)> owned(static_cast<redisReply*>(reply),
                                                                       freeReplyObject);
                    replies.push_back(to_redis_reply(*owned));
                    continue;
                }
                std::size_t n = co_await socket_.async_read_some(asio::buffer(buffer_), asio::use_awaitable);
                if (redisReaderFeed(reader_.get(), buffer_.data(), n) != REDIS_OK)
                    throw std::system_error(std::make_error_code(std::errc::protocol_error));
            }
        } catch (const std::system_error& e) {
            close();
            throw std::system_error(guard.fired() ? std::make_error_code(std::errc::timed_out) : e.code());
        }
        co_return replies;
    }

    // While no command is outstanding Redis sends nothing, so anything readable (its close, after a CLIENT KILL or
    // a shutdown) means the connection is over. Does not block.
    bool peer_closed() {
        if (!socket_.is_open()) return true;
        char byte = 0;
        asio::error_code ec;
        socket_.non_blocking(true, ec);
        std::size_t n = socket_.receive(asio::buffer(&byte, 1), asio::socket_base::message_peek, ec);
        socket_.non_blocking(false, ec);
        return ec != asio::error::would_block || n > 0;
    }

private:
    // Closes the socket at `deadline` (so whatever waits on it fails), unless it went out of scope before.
    class watchdog {
    public:
        watchdog(redis_connection& c, clock::time_point deadline) : timer_(c.socket_.get_executor(), deadline) {
            timer_.async_wait([&c, s = state_](const asio::error_code& ec) {
                if (ec || !s->armed) return; // disarmed: the connection is not touched
                s->fired = true;
                c.close();
            });
        }
        watchdog(const watchdog&) = delete;
        watchdog& operator=(const watchdog&) = delete;
        ~watchdog() {
            state_->armed = false;
            timer_.cancel();
        }
        bool fired() const noexcept { return state_->fired; }

    private:
        struct state {
            bool armed = true;
            bool fired = false;
        };
        std::shared_ptr<state> state_ = std::make_shared<state>();
        asio::steady_timer timer_;
    };

    static void append_command(std::string& out, const redis_command& command) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (auto& a : command) {
            argv.push_back(a.data());
            lengths.push_back(a.size());
        }
        char* encoded = nullptr;
        auto n = redisFormatCommandArgv(&encoded, static_cast<int>(argv.size()), argv.data(), lengths.data());
        if (n < 0 || !encoded) throw std::bad_alloc();
        out.append(encoded, static_cast<std::size_t>(n));
        redisFreeCommand(encoded);
    }

    struct reader_deleter {
        void operator()(redisReader* r) const noexcept { redisReaderFree(r); }
    };

    asio::ip::tcp::socket socket_;
    std::unique_ptr<redisReader, reader_deleter> reader_;
    std::array<char, 16 * 1024> buffer_{};
};

} // namespace weir::detail
