// Micro benchmark: the cost of a five-stage pipeline over a bare handler, per request, without the network.
// Prints nanoseconds per call for each and their ratio. Run on an idle core: taskset -c 0 ./micro_pipeline

#include <weir/pipeline.hpp>
#include <weir/router.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

template <const char* Name, const char* Value>
struct set_header {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return weir::after_next(next, req, [](auto& r) { r.headers().set(Name, Value); });
    }
};
constexpr char acao[] = "Access-Control-Allow-Origin", star[] = "*";
constexpr char xcto[] = "X-Content-Type-Options", nosniff[] = "nosniff";
constexpr char xfo[] = "X-Frame-Options", deny[] = "DENY";

struct pass_through {
    template <class Request, class Next>
    weir::next_result_t<Next> operator()(const Request& req, Next next) const {
        return next(req);
    }
};

template <class App>
double ns_per_call(App& app, const weir::http_request& m, int n) {
    std::size_t sink = 0;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
        auto r = app(weir::request<>(m));
        sink += r.headers().size();
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    if (sink == 0) std::puts("");
    return ns / n;
}

} // namespace

int main() {
    weir::http_request m;
    m.method_ = "GET";
    m.target_ = m.path_ = "/plaintext";
    m.version_ = 11;

    weir::router bare{weir::get<"/plaintext">([](const auto&) {
        weir::response r(weir::status::ok, "Hello, World!");
        r.headers().set(acao, star);
        r.headers().set(xcto, nosniff);
        r.headers().set(xfo, deny);
        return r;
    })};
    weir::pipeline staged{pass_through{}, pass_through{}, set_header<acao, star>{}, set_header<xcto, nosniff>{},
                          set_header<xfo, deny>{},
                          weir::router{weir::get<"/plaintext">(
                              [](const auto&) { return weir::response(weir::status::ok, "Hello, World!"); })}};

    constexpr int n = 2'000'000;
    double best_bare = 1e18, best_staged = 1e18;
    for (int round = 0; round < 5; ++round) { // interleaved, best of five
        best_bare = std::min(best_bare, ns_per_call(bare, m, n));
        best_staged = std::min(best_staged, ns_per_call(staged, m, n));
    }
    std::printf("bare handler:      %.1f ns/request\n", best_bare);
    std::printf("5-stage pipeline:  %.1f ns/request\n", best_staged);
    std::printf("ratio:             %.3f\n", best_staged / best_bare);
}
