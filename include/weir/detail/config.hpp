#pragma once

// weir is header-only by default. Defining WEIR_SEPARATE_COMPILATION (the CMake target weir::separate does)
// makes the headers declare the code that does not depend on the application (the parser, the serializer,
// headers, the connection and server cores, the WebSocket session, the SSE stream and topics) and leaves its
// definitions to one source file that includes <weir/impl/src.hpp> (src/weir.cpp is that file), so each unit
// compiles only its own application.

#if defined(WEIR_SEPARATE_COMPILATION)
#define WEIR_DECL
#else
#define WEIR_DECL inline
#endif

// The optional components on other libraries work the same way on their own: their CMake targets (weir::tls,
// weir::redis) are libraries that compile the component's code once and define WEIR_TLS_SEPARATE_COMPILATION
// or WEIR_REDIS_SEPARATE_COMPILATION; without it the component's header defines everything itself.
#if defined(WEIR_TLS_SEPARATE_COMPILATION)
#define WEIR_TLS_DECL
#else
#define WEIR_TLS_DECL inline
#endif

#if defined(WEIR_REDIS_SEPARATE_COMPILATION)
#define WEIR_REDIS_DECL
#else
#define WEIR_REDIS_DECL inline
#endif
