// A plain stage cannot wait for a coroutine handler after it.
// expect: cannot wait for `next`
#include <weir/pipeline.hpp>

int main() {
    weir::pipeline app{[](const auto& req, auto next) -> weir::reply_of<decltype(next)> { return weir::response(); },
                       [](const auto&) -> asio::awaitable<weir::response> { co_return weir::response(); }};
    weir::http_request m;
    (void)app(weir::request<>(m));
}
