// A stage that returns nothing does not compile.
// expect: a stage must return a reply
#include <weir/pipeline.hpp>

int main() {
    weir::pipeline app{[](const auto& req, auto next) { (void)next(req); },
                       [](const auto&) { return weir::response(weir::status::ok); }};
    weir::http_request m;
    (void)app(weir::request<>(m));
}
