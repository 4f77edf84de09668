// Which system call transport::write_some makes. This binary defines send() and sendmsg() itself, counting the
// calls before passing them on to the C library's, so it is kept apart from the other unit tests.

#include "../unit/socket_pair.hpp"

#include <weir/transport.hpp>

#include <asio/buffer.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>

#include <dlfcn.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <doctest/doctest.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace {

int send_calls = 0;
int sendmsg_calls = 0;

template <class F>
F next_symbol(const char* name) {
    return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" ssize_t send(int fd, const void* data, std::size_t size, int flags) {
    static auto real = next_symbol<ssize_t (*)(int, const void*, std::size_t, int)>("send");
    ++send_calls;
    return real(fd, data, size, flags);
}

extern "C" ssize_t sendmsg(int fd, const struct msghdr* message, int flags) {
    static auto real = next_symbol<ssize_t (*)(int, const struct msghdr*, int)>("sendmsg");
    ++sendmsg_calls;
    return real(fd, message, flags);
}

namespace {

struct calls {
    int send = 0;
    int sendmsg = 0;
};

// Writes `parts` with one write_some and returns the system calls it made; the peer must receive them whole.
calls write_parts(socket_pair& pair, const std::vector<std::string>& parts) {
    std::vector<asio::const_buffer> buffers;
    std::string expected;
    for (const auto& p : parts) {
        buffers.push_back(asio::buffer(p));
        expected += p;
    }
    int send_before = send_calls, sendmsg_before = sendmsg_calls;
    asio::error_code ec;
    std::size_t n = pair.server.write_some(std::span<const asio::const_buffer>(buffers), ec);
    calls made{send_calls - send_before, sendmsg_calls - sendmsg_before};
    REQUIRE_FALSE(ec);
    REQUIRE(n == expected.size());
    std::string got(expected.size(), '\0');
    asio::read(pair.client, asio::buffer(got));
    CHECK(got == expected);
    return made;
}

// `count` parts of `size` bytes each, each of its own letter so that an out-of-order copy shows.
std::vector<std::string> parts_of(std::size_t count, std::size_t size) {
    std::vector<std::string> parts;
    for (std::size_t i = 0; i < count; ++i) parts.emplace_back(size, static_cast<char>('a' + i % 26));
    return parts;
}

} // namespace

TEST_CASE("one buffer is written with send(), not sendmsg()") {
    asio::io_context io;
    socket_pair pair(io);
    auto made = write_parts(pair, {"id: 1\ndata: one event\n\n"});
    CHECK(made.send == 1);
    CHECK(made.sendmsg == 0);
}

TEST_CASE("several small buffers are copied into one send()") {
    asio::io_context io;
    socket_pair pair(io);
    auto made = write_parts(pair, parts_of(10, 46)); // a burst of ten events
    CHECK(made.send == 1);
    CHECK(made.sendmsg == 0);

    // Up to the limit exactly, and with empty buffers among them.
    auto parts = parts_of(4, weir::transport::small_gather / 4);
    parts.insert(parts.begin() + 2, std::string());
    made = write_parts(pair, parts);
    CHECK(made.send == 1);
    CHECK(made.sendmsg == 0);
}

TEST_CASE("a gather over the limit is one sendmsg()") {
    asio::io_context io;
    socket_pair pair(io);
    auto parts = parts_of(4, weir::transport::small_gather / 4);
    parts.back() += 'z';
    auto made = write_parts(pair, parts);
    CHECK(made.send == 0);
    CHECK(made.sendmsg == 1);

    made = write_parts(pair, parts_of(3, 3000)); // large buffers are not copied
    CHECK(made.send == 0);
    CHECK(made.sendmsg == 1);
}

TEST_CASE("a gathered write the socket takes in part counts what reached the peer") {
    asio::io_context io;
    socket_pair pair(io);
    pair.server.lowest_layer().set_option(asio::socket_base::send_buffer_size(4096));
    pair.client.set_option(asio::socket_base::receive_buffer_size(4096));
    // Small gathers until the socket is full: the bytes counted are the bytes the peer reads, in order.
    std::string sent;
    std::size_t round = 0;
    for (;;) {
        auto parts = parts_of(7, 37);
        for (auto& p : parts) p[0] = static_cast<char>('0' + round % 10);
        ++round;
        std::vector<asio::const_buffer> buffers;
        std::string all;
        for (const auto& p : parts) {
            buffers.push_back(asio::buffer(p));
            all += p;
        }
        asio::error_code ec;
        std::size_t n = pair.server.write_some(std::span<const asio::const_buffer>(buffers), ec);
        sent += all.substr(0, n);
        if (ec == asio::error::would_block) break;
        REQUIRE_FALSE(ec);
        REQUIRE(round < 100'000);
    }
    std::string got(sent.size(), '\0');
    asio::read(pair.client, asio::buffer(got));
    CHECK(got == sent);
}
