#pragma once

// The WebSocket session's definitions, but for its send path (which stays in its header, inlined into the
// delivery pass and the senders) and permessage-deflate's set-up (use_deflate(), the one part that depends on
// WEIR_HAS_ZLIB): included by <weir/websocket/connection.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION). Nothing here depends on zlib: compression is reached through
// detail::ws_deflate_codec, so libweir.a is the same whether or not a program defines WEIR_HAS_ZLIB.

#include <weir/websocket/connection.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace weir {

WEIR_DECL websocket_connection::websocket_connection(weir::transport& transport, const websocket_options& options,
                                                     std::string subprotocol, std::string leftover)
    : stream_(transport), reader_(options.max_message_size),
      loop_(detail::event_loop::of(stream_.get_executor().context())) {
    limits_ = detail::ws_limits_table::of(loop_).get(options);
    if (!subprotocol.empty()) more().subprotocol = std::move(subprotocol);
    if (!leftover.empty()) more().in = std::move(leftover);
}

WEIR_DECL websocket_connection::~websocket_connection() { unlink_senders(); }

WEIR_DECL asio::awaitable<std::optional<websocket_message>> websocket_connection::read() {
    coroutine_state& co = coroutines();
    while (co.inbox.empty() && !read_done_) co_await co.readable.async_wait(asio::use_awaitable);
    if (co.inbox.empty()) co_return std::nullopt;
    std::optional<websocket_message> m(std::move(co.inbox.front()));
    co.inbox.pop_front();
    co.inbox_bytes -= m->data.size();
    resume_reading(); // the frame reader may wait for room
    co_return m;
}

WEIR_DECL asio::awaitable<void> websocket_connection::close(close_code code, std::string_view reason) {
    begin_close(code, reason);
    while (!finished_) co_await coroutines().readable.async_wait(asio::use_awaitable);
}

WEIR_DECL std::shared_ptr<websocket_sender> websocket_connection::sender() {
    auto& link = more().sender_link;
    if (!link) {
        link = std::make_shared<detail::ws_sender_link>();
        link->session = weak_from_this();
        link->executor = stream_.get_executor();
        link->budget = limits_->send_queue_bytes;
        link->on_full = limits_->on_full;
        if (finished_) link->open = false;
    }
    return std::shared_ptr<websocket_sender>(new websocket_sender(link));
}

WEIR_DECL void websocket_connection::start(websocket_handler handler,
                                          std::shared_ptr<const websocket_callbacks> callbacks,
                                          upgraded_connection* link, upgrade_done done) {
    auto self = shared_from_this();
    link_ = link;
    done_ = std::move(done);
    heard();
    if (handler) {
        coroutine_state& co = coroutines();
        co.handler = std::move(handler); // a capturing coroutine lambda needs its object while it runs
        handler_running_ = true;
        asio::co_spawn(stream_.get_executor(), co.handler(*this),
                       asio::bind_cancellation_slot(co.cancel.slot(), [self](std::exception_ptr e) {
                           self->handler_finished(std::move(e));
                       }));
    } else if (callbacks) {
        callbacks_ = std::move(callbacks);
        if (callbacks_->on_open) call_back([&] { callbacks_->on_open(*this); });
    } else {
        begin_close(close_code::normal, {});
    }
    advance();
}

WEIR_DECL void websocket_connection::handler_finished(std::exception_ptr e) {
    handler_running_ = false;
    if (co_) {
        co_->inbox.release();
        co_->inbox_bytes = 0;
    }
    if (e) {
        bool cancelled = false;
        try {
            std::rethrow_exception(e);
        } catch (const std::system_error& error) {
            cancelled = error.code() == asio::error::operation_aborted;
        } catch (...) {
        }
        if (!(cancelled && finished_)) {
            more().handler_error = e;
            begin_close(close_code::internal_error, {});
        }
    } else {
        begin_close(close_code::normal, {});
    }
    if (ended_) complete();
    else resume_reading();
}

WEIR_DECL void websocket_connection::advance() {
    if (advancing_) {
        again_ = true;
        return;
    }
    auto self = shared_from_this(); // a step may end the session and let its owner go
    advancing_ = true;
    do {
        do {
            again_ = false;
            step();
        } while (again_);
        // A coroutine handler waiting in read() for the messages of this pass resumes here, after the pass (the
        // loop's receive buffer is no longer in use): no post per message, and what it sends goes out in the
        // pass's write below. What it does to the session (read() resuming the reading, close()) sets again_.
        if (std::exchange(wake_reader_, false)) co_->readable.notify_all_here();
    } while (again_);
    advancing_ = false;
    // What the pass's callbacks sent goes out now, in one write with whatever else is queued: no post, and
    // the send state goes back to the loop before the next session's pass takes one.
    if (std::exchange(flush_wanted_, false)) flush();
}

