// RESTinio peer: single-threaded, GET /plaintext with the same three headers. Pipelining is on (RESTinio
// takes one request at a time by default) and Nagle is off, as in the other servers.
#include <restinio/all.hpp>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    unsigned short port = argc > 1 ? static_cast<unsigned short>(std::atoi(argv[1])) : 8080;
    std::printf("listening on http://127.0.0.1:%u\n", port);
    std::fflush(stdout);
    restinio::run(restinio::on_this_thread()
                      .port(port)
                      .address("127.0.0.1")
                      .max_pipelined_requests(16)
                      .socket_options_setter([](auto& options) {
                          options.set_option(restinio::asio_ns::ip::tcp::no_delay{true});
                      })
                      .request_handler([](auto req) {
                          if (req->header().request_target() != "/plaintext") return restinio::request_rejected();
                          return req->create_response()
                              .append_header(restinio::http_field::content_type, "text/plain")
                              .append_header("Access-Control-Allow-Origin", "*")
                              .append_header("X-Content-Type-Options", "nosniff")
                              .append_header("X-Frame-Options", "DENY")
                              .set_body("Hello, World!")
                              .done();
                      }));
}
