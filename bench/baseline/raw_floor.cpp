// The floor for the topics and WebSocket echo benchmarks: what the kernel costs for the same work with next to
// no user-space work. One thread, raw epoll, no library.
// - Topics: the same routes as bench/topics_server.cpp (GET /events, GET /ws, POST /publish, GET /stats), the
//   same delivery pattern as weir's topics (every publish read in one pass is queued to every subscriber, then
//   one send() per subscriber carries all of them).
// - Echo: GET /echo upgrades to WebSocket; each read's complete frames (small, masked) go back unmasked in one
//   send(), as bench/load_client.cpp's `ws` mode expects.
// Not a server: it trusts its clients, answers the WebSocket handshake only for the RFC 6455 sample key they
// send, handles only frames under 126 bytes and assumes a send never blocks.
//
//   raw_floor --port N

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct client {
    std::string in;
    bool subscriber = false;
    bool websocket = false;
    bool echo = false;
    std::string out; // events queued in this pass
};

volatile std::sig_atomic_t stopping = 0;

void send_all(int fd, const std::string& s) {
    std::size_t at = 0;
    while (at < s.size()) {
        ssize_t n = send(fd, s.data() + at, s.size() - at, MSG_NOSIGNAL);
        if (n <= 0) return;
        at += static_cast<std::size_t>(n);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 3 || std::string_view(argv[1]) != "--port") {
        std::fprintf(stderr, "usage: %s --port N\n", argv[0]);
        return 2;
    }
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    std::signal(SIGTERM, [](int) { stopping = 1; });
    std::signal(SIGINT, [](int) { stopping = 1; });

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::atoi(argv[2])));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener, 4096) != 0) {
        std::perror("listen");
        return 1;
    }
    int ep = epoll_create1(0);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = listener;
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &e);

    std::vector<client> clients; // by descriptor
    std::vector<int> subscribers;
    std::vector<int> dirty;
    std::vector<epoll_event> ready(1024);
    static char buf[1 << 16];
    while (!stopping) {
        int n = epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 1000);
        for (int k = 0; k < n; ++k) {
            int fd = ready[k].data.fd;
            if (fd == listener) {
                for (int c; (c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK)) >= 0;) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event ce{};
                    ce.events = EPOLLIN;
                    ce.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                    if (clients.size() <= std::size_t(c)) clients.resize(std::size_t(c) + 1);
                    clients[std::size_t(c)] = client{};
                }
                continue;
            }
            client& c = clients[std::size_t(fd)];
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
                close(fd);
                if (c.subscriber) std::erase(subscribers, fd);
                c = client{};
                continue;
            }
            c.in.append(buf, static_cast<std::size_t>(got));
            std::string answers;
            if (c.echo) {
                std::size_t at = 0;
                while (c.in.size() - at >= 6 && c.in.size() - at >= 6 + (c.in[at + 1] & 0x7f)) {
                    std::size_t len = c.in[at + 1] & 0x7f;
                    const char* mask = c.in.data() + at + 2;
                    answers += c.in[at];
                    answers += char(len);
                    for (std::size_t i = 0; i < len; ++i) answers += char(c.in[at + 6 + i] ^ mask[i % 4]);
                    at += 6 + len;
                }
                c.in.erase(0, at);
                if (!answers.empty()) send_all(fd, answers);
                continue;
            }
            for (;;) {
                auto head_end = c.in.find("\r\n\r\n");
                if (head_end == std::string::npos) break;
                std::string_view head(c.in.data(), head_end);
                std::size_t body = 0;
                if (auto cl = head.find("Content-Length: "); cl != std::string_view::npos)
                    body = std::strtoul(c.in.c_str() + cl + 16, nullptr, 10);
                if (c.in.size() < head_end + 4 + body) break;
                std::string payload = c.in.substr(head_end + 4, body);
                if (head.starts_with("POST /publish ")) {
                    std::string sse = "data: " + payload + "\n\n";
                    std::string frame{char(0x81), char(payload.size())}; // payloads here are < 126 bytes
                    frame += payload;
                    for (int s : subscribers) {
                        client& sub = clients[std::size_t(s)];
                        if (sub.out.empty()) dirty.push_back(s);
                        sub.out += sub.websocket ? frame : sse;
                    }
                    answers += "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
                } else if (head.starts_with("GET /stats ")) {
                    auto count = std::to_string(subscribers.size());
                    answers += "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(count.size()) + "\r\n\r\n" + count;
                } else if (head.starts_with("GET /events ")) {
                    c.subscriber = true;
                    subscribers.push_back(fd);
                    answers += "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n";
                } else if ((head.starts_with("GET /ws ") || head.starts_with("GET /echo ")) &&
                           head.find("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==") != std::string_view::npos) {
                    if (head.starts_with("GET /ws ")) {
                        c.subscriber = c.websocket = true;
                        subscribers.push_back(fd);
                    } else {
                        c.echo = true;
                    }
                    answers += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                    c.in.erase(0, head_end + 4);
                    if (c.echo) break; // its frames come after the 101 and are read on the next pass
                    continue;
                } else {
                    answers += "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
                }
                c.in.erase(0, head_end + 4 + body);
            }
            if (!answers.empty()) send_all(fd, answers);
        }
        // The delivery pass: one send per subscriber for everything this pass queued.
        for (int s : dirty) {
            client& sub = clients[std::size_t(s)];
            if (!sub.subscriber) continue; // gone during this pass
            send_all(s, sub.out);
            sub.out.clear();
        }
        dirty.clear();
    }
    for (std::size_t fd = 0; fd < clients.size(); ++fd)
        if (clients[fd].subscriber) close(int(fd));
    close(listener);
}