WEIR_DECL void websocket_connection::step() {
    if (ended_ || wait_pending_) return;
    if (aborted_ || peer_gone_) return end_session();
    if (reading_frames_) return read_frames();
    if (!close_sent_) return; // written() comes back here once our close is out
    if (!shutdown_sent_) {
        shutdown_sent_ = true;
        stream_.shutdown_send();
    }
    drain();
}

WEIR_DECL void websocket_connection::read_frames() {
    if (more_ && more_->in_pos < more_->in.size()) {
        // Bytes kept from before: the handshake's leftover, or what a full inbox left unread.
        std::string& in = more_->in;
        more_->in_pos += dispatch(in.data() + more_->in_pos, in.size() - more_->in_pos);
        if (more_->in_pos < in.size() && reading_frames_ && !aborted_) {
            paused_ = true; // read() resumes
            return;
        }
        std::string().swap(in);
        more_->in_pos = 0;
        again_ = true;
        return;
    }
    if (!reading_frames_ || aborted_) {
        again_ = true;
        return;
    }
    // A handler that does not keep up stops the reading; TCP then slows the peer down.
    if (inbox_full() && !close_queued_) {
        paused_ = true;
        return;
    }
    // The last read did not fill its buffer, so the socket is most likely empty: wait instead of asking the
    // kernel once more to hear "would block" (the wait still completes at once if bytes came meanwhile).
    if (drained_) {
        drained_ = false;
        return wait_readable();
    }
    if (busy()) return;
    asio::error_code ec;
    if (reader_.direct_payload_left() >= direct_threshold) {
        // A large frame: its payload is read straight into the message. The window grows while reads fill
        // it (the message is zero-filled ahead of each read: no more than twice what arrives).
        auto [dst, room] = reader_.direct_window(direct_window_);
        std::size_t n = stream_.read_some(asio::buffer(dst, room), ec);
        detail::ws_event event;
        reader_.commit_direct(ec ? 0 : n, event);
        if (ec == asio::error::would_block) return wait_readable();
        again_ = true;
        if (ec) return peer_gone();
        heard();
        drained_ = n < room;
        direct_window_ = std::clamp(n * 2, direct_threshold * 4, direct_limit);
        if (event.kind != detail::ws_event::none) on_event(event);
        return;
    }
    auto buffer = loop_.receive_buffer();
    std::size_t n = stream_.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
    if (ec == asio::error::would_block) return wait_readable();
    again_ = true;
    if (ec) return peer_gone();
    heard();
    drained_ = n < buffer.size();
    std::size_t used = dispatch(buffer.data(), n);
    // The loop's buffer is the next reader's: keep what the inbox had no room for.
    if (used < n && reading_frames_ && !aborted_) more().in.assign(buffer.data() + used, n - used);
}

WEIR_DECL std::size_t websocket_connection::dispatch(char* data, std::size_t size) {
    std::size_t used = 0;
    while (used < size && reading_frames_ && !aborted_ && !(inbox_full() && !close_queued_)) {
        detail::ws_event event;
        used += reader_.feed(data + used, size - used, event);
        if (event.kind != detail::ws_event::none) on_event(event);
    }
    return used;
}

WEIR_DECL void websocket_connection::drain() {
    while (!busy()) {
        auto buffer = loop_.receive_buffer();
        asio::error_code ec;
        stream_.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
        if (ec == asio::error::would_block) return wait_readable();
        if (ec) {
            peer_gone_ = true; // the peer's FIN (or reset): the closing handshake is over
            again_ = true;
            return;
        }
    }
}

WEIR_DECL void websocket_connection::wait_readable() {
    reads_without_wait_ = 0;
    wait_pending_ = true;
    stream_.async_wait_readable([self = shared_from_this()](asio::error_code ec) {
        self->wait_pending_ = false;
        if (ec && !self->aborted_ && !self->ended_) {
            if (self->reading_frames_) self->peer_gone();
            else self->peer_gone_ = true;
        }
        self->advance();
    });
}

WEIR_DECL bool websocket_connection::busy() {
    if (++reads_without_wait_ < max_reads_without_wait) return false;
    reads_without_wait_ = 0;
    wait_pending_ = true;
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
        self->wait_pending_ = false;
        self->advance();
    });
    return true;
}

WEIR_DECL void websocket_connection::resume_reading() {
    if (!paused_) return;
    paused_ = false;
    advance();
}

WEIR_DECL void websocket_connection::end_session() {
    ended_ = true;
    finish();
    if (!handler_running_) return complete();
    phase_deadline_.arm(loop_.deadlines(), limits_->close_timeout);
}

