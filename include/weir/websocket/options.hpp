#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace weir {

/// What a session does when a message sent from another thread (websocket_sender) finds its send queue full.
/// A coroutine's `co_await ws.send(...)` never meets this: it waits for room.
enum class websocket_full_queue_policy {
    close_session, ///< drop what is queued and close with 1008: the client reconnects and catches up
    drop_message,  ///< drop the new message; the client silently misses it
};

/// permessage-deflate (RFC 7692): whether the server accepts it and how it compresses. Needs zlib (weir::zlib,
/// WEIR_HAS_ZLIB); without it the extension is never negotiated, whatever these say.
struct websocket_deflate_options {
    /// Accept a client's permessage-deflate offer (off by default: compression costs CPU, and memory while a
    /// context is kept).
    bool enabled = false;
    /// zlib compression level, 1 (fast) to 9 (small); 0 stores.
    int level = 6;
    /// LZ77 window of the server's compressor, 9 to 15 (512 B to 32 KiB). Smaller saves memory while a
    /// context is kept, and compresses repetitive data less well. An offer asking for 8 is declined (zlib
    /// cannot compress with a 256-byte window).
    int server_window_bits = 15;
    /// Window the server asks clients to compress with, 8 to 15, when their offer lets it choose
    /// (client_max_window_bits): the server's decompressor then needs only that much.
    int client_window_bits = 15;
    /// zlib memLevel of the compressor, 1 to 9: its hash tables (256 << memory_level bytes each of two).
    int memory_level = 8;
    /// Messages shorter than this go uncompressed.
    std::size_t threshold = 1024;
    /// Keep the compressor's window between messages (better ratios, and its memory for the whole session).
    /// Off: server_no_context_takeover, each message compressed alone; the compressor is released between
    /// messages, and a message broadcast with send_shared is compressed once for every session.
    bool server_context_takeover = true;
    /// Let clients keep their window between messages. Off: the answer carries client_no_context_takeover,
    /// and the server's decompressor is released between messages.
    bool client_context_takeover = true;
};

/// Limits and timeouts of one WebSocket session, and what its handshake accepts.
struct websocket_options {
    /// A bigger message (all its fragments together) closes the session with 1009.
    std::size_t max_message_size = 1024 * 1024;
    /// Messages waiting to be written, at most; `co_await send` waits for room.
    std::size_t send_queue_capacity = 1024;
    /// Bytes waiting to be written, at most (an empty queue takes a message of any size); `co_await send`
    /// waits for room. Messages a websocket_sender posted that have not reached the session yet count too.
    std::size_t send_queue_bytes = 4 * 1024 * 1024;
    /// Bytes of messages read ahead of the handler, at most (an empty inbox takes a message of any size).
    /// Past it the session stops reading from the socket until the handler reads: TCP slows the peer down.
    std::size_t inbox_bytes = 1024 * 1024;
    /// What a send from another thread does when the queue is full.
    websocket_full_queue_policy on_full = websocket_full_queue_policy::close_session;
    /// Ping a peer that was quiet this long (0: never).
    std::chrono::milliseconds ping_interval{30'000};
    /// Drop a peer that sent nothing (not even a pong) for this long, or that reads nothing while a write
    /// waits this long: the write deadline, which also ends a peer that pings and never reads (0: never).
    std::chrono::milliseconds idle_timeout{75'000};
    /// How long a closing handshake may take: the peer's answer to our close, our close reaching it, and
    /// the session's handler finishing once the session ended (it is cancelled after that).
    std::chrono::milliseconds close_timeout{5'000};
    /// Subprotocols this server speaks, most preferred first; the first one the client also offers is chosen
    /// (names compare exactly, as browsers check them).
    std::vector<std::string> subprotocols{};
    /// Origins besides the server's own that may open a session ("https://app.example.com", compared
    /// exactly but for case). CORS does not protect WebSockets: this does.
    std::vector<std::string> allowed_origins{};
    /// On (the default), a handshake whose Origin is neither the server's own (its Host) nor listed in
    /// allowed_origins gets 403, so a page elsewhere cannot ride on the user's cookies (cross-site WebSocket
    /// hijacking). A request without Origin (not from a browser) is allowed. Off: any Origin is allowed,
    /// only for services that do not authenticate by cookie or by the client's address.
    bool check_origin = true;
    /// permessage-deflate (RFC 7692), off by default.
    websocket_deflate_options deflate{};
};

/// WebSocket close codes (RFC 6455 section 7.4.1). Applications may also use 3000-4999
/// (`static_cast<weir::close_code>(4001)`).
enum class close_code : unsigned short {
    normal = 1000,
    going_away = 1001,
    protocol_error = 1002,
    unsupported_data = 1003,
    no_status_received = 1005, ///< never sent: the peer's close frame had no code
    abnormal_closure = 1006,   ///< never sent: the connection ended without a closing handshake
    invalid_payload = 1007,
    policy_violation = 1008,
    message_too_big = 1009,
    internal_error = 1011,
    service_restart = 1012,
    try_again_later = 1013,
};

} // namespace weir
