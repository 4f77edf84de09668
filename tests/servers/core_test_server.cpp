// A server for the HTTP core integration tests: small limits and timeouts set from the command line, and
// routes that echo, wait, throw and count, and an event stream with a large head (a head flush that blocks).
// With --tls-cert and --tls-key, HTTPS (when built with weir::tls).
// With --plain, only the synchronous routes behind a synchronous stage: an application whose replies are all
// plain responses, which the connection serves on its fast path (no coroutine while requests come whole).

#include "../../examples/example_options.hpp"

#include <weir/pipeline.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/sse.hpp>
#ifdef WEIR_HAS_OPENSSL
#include <weir/tls.hpp>
#endif

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <system_error>
#include <string>

static std::atomic<int> handled{0};
static std::atomic<int> cancelled{0}; // /slow handlers whose wait was cancelled

// The synchronous routes, plus `extra` ones.
template <class... Extra>
auto routes(Extra... extra) {
    return weir::router{
        weir::get<"/">([](const auto&) { return weir::response(weir::status::ok, "Hello, World!"); }),
        weir::get<"/hello/{name}">([](const weir::request<>&, std::string name) {
            return weir::response(weir::status::ok, "Hello, " + name + "!");
        }),
        weir::post<"/echo">([](const auto& req) {
            return weir::response(weir::status::ok, std::string(req.body()), "application/octet-stream");
        }),
        weir::get<"/throw">([](const auto&) -> weir::response { throw std::runtime_error("handler failed"); }),
        weir::get<"/tamper">([](const auto&) {
            weir::response r(weir::status::ok, "x");
            r.headers().set("Content-Length", "999");
            return r;
        }),
        weir::get<"/no-content">([](const auto&) { return weir::response(weir::status::no_content); }),
        weir::get<"/count">([](const auto&) { return weir::response(weir::status::ok, std::to_string(handled.load())); }),
        weir::get<"/cancelled">([](const auto&) {
            return weir::response(weir::status::ok, std::to_string(cancelled.load()));
        }),
        extra...,
    };
}

int main(int argc, char** argv) {
    weir::raise_open_file_limit(); // tests hold thousands of connections
    bool plain = false;
    std::string tls_cert, tls_key;
    weir::server_options options;
    auto ms = [](std::string_view v) { return std::chrono::milliseconds(std::stol(std::string(v))); };
    auto size = [](std::string_view v) { return static_cast<std::size_t>(std::stoul(std::string(v))); };
    examples::parse_command_line(
        argc, argv, options, "[--port N] [--header-timeout-ms N] [--idle-timeout-ms N] [--max-body N] [--plain 1] ...",
        [&](std::string_view flag, std::string_view value) {
            if (flag == "--header-timeout-ms") options.header_timeout = ms(value);
            else if (flag == "--body-timeout-ms") options.body_timeout = ms(value);
            else if (flag == "--idle-timeout-ms") options.idle_timeout = ms(value);
            else if (flag == "--write-timeout-ms") options.write_timeout = ms(value);
            else if (flag == "--shutdown-timeout-ms") options.shutdown_timeout = ms(value);
            else if (flag == "--max-body") options.limits.max_body_bytes = size(value);
            else if (flag == "--max-header-bytes") options.limits.max_header_bytes = size(value);
            else if (flag == "--max-request-line") options.limits.max_request_line = size(value);
            else if (flag == "--max-header-count") options.limits.max_header_count = size(value);
            else if (flag == "--plain") plain = value == "1";
            else if (flag == "--tls-cert") tls_cert = std::string(value);
            else if (flag == "--tls-key") tls_key = std::string(value);
            else return false;
            return true;
        });

    if (!tls_cert.empty()) {
#ifdef WEIR_HAS_OPENSSL
        weir::tls_options tls;
        tls.certificates.push_back({.certificate_chain_file = tls_cert, .private_key_file = tls_key});
        options.tls = std::make_shared<weir::tls_context>(std::move(tls));
#else
        return 2;
#endif
    }

    if (plain) {
        weir::pipeline app{
            [](const auto& req, auto next) {
                ++handled;
                return next(req);
            },
            routes(),
        };
        static_assert(weir::detail::serves_plain_v<decltype(app)>,
                      "--plain must exercise the connection's fast path");
        weir::server server(std::move(app), options);
        examples::announce(server.listen(), server.is_secure());
        server.run();
        return 0;
    }

    weir::pipeline app{
        [](const auto& req, auto next) -> asio::awaitable<weir::reply_of<decltype(next)>> {
            ++handled;
            co_return co_await next(req);
        },
        routes(
            weir::get<"/slow">([](const weir::request<>& req) -> asio::awaitable<weir::response> {
                auto ms = std::stol(req.query_param("ms").value_or("200"));
                asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
                try {
                    co_await t.async_wait(asio::use_awaitable);
                } catch (const std::system_error& e) {
                    if (e.code() == asio::error::operation_aborted) ++cancelled;
                    throw;
                }
                co_return weir::response(weir::status::ok, "slept");
            }),
            // An endless event stream whose head carries `pad` bytes of padding, so that writing the head blocks
            // on a client that does not read.
            weir::get<"/padded-stream">([](const auto& req) {
                auto pad = std::stoul(req.query_param("pad").value_or("0"));
                auto p = weir::event_stream(req, [](weir::sse_stream& out) -> asio::awaitable<void> {
                    asio::steady_timer t(out.get_executor());
                    for (int i = 0;; ++i) {
                        weir::sse_event e;
                        e.data = std::to_string(i);
                        if (!co_await out.send(e)) co_return;
                        t.expires_after(std::chrono::milliseconds(50));
                        co_await t.async_wait(asio::use_awaitable);
                    }
                });
                p.headers().set("X-Padding", std::string(pad, 'p'));
                return p;
            })),
    };

    weir::server server(std::move(app), options);
    examples::announce(server.listen(), server.is_secure());
    server.run();
    return 0;
}
