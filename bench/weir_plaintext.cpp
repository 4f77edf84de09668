// GET /plaintext -> "Hello, World!" with three headers, for the side-by-side benchmark.
//   weir_plaintext [--port N] [--stages bare|pipeline] [--tls-cert FILE --tls-key FILE]
// With a certificate (built with weir::tls) it serves HTTPS, for bench/tls.py.
// bare: the handler sets the headers. pipeline: five stages do (request id, security headers x2, CORS-like,
// timing), as a real service would.

#include "../examples/example_options.hpp"

#include <weir/middleware.hpp>
#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#ifdef WEIR_HAS_OPENSSL
#include <weir/tls.hpp>
#endif

#include <string>

namespace {

struct allow_any_origin {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [](auto& r) { r.headers().set("Access-Control-Allow-Origin", "*"); });
    }
};

struct nosniff {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [](auto& r) { r.headers().set("X-Content-Type-Options", "nosniff"); });
    }
};

struct deny_frames {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [](auto& r) { r.headers().set("X-Frame-Options", "DENY"); });
    }
};

struct count_requests {
    std::size_t* counter;
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        ++*counter;
        return next(req);
    }
};

struct method_guard {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        if (req.method() != "GET" && req.method() != "HEAD")
            return weir::respond(next, weir::response(weir::status::method_not_allowed));
        return next(req);
    }
};

} // namespace

int main(int argc, char** argv) {
    weir::server_options options;
    std::string stages = "bare";
    std::string cert, key;
    examples::parse_command_line(argc, argv, options,
                                 "[--port N] [--stages bare|pipeline] [--tls-cert FILE --tls-key FILE]",
                                 [&](std::string_view flag, std::string_view value) {
                                     if (flag == "--stages") stages = std::string(value);
                                     else if (flag == "--tls-cert") cert = std::string(value);
                                     else if (flag == "--tls-key") key = std::string(value);
                                     else return false;
                                     return true;
                                 });
    if (!cert.empty()) {
#ifdef WEIR_HAS_OPENSSL
        weir::tls_options tls;
        tls.certificates.push_back({.certificate_chain_file = cert, .private_key_file = key});
        options.tls = std::make_shared<weir::tls_context>(std::move(tls));
#else
        fmt::print(stderr, "built without weir::tls\n");
        return 2;
#endif
    }
    options.threads = 1;
    options.handle_signals = true;

    if (stages == "bare") {
        weir::router app{weir::get<"/plaintext">([](const auto&) {
            weir::response r(weir::status::ok, "Hello, World!");
            r.headers().set("Access-Control-Allow-Origin", "*");
            r.headers().set("X-Content-Type-Options", "nosniff");
            r.headers().set("X-Frame-Options", "DENY");
            return r;
        })};
        weir::server server(std::move(app), options);
        examples::announce(server.listen(), server.is_secure());
        server.run();
    } else {
        static std::size_t counter = 0;
        weir::pipeline app{
            count_requests{&counter}, method_guard{}, allow_any_origin{}, nosniff{}, deny_frames{},
            weir::router{weir::get<"/plaintext">([](const auto&) { return weir::response(weir::status::ok, "Hello, World!"); })},
        };
        weir::server server(std::move(app), options);
        examples::announce(server.listen(), server.is_secure());
        server.run();
    }
    return 0;
}
