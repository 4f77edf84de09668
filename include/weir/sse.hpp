#pragma once

/// Server-Sent Events: events, streams as pending upgrades (`weir::pending<weir::sse>`), and a broadcast hub
/// (one topic; <weir/topics.hpp> reaches WebSocket sessions too).

#include <weir/sse/event.hpp>
#include <weir/sse/hub.hpp>
#include <weir/sse/stream.hpp>
