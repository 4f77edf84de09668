// hello: the smallest weir server. GET / answers "Hello, World!"; every response carries the headers a
// stage adds after the handler ran.
//
//   hello [--bind ADDR] [--port N] [--threads N]

#include "example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>

namespace {

// A stage: runs the rest of the pipeline, then edits the reply, whatever it is.
struct nosniff {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [](auto& reply) { reply.headers().set("X-Content-Type-Options", "nosniff"); });
    }
};

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    examples::parse_command_line(argc, argv, options, "[--bind ADDR] [--port N] [--threads N]");

    weir::pipeline app{
        nosniff{},
        weir::router{
            weir::get<"/">([](const auto&) { return weir::response(weir::status::ok, "Hello, World!"); }),
            weir::get<"/hello/{name}">([](const weir::request<>&, std::string name) {
                return weir::response(weir::status::ok, "Hello, " + name + "!");
            }),
            weir::post<"/echo">([](const auto& req) { return weir::response(weir::status::ok, std::string(req.body())); }),
        },
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen());
    server.run();
    return 0;
}
