// Holds many idle connections to bench/weir_streams from one source address, for memory per connection at
// scale and for the time one SSE event takes to reach every subscriber. Plain epoll, one thread, a few dozen
// bytes per connection, so that several of these processes (each under the per-process descriptor limit) can
// hold tens of thousands of connections on one core. Loopback only; it ends by itself.
//
//   weir_idle PORT SOURCE_ADDRESS COUNT http|sse|ws|ws-callbacks [WINDOW]
//
// Binds every socket to SOURCE_ADDRESS (127.0.0.2, 127.0.0.3, ...: each has its own ephemeral ports), opens
// COUNT connections with at most WINDOW (default 128) connecting or waiting for their response head at once,
// and makes each one idle: `http` after one GET /plaintext, `sse` subscribed to GET /events, `ws` upgraded on
// GET /echo (a coroutine handler), `ws-callbacks` on GET /echo-callbacks (websocket_callbacks). Then it prints
// one line and waits on standard input:
//
//   ready CONNECTED SECONDS ERRORS          every connection has its head (or failed: ERRORS > 0)
//   received COUNT FIRST_NS LAST_NS CLOSED  (sse) printed once every subscriber has read "event: message",
//                                           with the CLOCK_MONOTONIC times of the first and last receipt
//
// Standard input: "report" prints the `received` line as it stands; "reset" forgets the event (for the next
// one); "quit" or end of input exits, closing all.
// It gives up (exit 1) when not ready within 120 s, and exits after 600 s whatever happens.

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

enum class phase : std::uint8_t { unused, connecting, waiting_head, idle, failed, closed };

struct connection {
    int fd = -1;
    phase state = phase::unused;
    bool got_event = false;
    std::string head;  // the response head as it arrives; emptied once complete
    char carry[16]{};  // the last bytes read while idle, so a marker split across reads is still found
    std::uint8_t carried = 0;
};

// IP_BIND_ADDRESS_NO_PORT (Linux 4.2), which glibc's <netinet/in.h> does not always name.
#ifdef IP_BIND_ADDRESS_NO_PORT
constexpr int bind_address_no_port = IP_BIND_ADDRESS_NO_PORT;
#else
constexpr int bind_address_no_port = 24;
#endif

constexpr std::string_view event_marker = "event: message\n";
static_assert(event_marker.size() < sizeof(connection::carry));

std::int64_t monotonic_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

const char* request_for(std::string_view kind) {
    if (kind == "ws-callbacks")
        return "GET /echo-callbacks HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (kind == "ws")
        return "GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (kind == "sse") return "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n";
    return "GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
}

struct client {
    int epoll_fd = -1;
    sockaddr_in server{};
    sockaddr_in source{};
    std::string_view kind;
    const char* request = nullptr;
    std::vector<connection> conns;
    std::size_t started = 0, in_flight = 0, ready = 0, errors = 0, closed = 0, received = 0;
    std::int64_t first_receipt = 0, last_receipt = 0;
    int first_errno = 0;

    void fail(connection& c, int err) {
        if (!first_errno) first_errno = err;
        if (c.state == phase::connecting || c.state == phase::waiting_head) --in_flight;
        c.state = phase::failed;
        ++errors;
        ::close(c.fd);
        c.fd = -1;
    }

    // Starts connections until WINDOW are in flight or all are started.
    void start_more(std::size_t window) {
        while (in_flight < window && started < conns.size()) {
            auto index = started++;
            auto& c = conns[index];
            c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c.fd < 0) {
                c.state = phase::connecting;
                ++in_flight;
                fail(c, errno);
                continue;
            }
            c.state = phase::connecting;
            ++in_flight;
            // The port is picked at connect(), for the whole address pair: a bind() that picks it must find
            // one no socket on the source address holds, TIME_WAIT ones of earlier runs included, and slows to
            // a crawl (tens of milliseconds a connection) once most are held.
            int no_port = 1;
            ::setsockopt(c.fd, IPPROTO_IP, bind_address_no_port, &no_port, sizeof no_port);
            if (::bind(c.fd, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0) {
                fail(c, errno);
                continue;
            }
            epoll_event ev{};
            ev.events = EPOLLOUT;
            ev.data.u64 = index;
            if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0 &&
                errno != EINPROGRESS) {
                fail(c, errno);
                continue;
            }
            if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c.fd, &ev) != 0) fail(c, errno);
        }
    }

    void on_writable(connection& c, std::size_t index) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) return fail(c, err);
        auto size = std::strlen(request);
        if (::send(c.fd, request, size, MSG_NOSIGNAL) != static_cast<ssize_t>(size)) return fail(c, errno);
        c.state = phase::waiting_head;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = index;
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev) != 0) fail(c, errno);
    }

    void on_idle_bytes(connection& c, const char* data, std::size_t n) {
        if (kind != "sse" || c.got_event) return;
        std::string window(c.carry, c.carried);
        window.append(data, n);
        if (window.find(event_marker) != std::string::npos) {
            auto now = monotonic_ns();
            c.got_event = true;
            if (received++ == 0) first_receipt = now;
            last_receipt = now;
            return;
        }
        auto keep = std::min(window.size(), event_marker.size() - 1);
        std::memcpy(c.carry, window.data() + window.size() - keep, keep);
        c.carried = static_cast<std::uint8_t>(keep);
    }

    void on_readable(connection& c) {
        static char buffer[65536];
        for (;;) {
            auto n = ::recv(c.fd, buffer, sizeof buffer, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                if (c.state == phase::waiting_head) return fail(c, n == 0 ? ECONNRESET : errno);
                ++closed; // the server closed an idle connection: counted, and the numbers say so
                c.state = phase::closed;
                ::close(c.fd);
                c.fd = -1;
                return;
            }
            if (n < 0) return;
            auto size = static_cast<std::size_t>(n);
            if (c.state == phase::waiting_head) {
                c.head.append(buffer, size);
                auto end = c.head.find("\r\n\r\n");
                if (end == std::string::npos) continue;
                bool ok = c.head.rfind(kind.starts_with("ws") ? "HTTP/1.1 101" : "HTTP/1.1 200", 0) == 0;
                if (!ok) return fail(c, EPROTO);
                std::string rest = c.head.substr(end + 4);
                std::string().swap(c.head);
                c.state = phase::idle;
                --in_flight;
                ++ready;
                on_idle_bytes(c, rest.data(), rest.size());
            } else {
                on_idle_bytes(c, buffer, size);
            }
        }
    }

    void reset() {
        for (auto& c : conns) c.got_event = false;
        received = 0;
        first_receipt = last_receipt = 0;
    }

    void print_received() const {
        std::printf("received %zu %lld %lld %zu\n", received, static_cast<long long>(first_receipt),
                    static_cast<long long>(last_receipt), closed);
        std::fflush(stdout);
    }
};

