#pragma once

#ifndef WEIR_HAS_OPENSSL
#error "weir/tls.hpp needs OpenSSL 3: link weir::tls (CMake), use weir_tls_dep (meson) or pkg-config weir-tls"
#endif

#include <weir/detail/tls_layer.hpp>
#include <weir/transport.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace weir {

/// Thrown when certificates, keys or TLS settings cannot be used.
class tls_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One certificate chain and its private key, from PEM files or from PEM text.
struct tls_certificate {
    std::string certificate_chain_file{};///< PEM file: the server's certificate, then any intermediates
    std::string private_key_file{};     ///< PEM file: the certificate's private key
    std::string certificate_chain_pem{};///< instead of the file: the PEM text itself
    std::string private_key_pem{};      ///< instead of the file: the PEM text itself
};

/// The oldest protocol version a client may use.
enum class tls_version { tls1_2, tls1_3 };

/// What a TLS server presents and accepts.
struct tls_options {
    /// The first is the default; a client that names a server (SNI) gets the first certificate valid for that
    /// name. At least one.
    std::vector<tls_certificate> certificates;
    tls_version min_version = tls_version::tls1_2;
    /// Protocols offered through ALPN, in order of preference. A client that offers ALPN but none of these is
    /// refused (RFC 7301). Empty: no ALPN.
    std::vector<std::string> alpn_protocols{"http/1.1"};
    /// The TLS 1.2 cipher list in OpenSSL's syntax; empty keeps OpenSSL's default (TLS 1.3 suites always are).
    std::string ciphers;
};

/// TLS on OpenSSL for a weir server: `options.tls = std::make_shared<weir::tls_context>(tls_options)`.
/// An idle connection holds no record buffers (OpenSSL's are released between records; encrypted bytes wait
/// only while the socket is full). reload() swaps certificates for new connections; open ones keep theirs.
class tls_context final : public transport_security {
public:
    /// Loads the certificates and keys. Throws tls_error, naming the file and OpenSSL's reason.
    explicit tls_context(tls_options options)
        : options_(std::move(options)), current_(load(options_)) {}

    /// Reads the same files again (certificate renewal). Thread-safe; throws tls_error and keeps the
    /// certificates in use if they cannot be loaded.
    void reload() override {
        tls_options options;
        {
            std::lock_guard lock(mutex_);
            options = options_;
        }
        auto fresh = load(options);
        std::lock_guard lock(mutex_);
        current_ = std::move(fresh);
    }

    /// Replaces the options (other files, other certificates) for new connections. Same guarantees as reload().
    void reload(tls_options options) {
        auto fresh = load(options);
        std::lock_guard lock(mutex_);
        options_ = std::move(options);
        current_ = std::move(fresh);
    }

    /// The secure layer for one accepted socket, with the certificates in use now.
    std::unique_ptr<detail::secure_layer> secure(transport::socket_type& socket) override {
        std::shared_ptr<const detail::tls_certificates> certificates;
        {
            std::lock_guard lock(mutex_);
            certificates = current_;
        }
        return std::make_unique<detail::tls_layer>(std::move(certificates), socket.native_handle());
    }

private:
    static std::string read_file(const std::string& path, const char* what) {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw tls_error("weir: TLS: cannot read the " + std::string(what) + " file '" + path + "'");
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    static std::shared_ptr<const detail::tls_certificates> load(const tls_options& options) {
        if (options.certificates.empty()) throw tls_error("weir: TLS: no certificate given");
        auto set = std::make_shared<detail::tls_certificates>();
        for (const auto& c : options.alpn_protocols) {
            if (c.empty() || c.size() > 255) throw tls_error("weir: TLS: an ALPN protocol name must be 1 to 255 bytes");
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
                                    : read_file(cert.certificate_chain_file, "certificate chain");
            std::string key =
                cert.private_key_file.empty() ? cert.private_key_pem : read_file(cert.private_key_file, "private key");
            set->entries.push_back(make_context(options, *set, chain, chain_name, key, key_name));
        }
        return set;
    }

    static detail::tls_certificates::entry make_context(const tls_options& options, detail::tls_certificates& set,
                                                        const std::string& chain, const std::string& chain_name,
                                                        const std::string& key, const std::string& key_name) {
        ERR_clear_error();
        detail::tls_certificates::entry e;
        e.context.reset(SSL_CTX_new(TLS_server_method()));
        if (!e.context) throw tls_error("weir: TLS: " + detail::openssl_errors());
        SSL_CTX* ctx = e.context.get();
        auto fail = [&](const std::string& what) -> tls_error {
            return tls_error("weir: TLS: " + what + ": " + detail::openssl_errors());
        };
        SSL_CTX_set_min_proto_version(ctx,
                                      options.min_version == tls_version::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
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

        detail::openssl_bio mem(BIO_new_mem_buf(chain.data(), static_cast<int>(chain.size())));
        X509* leaf = PEM_read_bio_X509_AUX(mem.get(), nullptr, nullptr, nullptr);
        if (!leaf) throw fail("no certificate in " + chain_name);
        int used = SSL_CTX_use_certificate(ctx, leaf);
        X509_free(leaf);
        if (used != 1) throw fail("cannot use the certificate in " + chain_name);
        while (X509* ca = PEM_read_bio_X509(mem.get(), nullptr, nullptr, nullptr)) {
            if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
                X509_free(ca);
                throw fail("cannot use an intermediate certificate in " + chain_name);
            }
        }
        ERR_clear_error(); // the end of the PEM text

        detail::openssl_bio key_mem(BIO_new_mem_buf(key.data(), static_cast<int>(key.size())));
        EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key_mem.get(), nullptr, nullptr, nullptr);
        if (!pkey) throw fail("no private key in " + key_name);
        used = SSL_CTX_use_PrivateKey(ctx, pkey);
        EVP_PKEY_free(pkey);
        if (used != 1) throw fail("cannot use the private key in " + key_name);
        if (SSL_CTX_check_private_key(ctx) != 1)
            throw fail("the private key in " + key_name + " does not match the certificate in " + chain_name);

        SSL_CTX_set_tlsext_servername_callback(ctx, &detail::tls_certificates::on_server_name);
        SSL_CTX_set_tlsext_servername_arg(ctx, &set);
        if (!set.alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, &detail::tls_certificates::on_alpn, &set);
        return e;
    }

    std::mutex mutex_;
    tls_options options_;
    std::shared_ptr<const detail::tls_certificates> current_;
};

} // namespace weir
