#pragma once

/// WebSocket (RFC 6455) sessions as pending upgrades: `weir::accept_websocket(req, handler, options)`.

#include <weir/websocket/accept.hpp>
#include <weir/websocket/connection.hpp>
#include <weir/websocket/handshake.hpp>
#include <weir/websocket/options.hpp>
