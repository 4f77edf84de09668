// A handler that asks for a context type no stage attached does not compile.
// expect: no context value of the requested type
#include <weir/pipeline.hpp>

struct principal {
    int id;
};

int main() {
    weir::pipeline app{[](const auto& req) {
        return weir::response(weir::status::ok, std::to_string(req.template get<principal>().id));
    }};
    weir::http_request m;
    (void)app(weir::request<>(m));
}
