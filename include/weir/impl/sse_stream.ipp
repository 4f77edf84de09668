#pragma once

// The event stream's definitions, but for its write path (push() and flush(), which stay in the header, inlined
// into the delivery pass): included by <weir/sse/stream.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION).

#include <weir/sse/stream.hpp>

#include <asio/bind_allocator.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace weir {

WEIR_DECL asio::awaitable<void> detail::sse_channel::wait_for_room(std::size_t n) {
    while (!closed_ && !fits(n)) co_await wait_room();
}

WEIR_DECL asio::awaitable<void> detail::sse_channel::wait_for_half_empty() {
    while (!closed_ && !half_empty()) co_await wait_room();
}

WEIR_DECL void detail::sse_channel::wait_writable() {
    if (!writing_late_ || owed_ == 0) {
        writing_late_ = true;
        owed_ = pending_bytes_;
        if (options_->write_timeout.count() > 0) deadline_.arm(sweep(), options_->write_timeout);
        else deadline_.cancel();
    }
    waiting_writable_ = true;
    connection_->transport().async_wait_writable([self = shared_from_this()](const asio::error_code& ec) {
        self->waiting_writable_ = false;
        if (ec || self->closed_) return;
        self->flush();
        if (self->attachment_ && !self->closed_) self->attachment_->on_room();
    });
}

WEIR_DECL void detail::sse_channel::on_deadline(void* context) {
    auto& self = *static_cast<sse_channel*>(context);
    if (self.closed_) return;
    if (self.writing_late_) self.abort();
    else if (self.queued() == 0 && !self.ending_) self.push(heartbeat());
}

WEIR_DECL asio::awaitable<void> detail::sse_channel::wait_room() {
    if (!producer_) producer_ = std::make_unique<sse_producer_state>(io());
    asio::error_code ec;
    co_await producer_->room.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

WEIR_DECL void detail::sse_channel::watch_client() {
    if (!is_open()) { // ended already (a shutdown that came first, a failed write)
        end_session();
        return;
    }
    connection_->transport().async_wait_readable(
        asio::bind_allocator(own_size_allocator<>(), [self = shared_from_this()](asio::error_code ec) {
            if (!ec && self->is_open()) {
                auto buffer = self->loop_->receive_buffer();
                self->connection_->transport().read_some(asio::buffer(buffer.data(), buffer.size()), ec);
                if (!ec || ec == asio::error::would_block) {
                    self->watch_client();
                    return;
                }
            }
            self->end_session();
        }));
}

WEIR_DECL void detail::sse_channel::end_session() {
    abort();
    if (producer_ && producer_->running) {
        // The producer was cancelled: it ends at its next wait, and the stream with it.
        producer_->after = [self = shared_from_this()] { self->finish_session(); };
        return;
    }
    finish_session();
}

WEIR_DECL void detail::sse_channel::finish_session() {
    auto error = producer_ ? producer_->error : nullptr;
    auto& connection = *connection_;
    connection_ = nullptr;
    std::vector<bytes>().swap(queue_);
    head_ = 0;
    offset_ = 0;
    pending_bytes_ = 0;
    attachment_.reset();
    connection.on_shutdown({});
    connection.transport().shutdown_send();
    auto done = std::move(done_);
    done(std::move(error));
}

WEIR_DECL void detail::sse_channel::producer_ended(std::exception_ptr e) {
    producer_->running = false;
    if (e && !closed_) {
        producer_->error = e; // the producer failed on its own: the session reports it
        abort();
    } else if (!e) {
        finish();
    }
    if (auto then = std::move(producer_->after)) then();
}

WEIR_DECL asio::awaitable<bool> sse_stream::send(const sse_event& event) {
    co_return co_await send_encoded(std::make_shared<const std::string>(encode(event)));
}

WEIR_DECL asio::awaitable<bool> sse_stream::send_encoded(std::shared_ptr<const std::string> bytes) {
    co_await channel_->wait_for_room(bytes->size());
    co_return channel_->push(std::move(bytes));
}

WEIR_DECL asio::awaitable<bool> sse_stream::send_comment(std::string_view text) {
    sse_event e;
    e.comment = std::string(text);
    co_return co_await send(e);
}

WEIR_DECL void sse::start(upgraded_connection& connection, upgrade_done done) {
    auto s = std::move(setup_);
    auto channel = std::make_shared<detail::sse_channel>(connection, std::move(s->options), std::move(done));
    // The channel outlives this registration: the session clears it before it calls `done`.
    connection.on_shutdown([c = channel.get()] { c->finish(); });
    if (auto retry = channel->options_->retry) {
        sse_event e;
        e.retry = retry;
        channel->push(std::make_shared<const std::string>(encode(e)), false);
    }
    channel->flush(); // writes the retry field, or arms the first heartbeat
    if (s->subscription) s->subscription(channel, s->last_event_id);
    if (s->producer) start_producer(channel, std::move(s->producer), std::move(s->last_event_id));
    s.reset(); // the request's Last-Event-ID and the subscription's closure are not kept while idle
    channel->watch_client();
}

WEIR_DECL void sse::start_producer(const std::shared_ptr<detail::sse_channel>& channel, sse_producer producer,
                                   std::string last_event_id) {
    auto& state = *(channel->producer_ = std::make_unique<detail::sse_producer_state>(channel->io()));
    state.running = true;
    asio::co_spawn(channel->get_executor(), produce(channel, std::move(producer), std::move(last_event_id)),
                   asio::bind_cancellation_slot(state.cancel.slot(), [channel](std::exception_ptr e) {
                       channel->producer_ended(std::move(e));
                   }));
}

WEIR_DECL asio::awaitable<void> sse::produce(std::shared_ptr<detail::sse_channel> channel, sse_producer producer,
                                             std::string last_event_id) {
    sse_stream stream(std::move(channel), std::move(last_event_id));
    co_await producer(stream);
}

} // namespace weir
