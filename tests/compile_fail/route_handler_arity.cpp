// A route whose path has a parameter needs a handler that takes it.
// expect: one argument for each
#include <weir/router.hpp>

int main() {
    weir::router r{weir::get<"/users/{id}">([](const weir::request<>&) { return weir::response(); })};
    weir::http_request m;
    (void)r(weir::request<>(m));
}
