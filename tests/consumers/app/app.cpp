// A consumer of weir: builds a pipeline and a server type, and checks the version macros.
#include <weir/weir.hpp>

#include <cstdio>

static_assert(WEIR_VERSION_MAJOR >= 0);

int main() {
    weir::pipeline app{[](const auto&) { return weir::response(weir::status::ok, "consumer"); }};
    weir::http_request message;
    message.method_ = "GET";
    message.path_ = message.target_ = "/";
    auto reply = app(weir::request<>(message));
    weir::server_options options;
    options.port = 0;
    weir::server server(std::move(app), options);
    (void)server.listen();
    std::printf("weir %d.%d.%d: %u\n", WEIR_VERSION_MAJOR, WEIR_VERSION_MINOR, WEIR_VERSION_PATCH,
                weir::to_int(reply.status()));
    return reply.status() == weir::status::ok ? 0 : 1;
}
