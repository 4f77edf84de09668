// A handler must return a reply.
// expect: a handler must return a reply
#include <weir/pipeline.hpp>

int main() {
    weir::pipeline app{[](const auto&) { return 42; }};
    weir::http_request m;
    (void)app(weir::request<>(m));
}
