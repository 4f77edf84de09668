#pragma once

#include <weir/reply.hpp>
#include <weir/upgrade.hpp>
#include <weir/websocket/connection.hpp>
#include <weir/websocket/handshake.hpp>
#include <weir/websocket/options.hpp>

#include <asio/awaitable.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace weir {

/// The WebSocket protocol as a pending upgrade: `weir::pending<weir::websocket>`. The final stage writes
/// the 101 with every stage's headers plus Upgrade, Connection and Sec-WebSocket-Accept (and the chosen
/// Sec-WebSocket-Protocol and Sec-WebSocket-Extensions), then runs the session. Made by accept_websocket.
class websocket {
public:
    static constexpr weir::status default_status = weir::status::switching_protocols;
    static constexpr std::string_view name = "websocket";
    /// Only a 101 starts the session: a stage that turns it into a 403 gets a plain 403.
    static constexpr bool commits(weir::status s) noexcept { return s == weir::status::switching_protocols; }

    /// A session for a handshake already checked (check_websocket_handshake).
    websocket(websocket_handshake handshake, websocket_handler handler, websocket_options options)
        : setup_(std::make_unique<setup>(
              setup{std::move(handshake), std::move(handler), nullptr, std::move(options)})) {}
    /// A session driven by callbacks, for a handshake already checked: no coroutine runs for it.
    websocket(websocket_handshake handshake, websocket_callbacks callbacks, websocket_options options)
        : setup_(std::make_unique<setup>(setup{std::move(handshake), {},
                                               std::make_shared<const websocket_callbacks>(std::move(callbacks)),
                                               std::move(options)})) {}

    websocket(websocket&&) noexcept = default;
    websocket& operator=(websocket&&) noexcept = default;
    websocket(const websocket& other)
        : setup_(other.setup_ ? std::make_unique<setup>(*other.setup_) : nullptr), session_(other.session_) {}
    websocket& operator=(const websocket& other) {
        if (this != &other) *this = websocket(other);
        return *this;
    }
    ~websocket() = default;

    /// Nothing to add among the ordinary headers: a 101 has no body. (Stages cannot set the fields written
    /// below: weir::headers refuses them.)
    void prepare_head(weir::headers&) {}

    /// The upgrade fields no stage may set.
    void write_protocol_fields(std::string& out) const {
        out += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
        const websocket_handshake& handshake = setup_->handshake;
        out += handshake.accept_key;
        out += "\r\n";
        if (!handshake.subprotocol.empty()) {
            out += "Sec-WebSocket-Protocol: ";
            out += handshake.subprotocol;
            out += "\r\n";
        }
        if (handshake.deflate) {
            out += "Sec-WebSocket-Extensions: ";
            out += handshake.deflate->response;
            out += "\r\n";
        }
    }

    /// Starts the session on the upgraded socket, starting with the bytes that came after the handshake, and
    /// returns; `done` runs once the session and its handler have ended. A graceful server shutdown closes it
    /// with 1001. The session runs from callbacks (see weir::callback_protocol): while it is idle it is one
    /// readiness wait, and its deadlines are entries in the event loop's sweep.
    void start(upgraded_connection& connection, upgrade_done done) {
        // The connection keeps this object for as long as the session runs: what only the handshake and the
        // start needed goes now.
        std::unique_ptr<setup> s = std::move(setup_);
        auto session = std::make_shared<websocket_connection>(connection.transport(), s->options,
                                                              std::move(s->handshake.subprotocol),
                                                              connection.take_leftover());
        if (s->handshake.deflate) session->use_deflate(*s->handshake.deflate, s->options.deflate);
        // A plain pointer (no allocation for the callback): the connection keeps this object, and so the
        // session, for as long as it keeps the callback.
        connection.on_shutdown([started = session.get()] { started->going_away(); });
        session_ = session;
        auto handler = std::move(s->handler);
        auto callbacks = std::move(s->callbacks);
        s.reset();
        session->start(std::move(handler), std::move(callbacks), &connection, std::move(done));
    }

    /// The same session as a coroutine: waits until start()'s session has ended, and rethrows what its handler
    /// threw.
    asio::awaitable<void> run(upgraded_connection& connection) {
        return detail::run_started_session(*this, connection);
    }

    /// The subprotocol the handshake chose, or "".
    const std::string& subprotocol() const noexcept {
        static const std::string none;
        return setup_ ? setup_->handshake.subprotocol : session_ ? session_->subprotocol() : none;
    }

private:
    // What the head and the start of the session need.
    struct setup {
        websocket_handshake handshake;
        websocket_handler handler;
        std::shared_ptr<const websocket_callbacks> callbacks;
        websocket_options options;
    };
    std::unique_ptr<setup> setup_;                  // until the session starts
    std::shared_ptr<websocket_connection> session_; // once started, until the connection lets this go
};

/// The coroutine handler that drives `callbacks`.
inline websocket_handler make_websocket_handler(websocket_callbacks callbacks) {
    return [cb = std::make_shared<const websocket_callbacks>(std::move(callbacks))](
               websocket_connection& ws) -> asio::awaitable<void> {
        if (cb->on_open) cb->on_open(ws);
        while (auto message = co_await ws.read())
            if (cb->on_message) cb->on_message(ws, std::move(*message));
        if (cb->on_close) cb->on_close(ws, ws.close_status());
    };
}

/// Answers a WebSocket handshake: `pending<websocket>` running `handler` if the handshake is valid, else a
/// plain 400, 403 or 426 response (see check_websocket_handshake). Copies what it needs from the request.
template <class Request>
reply<websocket> accept_websocket(const Request& req, websocket_handler handler, websocket_options options = {}) {
    response refusal;
    auto handshake = check_websocket_handshake(req, options, refusal);
    if (!handshake) return refusal;
    return pending<websocket>(websocket(std::move(*handshake), std::move(handler), std::move(options)));
}

/// Answers a WebSocket handshake with a session driven by callbacks.
template <class Request>
reply<websocket> accept_websocket(const Request& req, websocket_callbacks callbacks, websocket_options options = {}) {
    response refusal;
    auto handshake = check_websocket_handshake(req, options, refusal);
    if (!handshake) return refusal;
    return pending<websocket>(websocket(std::move(*handshake), std::move(callbacks), std::move(options)));
}

} // namespace weir
