// tls_context refuses what it cannot use with a tls_error that names it. Built against weir::tls (the compiled
// library) and, in weir_unit_tests_components_header_only, with <weir/tls.hpp> defining everything itself.

#ifdef WEIR_HAS_OPENSSL

#include <weir/tls.hpp>

#include <doctest/doctest.h>

#include <string>

namespace {

std::string error_of(const weir::tls_options& options) {
    try {
        weir::tls_context context(options);
    } catch (const weir::tls_error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("a TLS context without a certificate is refused") {
    CHECK(error_of(weir::tls_options{}) == "weir: TLS: no certificate given");
}

TEST_CASE("a TLS context names the certificate file it cannot read") {
    weir::tls_options options;
    options.certificates.push_back({.certificate_chain_file = "/nonexistent/weir-cert.pem",
                                    .private_key_file = "/nonexistent/weir-key.pem"});
    CHECK(error_of(options) == "weir: TLS: cannot read the certificate chain file '/nonexistent/weir-cert.pem'");
}

TEST_CASE("a TLS context refuses PEM text without a certificate, and an empty ALPN name") {
    weir::tls_options options;
    options.certificates.push_back({.certificate_chain_pem = "not PEM", .private_key_pem = "not PEM either"});
    CHECK(error_of(options).starts_with("weir: TLS: no certificate in certificate chain (PEM text): "));
    options.alpn_protocols = {""};
    CHECK(error_of(options) == "weir: TLS: an ALPN protocol name must be 1 to 255 bytes");
}

#endif
