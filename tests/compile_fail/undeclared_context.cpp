// A stage that attaches context must declare it, so the types after it are known.
// expect: exactly the context types it declares
#include <weir/pipeline.hpp>

struct principal {
    int id;
};

int main() {
    weir::pipeline app{[](const auto& req, auto next) { return next(req.with(principal{1})); },
                       [](const auto&) { return weir::response(); }};
    weir::http_request m;
    (void)app(weir::request<>(m));
}
