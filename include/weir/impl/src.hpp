#pragma once

// weir's non-template code, compiled once: include this header in exactly one source file of a program whose
// units are all built with WEIR_SEPARATE_COMPILATION (src/weir.cpp does, and the weir::separate target builds
// it). Header-only builds need nothing of this.

#if !defined(WEIR_SEPARATE_COMPILATION)
#error "<weir/impl/src.hpp> is for builds with WEIR_SEPARATE_COMPILATION defined (see docs/separate_compilation.md)"
#endif

#include <weir/detail/parser_impl.hpp>
#include <weir/impl/connection.ipp>
#include <weir/impl/headers.ipp>
#include <weir/impl/serialize.ipp>
#include <weir/impl/server.ipp>
#include <weir/impl/sse_stream.ipp>
#include <weir/impl/topic_fanout.ipp>
#include <weir/impl/topic_sse.ipp>
#include <weir/impl/topics.ipp>
#include <weir/impl/websocket_connection.ipp>
#include <weir/impl/websocket_deflate_negotiation.ipp>
#include <weir/impl/websocket_handshake.ipp>
