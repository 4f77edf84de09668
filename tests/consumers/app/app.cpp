// A consumer of weir: builds a pipeline and a server type, and checks the version macros. With
// WEIR_HAS_ZLIB (CMake: weir::zlib) it also runs the gzip stage, which is what needs zlib linked; with
// WEIR_HAS_OPENSSL (weir::tls) it loads TLS settings, which is what needs OpenSSL linked; with WEIR_HAS_HIREDIS
// (weir::redis) it publishes to a Redis that is not there, which is what needs hiredis linked.
#include <weir/weir.hpp>
#ifdef WEIR_HAS_ZLIB
#include <weir/middleware/compression.hpp>
#endif
#ifdef WEIR_HAS_OPENSSL
#include <weir/tls.hpp>
#endif
#ifdef WEIR_HAS_HIREDIS
#include <weir/topics/redis.hpp>
#endif

#include <cstdio>
#include <string>

static_assert(WEIR_VERSION_MAJOR >= 0);

int main() {
    weir::pipeline app{[](const auto&) { return weir::response(weir::status::ok, "consumer"); }};
    weir::http_request message;
    message.method_ = "GET";
    message.path_ = message.target_ = "/";
    auto reply = app(weir::request<>(message));
    weir::server_options options;
    options.port = 0;
    weir::server server(std::move(app), options);
    (void)server.listen();
    bool ok = reply.status() == weir::status::ok;
#ifdef WEIR_HAS_ZLIB
    std::string zipped;
    ok = ok && weir::compression::gzip(std::string(4096, 'a'), zipped, 6) && zipped.size() < 4096;
    std::printf("gzip: %zu bytes\n", zipped.size());
#endif
#ifdef WEIR_HAS_OPENSSL
    try {
        weir::tls_options tls;
        tls.certificates.push_back({.certificate_chain_pem = "not PEM", .private_key_pem = "not PEM"});
        weir::tls_context context(tls);
        ok = false; // text that is not PEM must be refused
    } catch (const weir::tls_error& e) {
        std::printf("tls: %s\n", e.what());
    }
#endif
#ifdef WEIR_HAS_HIREDIS
    try {
        // Port 1 on loopback: nothing listens there, so the publish must fail at once.
        weir::redis_topic_backend bus(weir::parse_redis_url("redis://127.0.0.1:1"));
        bus.publish("t", weir::sse_event{});
        ok = false;
    } catch (const weir::topic_publish_error& e) {
        std::printf("redis: %s\n", e.what());
    }
#endif
    std::printf("weir %d.%d.%d: %u\n", WEIR_VERSION_MAJOR, WEIR_VERSION_MINOR, WEIR_VERSION_PATCH,
                weir::to_int(reply.status()));
    return ok ? 0 : 1;
}
