#pragma once

/// Everything weir offers, in one include. Each part also has its own header.

#include <weir/version.hpp>

#include <weir/http/headers.hpp>
#include <weir/http/parser.hpp>
#include <weir/http/request.hpp>
#include <weir/http/response.hpp>
#include <weir/http/status.hpp>

#include <weir/constant_time.hpp>
#include <weir/pipeline.hpp>
#include <weir/reply.hpp>
#include <weir/router.hpp>
#include <weir/server.hpp>
#include <weir/server_options.hpp>
#include <weir/transport.hpp>
#include <weir/upgrade.hpp>
#include <weir/utf8.hpp>

#include <weir/middleware.hpp>
#include <weir/sse.hpp>
#include <weir/topics.hpp>
#include <weir/websocket.hpp>
