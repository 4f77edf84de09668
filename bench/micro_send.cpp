// What the kernel charges for one small loopback write, by the system call that makes it: send() of one buffer,
// sendmsg() of one iovec, sendmsg() of K iovecs, and the K buffers copied into one send(); and, for scale,
// epoll_ctl(EPOLL_CTL_MOD) on a registered socket (what Asio does for every async_wait) and an empty recv().
// Each pass writes once to each of N connections with one of the four; passes rotate, and each is timed in the
// thread's CPU time, so other processes on a busy machine do not count. Prints the median and quartiles.
//
//   micro_send [N [PASSES [K]]]      (default 1000 400 10; 46-byte events, as an SSE event with its id)

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

namespace {

double cpu_ns() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e9 + double(t.tv_nsec);
}

void report(const char* name, std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::printf("%-22s median %5.0f ns  quartiles %5.0f-%5.0f ns per call\n", name, v[v.size() / 2], v[v.size() / 4],
                v[3 * v.size() / 4]);
}

} // namespace

int main(int argc, char** argv) {
    int n = argc > 1 ? std::atoi(argv[1]) : 1000, passes = argc > 2 ? std::atoi(argv[2]) : 400;
    int k = argc > 3 ? std::clamp(std::atoi(argv[3]), 1, 64) : 10;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof a;
    if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener, 4096) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&a), &length) != 0) {
        std::perror("listen");
        return 1;
    }
    std::vector<int> server(static_cast<std::size_t>(n)), client(static_cast<std::size_t>(n));
    int one = 1;
    for (std::size_t i = 0; i < server.size(); ++i) {
        client[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(client[i], reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            std::perror("connect");
            return 1;
        }
        server[i] = accept(listener, nullptr, nullptr);
        setsockopt(server[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(client[i], F_SETFL, O_NONBLOCK);
        fcntl(server[i], F_SETFL, O_NONBLOCK);
    }
    char event[46];
    std::memset(event, 'x', sizeof event);
    event[44] = event[45] = '\n';
    static char sink[1 << 16];
    const char* names[] = {"send, 1 buffer", "sendmsg, 1 iovec", "sendmsg, K iovecs", "K copied, one send"};
    std::vector<double> per[4];
    for (int p = 0; p < passes; ++p) {
        int mode = p % 4;
        double t0 = cpu_ns();
        for (int fd : server) {
            if (mode == 0) {
                send(fd, event, sizeof event, MSG_NOSIGNAL);
            } else if (mode == 3) {
                char gathered[sizeof event * 64];
                for (int j = 0; j < k; ++j) std::memcpy(gathered + j * sizeof event, event, sizeof event);
                send(fd, gathered, sizeof event * std::size_t(k), MSG_NOSIGNAL);
            } else {
                iovec v[64];
                int count = mode == 1 ? 1 : k;
                for (int j = 0; j < count; ++j) v[j] = {event, sizeof event};
                msghdr m{};
                m.msg_iov = v;
                m.msg_iovlen = std::size_t(count);
                sendmsg(fd, &m, MSG_NOSIGNAL);
            }
        }
        per[mode].push_back((cpu_ns() - t0) / n);
        for (int fd : client)
            while (read(fd, sink, sizeof sink) > 0) {
            }
    }
    std::printf("%d connections, %d passes, K = %d\n", n, passes, k);
    for (int m = 0; m < 4; ++m) report(names[m], per[m]);

    // Asio re-arms an edge-triggered registration with EPOLL_CTL_MOD for every async_wait; an empty recv() for scale.
    int ep = epoll_create1(0);
    for (int fd : server) {
        epoll_event e{};
        e.events = EPOLLIN | EPOLLPRI | EPOLLERR | EPOLLHUP | EPOLLET;
        e.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    std::vector<double> mod, empty;
    for (int p = 0; p < passes; ++p) {
        double t0 = cpu_ns();
        for (int fd : server) {
            epoll_event e{};
            e.events = EPOLLIN | EPOLLPRI | EPOLLERR | EPOLLHUP | EPOLLET;
            e.data.fd = fd;
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
        }
        double t1 = cpu_ns();
        for (int fd : server) recv(fd, sink, sizeof sink, 0);
        mod.push_back((t1 - t0) / n);
        empty.push_back((cpu_ns() - t1) / n);
    }
    report("epoll_ctl MOD", mod);
    report("recv, nothing there", empty);
}
