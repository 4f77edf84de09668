// TLS on OpenSSL compiled once: the weir::tls library. Every unit that uses it is built with
// WEIR_TLS_SEPARATE_COMPILATION (the target says so), so <weir/tls.hpp> only declares tls_context.

#if !defined(WEIR_TLS_SEPARATE_COMPILATION)
#error "src/tls.cpp is built with WEIR_TLS_SEPARATE_COMPILATION (the weir::tls target)"
#endif

#include <weir/impl/tls.ipp>
