// What a keep-alive request allocates once its connection has served one: the read buffer and the write buffer
// a connection lets go of while idle go to its thread's spares and come back from there, so a request that
// wakes an idle connection allocates neither. This binary replaces operator new to count large allocations,
// so it is kept apart from the other unit tests.

#include <weir/router.hpp>
#include <weir/server.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

namespace {

// Allocations of at least a read buffer's size (4 KiB) on the server's thread, counted while `counting` is set.
std::atomic<bool> counting{false};
thread_local bool on_server_thread = false;
std::atomic<int> large_allocations{0};
constexpr std::size_t large = 4096;

void* allocate(std::size_t size) {
    if (size >= large && on_server_thread && counting.load(std::memory_order_relaxed))
        large_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}

} // namespace

void* operator new(std::size_t size) { return allocate(size); }
void* operator new[](std::size_t size) { return allocate(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("keep-alive requests to an idle connection reuse the thread's spare read and write buffers") {
    weir::server_options options;
    options.port = 0;
    options.threads = 1;
    options.handle_signals = false;
    weir::router app{
        weir::get<"/hello">([](const auto&) { return weir::response(weir::status::ok, "Hello, World!"); }),
    };
    weir::server server(std::move(app), options);
    unsigned short port = server.listen().port();
    std::thread thread([&] {
        on_server_thread = true; // with one thread, the server's loop runs here
        server.run();
    });

    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::address_v4::loopback(), port});
    std::string answers;
    auto exchange = [&] {
        asio::write(socket, asio::buffer(std::string_view("GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")));
        std::size_t head = asio::read_until(socket, asio::dynamic_buffer(answers), "\r\n\r\n");
        // The body (13 bytes) may have come with the head or not.
        if (answers.size() < head + 13)
            asio::read(socket, asio::dynamic_buffer(answers), asio::transfer_exactly(head + 13 - answers.size()));
        CHECK(answers.compare(0, 15, "HTTP/1.1 200 OK") == 0);
        CHECK(answers.substr(head, 13) == "Hello, World!");
        answers.erase(0, head + 13);
    };
    exchange(); // the first request makes the buffers; the connection then goes idle and lets go of them
    counting = true;
    constexpr int requests = 50;
    for (int i = 0; i < requests; ++i) exchange(); // each waits for its answer: the connection is idle between
    counting = false;
    // Each request would take a 4 KiB read buffer of its own if the spares were not used again.
    CHECK(large_allocations.load() == 0);

    socket.close();
    server.stop();
    thread.join();
}
