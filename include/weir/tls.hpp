#pragma once

#ifndef WEIR_HAS_OPENSSL
#error "weir/tls.hpp needs OpenSSL 3: link weir::tls (CMake), use weir_tls_dep (meson) or pkg-config weir-tls"
#endif

#include <weir/detail/config.hpp>
#include <weir/transport.hpp>

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace weir {
namespace detail {
struct tls_certificates;
} // namespace detail

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
    WEIR_TLS_DECL explicit tls_context(tls_options options);

    /// Reads the same files again (certificate renewal). Thread-safe; throws tls_error and keeps the
    /// certificates in use if they cannot be loaded.
    WEIR_TLS_DECL void reload() override;

    /// Replaces the options (other files, other certificates) for new connections. Same guarantees as reload().
    WEIR_TLS_DECL void reload(tls_options options);

    /// The secure layer for one accepted socket, with the certificates in use now.
    WEIR_TLS_DECL std::unique_ptr<detail::secure_layer> secure(transport::socket_type& socket) override;

private:
    WEIR_TLS_DECL static std::shared_ptr<const detail::tls_certificates> load(const tls_options& options);

    std::mutex mutex_;
    tls_options options_;
    std::shared_ptr<const detail::tls_certificates> current_;
};

} // namespace weir

#if !defined(WEIR_TLS_SEPARATE_COMPILATION)
#include <weir/impl/tls.ipp>
#endif