void raise_descriptor_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: weir_idle PORT SOURCE_ADDRESS COUNT http|sse|ws|ws-callbacks [WINDOW]\n");
        return 2;
    }
    raise_descriptor_limit();
    client cl;
    cl.kind = argv[4];
    if (cl.kind != "http" && cl.kind != "sse" && cl.kind != "ws" && cl.kind != "ws-callbacks") {
        std::fprintf(stderr, "weir_idle: the kind is http, sse, ws or ws-callbacks\n");
        return 2;
    }
    cl.request = request_for(cl.kind);
    cl.server.sin_family = AF_INET;
    cl.server.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[1])));
    cl.server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cl.source.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[2], &cl.source.sin_addr) != 1) {
        std::fprintf(stderr, "weir_idle: %s is not an IPv4 address\n", argv[2]);
        return 2;
    }
    auto count = static_cast<std::size_t>(std::strtoul(argv[3], nullptr, 10));
    std::size_t window = argc > 5 ? static_cast<std::size_t>(std::strtoul(argv[5], nullptr, 10)) : 128;
    cl.conns.resize(count);

    cl.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    constexpr std::uint64_t stdin_tag = ~std::uint64_t{0};
    epoll_event in{};
    in.events = EPOLLIN;
    in.data.u64 = stdin_tag;
    epoll_ctl(cl.epoll_fd, EPOLL_CTL_ADD, STDIN_FILENO, &in);

    const auto start = monotonic_ns();
    const auto ready_deadline = start + 120'000'000'000LL;
    const auto hard_deadline = start + 600'000'000'000LL;
    bool announced = false, all_received_printed = false;
    std::string input;
    std::vector<epoll_event> events(1024);
    cl.start_more(window);
    for (;;) {
        int n = epoll_wait(cl.epoll_fd, events.data(), static_cast<int>(events.size()), 250);
        if (n < 0 && errno != EINTR) return 1;
        for (int i = 0; i < n; ++i) {
            auto tag = events[static_cast<std::size_t>(i)].data.u64;
            if (tag == stdin_tag) {
                char buf[256];
                auto got = ::read(STDIN_FILENO, buf, sizeof buf);
                if (got <= 0) return 0;
                input.append(buf, static_cast<std::size_t>(got));
                for (auto nl = input.find('\n'); nl != std::string::npos; nl = input.find('\n')) {
                    auto line = input.substr(0, nl);
                    input.erase(0, nl + 1);
                    if (line == "quit") return 0;
                    if (line == "report") cl.print_received();
                    if (line == "reset") {
                        cl.reset();
                        all_received_printed = false;
                    }
                }
                continue;
            }
            auto& c = cl.conns[tag];
            if (c.state == phase::connecting) cl.on_writable(c, tag);
            else if (c.state == phase::waiting_head || c.state == phase::idle) cl.on_readable(c);
        }
        cl.start_more(window);
        auto now = monotonic_ns();
        if (!announced && cl.ready + cl.errors == count) {
            announced = true;
            std::printf("ready %zu %.3f %zu\n", cl.ready, static_cast<double>(now - start) / 1e9, cl.errors);
            if (cl.errors) std::fprintf(stderr, "weir_idle: first error: %s\n", std::strerror(cl.first_errno));
            std::fflush(stdout);
        }
        if (!announced && now > ready_deadline) {
            std::printf("ready %zu %.3f %zu\n", cl.ready, static_cast<double>(now - start) / 1e9,
                        count - cl.ready);
            std::fflush(stdout);
            return 1;
        }
        if (!all_received_printed && cl.kind == "sse" && cl.received == count) {
            all_received_printed = true;
            cl.print_received();
        }
        if (now > hard_deadline) return 1;
    }
}
