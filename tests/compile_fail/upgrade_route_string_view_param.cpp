// A route that can answer with an upgrade takes its path parameters as owning values: a std::string_view
// captured by the session would point into a buffer that is gone when the session runs.
// expect: can return an upgrade takes its path parameters as std::string
#include <weir/router.hpp>
#include <weir/websocket.hpp>

int main() {
    weir::router app{weir::get<"/rooms/{room}/ws">([](const weir::request<>& req, std::string_view room) {
        return weir::accept_websocket(req, [room](weir::websocket_connection& ws) -> asio::awaitable<void> {
            co_await ws.send(std::string(room));
        });
    })};
    weir::http_request m;
    (void)app(weir::request<>(m));
}