WEIR_DECL void websocket_connection::complete() {
    if (completed_) return;
    completed_ = true;
    phase_deadline_.cancel();
    auto self = shared_from_this();
    if (auto done = std::move(done_)) done(more_ ? more_->handler_error : nullptr);
}

WEIR_DECL void websocket_connection::heard() {
    if (close_queued_ || finished_) return;
    if (writing_) heard_while_writing_ = true; // the write deadline stands
    else if (limits_->idle_timeout.count() > 0) timeout_deadline_.arm(loop_.deadlines(), limits_->idle_timeout);
    if (limits_->ping_interval.count() > 0) phase_deadline_.arm(loop_.deadlines(), limits_->ping_interval);
}

WEIR_DECL void websocket_connection::on_event(const detail::ws_event& event) {
    switch (event.kind) {
    case detail::ws_event::none: break;
    case detail::ws_event::message: {
        websocket_message m{reader_.take_message(), event.binary};
        if (callbacks_) {
            if (callbacks_->on_message) call_back([&] { callbacks_->on_message(*this, std::move(m)); });
            break;
        }
        // After the handler returned, or while closing with a full inbox, nobody will read it.
        if (!handler_running_ || (close_queued_ && inbox_full())) break;
        co_->inbox_bytes += m.data.size();
        co_->inbox.push_back(std::move(m));
        if (advancing_) wake_reader_ = true; // at the end of the pass
        else co_->readable.notify_all();
        break;
    }
    case detail::ws_event::ping: {
        if (close_queued_) break;
        // A pong goes out at once if the socket takes it. At most one waits: a newer ping's payload
        // replaces the unsent one (RFC 6455 5.5.3 allows answering only the latest), so a peer that pings
        // and never reads costs at most 125 bytes here and meets the write deadline.
        auto& control = sending().control;
        auto it = std::find_if(control.begin(), control.end(),
                               [](const outgoing& o) { return o.opcode == detail::ws_pong; });
        if (it != control.end()) it->payload.owned_.assign(event.payload);
        else control.push_back({detail::ws_pong, std::string(event.payload)});
        if (!writing_) flush();
        break;
    }
    case detail::ws_event::pong: break; // the peer is alive: heard() already noted it
    case detail::ws_event::close:
        if (!close_queued_) {
            more().status = {static_cast<close_code>(event.code), std::string(event.payload), true};
            // Answer with the peer's code (none if it sent none); what was still queued is dropped.
            queue_close(event.code == 1005 ? 0 : event.code, {}, true);
        }
        stop_reading();
        break;
    case detail::ws_event::fail:
        if (!close_queued_) {
            more().status = {static_cast<close_code>(event.code), std::string(event.why), false};
            queue_close(event.code, event.why, true);
        }
        stop_reading();
        break;
    }
}

WEIR_DECL void websocket_connection::peer_gone() {
    peer_gone_ = true;
    if (!close_queued_) more().status = {close_code::abnormal_closure, {}, true};
    stop_reading();
}

WEIR_DECL void websocket_connection::stop_reading() {
    reading_frames_ = false;
    read_done_ = true;
    if (co_) co_->readable.notify_all();
    if (auto callbacks = std::move(callbacks_); callbacks && callbacks->on_close)
        call_back([&] { callbacks->on_close(*this, close_status()); });
}

WEIR_DECL void websocket_connection::begin_close(close_code code, std::string_view reason) {
    if (close_queued_ || finished_) return;
    unsigned c = static_cast<unsigned>(code);
    if (c == 1005) c = 0;
    else if (!detail::ws_close_code_allowed(c)) c = 1011;
    more().status = {static_cast<close_code>(c == 0 ? 1005 : c), std::string(reason), false};
    queue_close(static_cast<unsigned short>(c), reason, false);
}

WEIR_DECL void websocket_connection::queue_close(unsigned short code, std::string_view reason, bool urgent) {
    if (close_queued_ || finished_) return;
    close_queued_ = true;
    if (urgent) drop_queued();
    std::string payload;
    if (code != 0) {
        payload.push_back(static_cast<char>(code >> 8));
        payload.push_back(static_cast<char>(code & 0xff));
        if (reason.size() > 123) {
            std::size_t cut = 123;
            while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
            reason = reason.substr(0, cut);
        }
        if (detail::is_valid_utf8(reason)) payload.append(reason);
    }
    sending().outbox.push_back({detail::ws_close, std::move(payload)});
    if (!writing_) timeout_deadline_.cancel(); // a waiting write keeps its deadline
    phase_deadline_.arm(loop_.deadlines(), limits_->close_timeout);
    if (co_) co_->room.notify_all(); // waiting senders give up: the session is closing
    schedule_flush();
    resume_reading(); // a reader paused by a full inbox reads on, to see the peer's close
}

