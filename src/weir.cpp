// weir compiled once (WEIR_SEPARATE_COMPILATION): the parser, the serializer, headers, the connection and
// server cores, the WebSocket session, the SSE stream and topics. The CMake target weir::separate (and meson's
// separate_compilation option) builds this file into libweir.a; a program may instead compile it itself, with
// WEIR_SEPARATE_COMPILATION defined.
#include <weir/impl/src.hpp>
