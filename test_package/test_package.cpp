#include <weir/weir.hpp>

#include <cstdio>

int main() {
    weir::pipeline app{[](const auto&) { return weir::response(weir::status::ok, "packaged"); }};
    weir::http_request message;
    message.method_ = "GET";
    message.path_ = message.target_ = "/";
    auto reply = app(weir::request<>(message));
    std::printf("weir %d.%d.%d\n", WEIR_VERSION_MAJOR, WEIR_VERSION_MINOR, WEIR_VERSION_PATCH);
    return reply.status() == weir::status::ok ? 0 : 1;
}