WEIR_DECL void websocket_connection::drop_queued() noexcept {
    if (!send_) return;
    // The messages of a write under way stay: written() counts them out.
    auto& outbox = send_->outbox;
    std::size_t keep = send_->batch_messages;
    for (auto it = outbox.begin() + static_cast<std::ptrdiff_t>(keep); it != outbox.end(); ++it) {
        --queued_count_;
        queued_bytes_ -= it->message_size();
    }
    if (keep == 0) return outbox.clear();
    while (outbox.size() > keep) outbox.pop_back();
}

WEIR_DECL void websocket_connection::abort() {
    if (aborted_ || finished_) return;
    aborted_ = true;
    stream_.cancel();
    stop_reading();
    advance();
}

WEIR_DECL void websocket_connection::finish() {
    if (finished_) return;
    finished_ = true;
    read_done_ = true;
    reading_frames_ = false;
    link_ = nullptr;
    stream_.cancel(); // a write still pending ends now
    cancel_deadlines();
    if (send_) send_->batch_messages = 0; // never written: dropped with the rest
    drop_queued();
    if (send_) send_->control.clear();
    release_send_state();
    if (more_) std::string().swap(more_->in);
    unlink_senders();
    if (co_) {
        co_->readable.notify_all();
        co_->room.notify_all();
    }
}

WEIR_DECL void websocket_connection::unlink_senders() noexcept {
    if (!more_ || !more_->sender_link) return;
    auto& link = *more_->sender_link;
    std::lock_guard lock(link.mutex);
    link.open = false;
    link.executor = asio::any_io_executor();
}

WEIR_DECL void websocket_connection::going_away() { begin_close(close_code::going_away, "server shutting down"); }

WEIR_DECL void websocket_connection::timeout_expired() {
    if (writing_) write_expired();
    else idle_expired();
}

WEIR_DECL void websocket_connection::phase_expired() {
    if (ended_) grace_expired();
    else if (close_queued_) close_expired();
    else ping_due();
}

WEIR_DECL void websocket_connection::idle_expired() {
    if (close_queued_ || finished_) return;
    more().status = {close_code::abnormal_closure, "peer silent", false};
    abort();
}

WEIR_DECL void websocket_connection::ping_due() {
    if (close_queued_ || finished_) return;
    // A quiet session keeps no buffer for the next message, nor the memory of its last burst.
    reader_.drop_spare();
    if (co_ && co_->inbox.empty()) co_->inbox.release();
    auto& control = sending().control;
    bool waiting = std::any_of(control.begin(), control.end(),
                               [](const outgoing& o) { return o.opcode == detail::ws_ping; });
    if (!waiting) control.push_back({detail::ws_ping, std::string()});
    schedule_flush();
    phase_deadline_.arm(loop_.deadlines(), limits_->ping_interval);
}

WEIR_DECL void websocket_connection::close_expired() { abort(); }

WEIR_DECL void websocket_connection::write_expired() {
    if (!writing_ || finished_) return;
    if (!close_queued_) more().status = {close_code::abnormal_closure, "peer stopped reading", false};
    abort();
}

WEIR_DECL void websocket_connection::grace_expired() {
    if (handler_running_) co_->cancel.emit(asio::cancellation_type::terminal);
}

WEIR_DECL bool websocket_sender::post(std::uint8_t opcode, websocket_payload payload) {
    std::size_t size = payload.size();
    std::lock_guard lock(link_->mutex);
    if (!link_->open || link_->closing) return false;
    if (link_->posted_bytes > 0 && link_->posted_bytes + size > link_->budget) {
        // Messages pile up faster than the session's thread takes them: the same policy as a full queue.
        if (link_->on_full == websocket_full_queue_policy::drop_message) return false;
        link_->closing = true;
        asio::post(link_->executor, [l = link_] {
            if (auto conn = l->session.lock()) conn->fail_send_queue();
        });
        return false;
    }
    link_->posted_bytes += size;
    asio::post(link_->executor, [l = link_, opcode, size, payload = std::move(payload)]() mutable {
        {
            std::lock_guard lock(l->mutex);
            l->posted_bytes -= size;
        }
        if (auto conn = l->session.lock()) conn->enqueue_from_elsewhere(opcode, std::move(payload));
    });
    return true;
}

WEIR_DECL bool websocket_sender::close(close_code code, std::string reason) {
    std::lock_guard lock(link_->mutex);
    if (!link_->open) return false;
    link_->closing = true;
    asio::post(link_->executor, [l = link_, code, reason = std::move(reason)] {
        if (auto conn = l->session.lock()) conn->begin_close(code, reason);
    });
    return true;
}

} // namespace weir
