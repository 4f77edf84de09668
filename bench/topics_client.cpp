// The client side of the topics benchmark: opens N subscribers (SSE streams or WebSocket sessions) to a
// weir_topics_server, then publishes 32-byte events (one at a time, or in bursts of 10 requests sent
// back-to-back) and waits after each round until every subscriber has every event. It reports deliveries,
// deliveries per second and the server's CPU time per delivery: utime+stime of the server process (read from
// /proc) from the first publish to the last delivery, divided by the deliveries.
//
//   weir_topics_client sse|ws PORT SERVER_PID SUBSCRIBERS BURST ROUNDS

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int port = 0;

int connect_to_server() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        std::perror("connect");
        std::exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

void send_all(int fd, const std::string& s) {
    std::size_t at = 0;
    while (at < s.size()) {
        ssize_t n = write(fd, s.data() + at, s.size() - at);
        if (n <= 0) {
            std::perror("write");
            std::exit(1);
        }
        at += static_cast<std::size_t>(n);
    }
}

// Reads one whole response on a blocking socket (Content-Length bodies only); returns its body.
std::string read_response(int fd, std::string& buf) {
    char tmp[4096];
    for (;;) {
        auto head_end = buf.find("\r\n\r\n");
        if (head_end != std::string::npos) {
            std::size_t length = 0;
            auto cl = buf.find("Content-Length: ");
            if (cl != std::string::npos && cl < head_end) length = std::stoul(buf.substr(cl + 16));
            if (buf.size() >= head_end + 4 + length) {
                std::string body = buf.substr(head_end + 4, length);
                buf.erase(0, head_end + 4 + length);
                return body;
            }
        }
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0) {
            std::fprintf(stderr, "the server closed the publishing connection\n");
            std::exit(1);
        }
        buf.append(tmp, static_cast<std::size_t>(n));
    }
}

double cpu_seconds(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::istringstream rest(s.substr(s.rfind(')') + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15; ++i) {
        rest >> field;
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
    }
    return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

struct subscriber {
    int fd;
    bool head_done = false;
    std::string head;
    std::size_t frame_left = 0; // WebSocket: bytes of the current frame still to skip
    std::size_t header_have = 0;
    unsigned char header[10];
    char last = 0; // SSE: the previous byte, to spot the blank line that ends an event
    long events = 0;
};

} // namespace

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr, "usage: %s sse|ws PORT SERVER_PID SUBSCRIBERS BURST ROUNDS\n", argv[0]);
        return 2;
    }
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);

    bool ws = std::string(argv[1]) == "ws";
    port = std::atoi(argv[2]);
    int server_pid = std::atoi(argv[3]);
    int count = std::atoi(argv[4]);
    int burst = std::atoi(argv[5]);
    int rounds = std::atoi(argv[6]);

    std::string request = ws ? "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                             : "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    int ep = epoll_create1(0);
    std::vector<subscriber> subs(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        subs[i].fd = connect_to_server();
        send_all(subs[i].fd, request);
        epoll_event e{};
        e.events = EPOLLIN;
        e.data.u32 = static_cast<std::uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &e);
    }

    int control = connect_to_server();
    std::string control_buf;
    for (;;) {
        send_all(control, "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n");
        if (std::stoi(read_response(control, control_buf)) >= count) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    std::vector<epoll_event> ready(1024);
    static char buf[1 << 16];
    long expected = 0;
    auto drain = [&](long target) {
        long total = 0;
        for (auto& s : subs) total += s.events;
        while (total < target) {
            int n = epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 10'000);
            if (n <= 0) {
                std::fprintf(stderr, "timed out with %ld of %ld deliveries\n", total, target);
                std::exit(1);
            }
            for (int k = 0; k < n; ++k) {
                subscriber& s = subs[ready[k].data.u32];
                ssize_t got = read(s.fd, buf, sizeof buf);
                if (got <= 0) {
                    std::fprintf(stderr, "a subscriber was closed\n");
                    std::exit(1);
                }
                std::size_t i = 0, end = static_cast<std::size_t>(got);
                if (!s.head_done) {
                    s.head.append(buf, end);
                    auto h = s.head.find("\r\n\r\n");
                    if (h == std::string::npos) continue;
                    s.head_done = true;
                    i = end - (s.head.size() - (h + 4)); // what followed the head
                }
                for (; i < end;) {
                    if (!ws) {
                        // An event ends with a blank line; the server sends no comments.
                        if (buf[i] == '\n' && s.last == '\n') {
                            ++s.events;
                            ++total;
                        }
                        s.last = buf[i++];
                    } else if (s.frame_left > 0) {
                        std::size_t take = std::min(s.frame_left, end - i);
                        s.frame_left -= take;
                        i += take;
                    } else {
                        s.header[s.header_have++] = static_cast<unsigned char>(buf[i++]);
                        if (s.header_have < 2) continue;
                        std::size_t len = s.header[1] & 0x7f, need = len == 126 ? 4 : len == 127 ? 10 : 2;
                        if (s.header_have < need) continue;
                        if (len == 126) len = (std::size_t(s.header[2]) << 8) | s.header[3];
                        if ((s.header[0] & 0x0f) == 1) {
                            ++s.events;
                            ++total;
                        }
                        s.frame_left = len;
                        s.header_have = 0;
                    }
                }
            }
        }
    };

    std::string payload(32, 'x');
    std::string publish = "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\n" + payload;
    std::string burst_requests;
    for (int i = 0; i < burst; ++i) burst_requests += publish;

    auto start = std::chrono::steady_clock::now();
    double cpu0 = cpu_seconds(server_pid);
    for (int r = 0; r < rounds; ++r) {
        send_all(control, burst_requests); // back-to-back, in one write
        for (int i = 0; i < burst; ++i) read_response(control, control_buf);
        expected += static_cast<long>(count) * burst;
        drain(expected);
    }
    double cpu1 = cpu_seconds(server_pid);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("deliveries=%ld seconds=%.3f deliveries_per_second=%.0f server_cpu_seconds=%.3f "
                "cpu_us_per_delivery=%.3f\n",
                expected, seconds, double(expected) / seconds, cpu1 - cpu0, (cpu1 - cpu0) * 1e6 / double(expected));
    for (auto& s : subs) close(s.fd);
    close(control);
    return 0;
}
