#pragma once

// tls_context's definitions: included by <weir/tls.hpp> when header-only, compiled once into the weir::tls
// library (src/tls.cpp) with WEIR_TLS_SEPARATE_COMPILATION.

#include <weir/detail/tls_layer.hpp>
#include <weir/tls.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace weir {
namespace detail {

WEIR_TLS_DECL std::string tls_read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw tls_error("weir: TLS: cannot read the " + std::string(what) + " file '" + path + "'");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

WEIR_TLS_DECL tls_certificates::entry tls_make_context(const tls_options& options, tls_certificates& set,
                                                       const std::string& chain, const std::string& chain_name,
                                                       const std::string& key, const std::string& key_name) {
    ERR_clear_error();
    tls_certificates::entry e;
    e.context.reset(SSL_CTX_new(TLS_server_method()));
    if (!e.context)
        throw tls_error("weir: TLS: " + openssl_errors());
    SSL_CTX* ctx = e.context.get();
    auto fail = [&](const std::string& what) -> tls_error {
        return tls_error("weir: TLS: " + what + ": " + openssl_errors());
    };
    SSL_CTX_set_min_proto_version(ctx, options.min_version == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    // Renegotiation is a denial-of-service vector and HTTP/1.1 never needs it; a peer that closes without
    // close_notify has simply closed (as most browsers and curl do).
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Frees the record buffers between records: an idle connection keeps none (nginx does the same).
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    // One recv per record instead of two (header, then body); bytes read ahead are seen by
    // transport::async_wait_readable, so they are never left waiting.
    SSL_CTX_set_read_ahead(ctx, 1);
    static const unsigned char session_context[] = "weir";
    SSL_CTX_set_session_id_context(ctx, session_context, sizeof(session_context) - 1);
    if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, options.ciphers.c_str()) != 1)
        throw fail("invalid cipher list '" + options.ciphers + "'");

    openssl_bio mem(BIO_new_mem_buf(chain.data(), static_cast<int>(chain.size())));
    X509* leaf = PEM_read_bio_X509_AUX(mem.get(), nullptr, nullptr, nullptr);
    if (!leaf)
        throw fail("no certificate in " + chain_name);
    int used = SSL_CTX_use_certificate(ctx, leaf);
    X509_free(leaf);
    if (used != 1)
        throw fail("cannot use the certificate in " + chain_name);
    while (X509* ca = PEM_read_bio_X509(mem.get(), nullptr, nullptr, nullptr)) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            throw fail("cannot use an intermediate certificate in " + chain_name);
        }
    }
    ERR_clear_error(); // the end of the PEM text

    openssl_bio key_mem(BIO_new_mem_buf(key.data(), static_cast<int>(key.size())));
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key_mem.get(), nullptr, nullptr, nullptr);
    if (!pkey)
        throw fail("no private key in " + key_name);
    used = SSL_CTX_use_PrivateKey(ctx, pkey);
    EVP_PKEY_free(pkey);
    if (used != 1)
        throw fail("cannot use the private key in " + key_name);
    if (SSL_CTX_check_private_key(ctx) != 1)
        throw fail("the private key in " + key_name + " does not match the certificate in " + chain_name);

    SSL_CTX_set_tlsext_servername_callback(ctx, &tls_certificates::on_server_name);
    SSL_CTX_set_tlsext_servername_arg(ctx, &set);
    if (!set.alpn.empty())
        SSL_CTX_set_alpn_select_cb(ctx, &tls_certificates::on_alpn, &set);
    return e;
}

} // namespace detail

WEIR_TLS_DECL tls_context::tls_context(tls_options options) : options_(std::move(options)), current_(load(options_)) {}

WEIR_TLS_DECL void tls_context::reload() {
    tls_options options;
    {
        std::lock_guard lock(mutex_);
        options = options_;
    }
    auto fresh = load(options);
    std::lock_guard lock(mutex_);
    current_ = std::move(fresh);
}

WEIR_TLS_DECL void tls_context::reload(tls_options options) {
    auto fresh = load(options);
    std::lock_guard lock(mutex_);
    options_ = std::move(options);
    current_ = std::move(fresh);
}

WEIR_TLS_DECL std::unique_ptr<detail::secure_layer> tls_context::secure(transport::socket_type& socket) {
    std::shared_ptr<const detail::tls_certificates> certificates;
    {
        std::lock_guard lock(mutex_);
        certificates = current_;
    }
    return std::make_unique<detail::tls_layer>(std::move(certificates), socket.native_handle());
}

WEIR_TLS_DECL std::shared_ptr<const detail::tls_certificates> tls_context::load(const tls_options& options) {
    if (options.certificates.empty())
        throw tls_error("weir: TLS: no certificate given");
    auto set = std::make_shared<detail::tls_certificates>();
    for (const auto& c : options.alpn_protocols) {
        if (c.empty() || c.size() > 255)
            throw tls_error("weir: TLS: an ALPN protocol name must be 1 to 255 bytes");
        set->alpn.push_back(static_cast<unsigned char>(c.size()));
        set->alpn.insert(set->alpn.end(), c.begin(), c.end());
    }
    for (const auto& cert : options.certificates) {
        std::string chain_name = cert.certificate_chain_file.empty() ? "certificate chain (PEM text)"
                                                                     : "'" + cert.certificate_chain_file + "'";
        std::string key_name =
            cert.private_key_file.empty() ? "private key (PEM text)" : "'" + cert.private_key_file + "'";
        std::string chain = cert.certificate_chain_file.empty()
                                ? cert.certificate_chain_pem
                                : detail::tls_read_file(cert.certificate_chain_file, "certificate chain");
        std::string key = cert.private_key_file.empty() ? cert.private_key_pem
                                                        : detail::tls_read_file(cert.private_key_file, "private key");
        set->entries.push_back(detail::tls_make_context(options, *set, chain, chain_name, key, key_name));
    }
    return set;
}

} // namespace weir
