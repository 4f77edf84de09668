// cpp-httplib peer: GET /plaintext with the same three headers (set as default headers).
#include <httplib.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    int port = argc > 1 ? std::atoi(argv[1]) : 8080;
    httplib::Server server;
    // cpp-httplib serves each keep-alive connection on a pool thread: give it one per wrk connection, or most
    // connections would wait for a free thread and the comparison would measure the pool size.
    server.new_task_queue = [] { return new httplib::ThreadPool(300); };
    // Like the other servers: no Nagle delay on small responses, and keep-alive connections that stay open
    // (cpp-httplib closes one after 5 requests by default).
    server.set_tcp_nodelay(true);
    server.set_keep_alive_max_count(1000000);
    server.set_default_headers({{"Access-Control-Allow-Origin", "*"},
                                {"X-Content-Type-Options", "nosniff"},
                                {"X-Frame-Options", "DENY"}});
    server.Get("/plaintext", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("Hello, World!", "text/plain");
    });
    std::printf("listening on http://127.0.0.1:%d\n", port);
    std::fflush(stdout);
    server.listen("127.0.0.1", port);
}
