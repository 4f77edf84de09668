#pragma once

// weir is header-only by default. Defining WEIR_SEPARATE_COMPILATION (the CMake target weir::separate does)
// makes the headers declare the code that does not depend on the application (the parser, the serializer,
// headers, the connection and server cores) and leaves its definitions to one source file that includes
// <weir/impl/src.hpp> (src/weir.cpp is that file), so each unit compiles only its own application.

#if defined(WEIR_SEPARATE_COMPILATION)
#define WEIR_DECL
#else
#define WEIR_DECL inline
#endif
