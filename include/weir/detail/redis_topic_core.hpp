#pragma once

// The Redis Streams topic backend's machinery: its two connections (commands, and the reading connection's XREAD
// BLOCK loop) on an io_context of its own, and the topics it listens to. Owned by weir::redis_topic_backend and by
// the thread that runs it, so that it outlives a backend destroyed from that thread.

#include <weir/topics/backend.hpp>
#include <weir/topics/redis_options.hpp>
#include <weir/detail/redis_connection.hpp>
#include <weir/detail/redis_stream_id.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace weir::detail {

class redis_topic_core {
public:
    using event_ptr = topic_backend::event_ptr;
    using sink = topic_backend::sink;
    using range = topic_backend::range;

    explicit redis_topic_core(redis_topic_options options) : options_(std::move(options)) {
        asio::co_spawn(io_, serve_commands(), asio::detached);
        asio::co_spawn(io_, read_streams(), asio::detached);
    }

    // On the backend's thread, until stop() has ended everything.
    void run() { io_.run(); }

    redis_topic_core(const redis_topic_core&) = delete;
    redis_topic_core& operator=(const redis_topic_core&) = delete;

    // Closes the connections, so that run() returns; publishes still waiting fail.
    void stop() {
        asio::post(io_, [this] {
            stopping_ = true;
            command_connection_.close();
            reader_connection_.close();
            command_wake_.cancel();
            reader_wake_.cancel();
            reader_pause_.cancel();
            unblock_retry_.cancel();
        });
    }

    void set_sink(sink s) {
        std::lock_guard lock(mutex_);
        sink_ = std::move(s);
    }

    // Appends the event to the topic's stream; returns its id. Throws topic_publish_error when Redis is
    // unreachable, answers with an error or does not answer within the timeout, and std::invalid_argument for an
    // event type with CR or LF.
    std::uint64_t publish(std::string_view topic, sse_event event) {
        make_topic_event(0, {}, event); // refuse what no subscriber could be sent, before anything is appended
        redis_command xadd{"XADD", key(topic), "MAXLEN", "~", std::to_string(options_.max_length), "*", "data",
                           std::move(event.data)};
        if (!event.event.empty()) xadd.insert(xadd.end(), {"event", std::move(event.event)});
        if (event.retry) xadd.insert(xadd.end(), {"retry", std::to_string(*event.retry)});
        if (!event.comment.empty()) xadd.insert(xadd.end(), {"comment", std::move(event.comment)});
        auto replies = call({std::move(xadd)});
        auto& r = replies.front();
        if (r.is_error()) throw topic_publish_error("Redis refused the publish: " + r.text);
        auto id = pack_stream_id(r.text);
        if (!id) throw topic_publish_error("Redis gave a stream id outside the packable range: " + r.text);
        note_seen(*id);
        return *id;
    }

    void listen(std::string_view topic) {
        std::lock_guard listening(listen_mutex_);
        {
            std::lock_guard lock(mutex_);
            if (auto it = topics_.find(topic); it != topics_.end()) {
                ++it->second.listeners;
                return;
            }
        }
        // A new topic: it is read from the stream's current end, so every event appended after this returns
        // reaches the sink. When Redis cannot say where that is, the reading connection finds out when it can.
        listened_topic t;
        t.listeners = 1;
        try {
            auto replies = call({{"XREVRANGE", key(topic), "+", "-", "COUNT", "1"}});
            if (auto end = last_entry(replies.front())) {
                t.position_known = true;
                t.position = *end;
                t.kept_from = *end;
            }
        } catch (const topic_publish_error&) {
        }
        {
            std::lock_guard lock(mutex_);
            topics_.emplace(std::string(topic), std::move(t));
        }
        asio::post(io_, [this] { wake_reader(); });
    }

    void unlisten(std::string_view topic) {
        std::lock_guard lock(mutex_);
        auto it = topics_.find(topic);
        if (it != topics_.end() && --it->second.listeners == 0) topics_.erase(it);
    }

    // From what this process kept when it covers `after`, else from Redis (`XRANGE`). Not complete when `after`
    // is older than the stream's first entry (entries after it were trimmed, or the stream was lost and started
    // over), greater than its last, or Redis cannot be asked. 0 reads from the start of a stream that never lost
    // an entry.
    range read_after(std::string_view topic, std::uint64_t after, std::size_t max) {
        {
            std::lock_guard lock(mutex_);
            auto it = topics_.find(topic);
            // What is kept covers ids from kept_from (an id of the stream, or 0 when the stream was empty: then
            // only ids of kept entries, and 0) through position.
            const listened_topic* t = it != topics_.end() && it->second.position_known ? &it->second : nullptr;
            if (t && after >= t->kept_from && after <= t->position &&
                (t->kept_from != 0 || after == 0 || (!t->kept.empty() && after >= t->kept.front()->id))) {
                range r;
                auto& kept = t->kept;
                auto first = std::upper_bound(kept.begin(), kept.end(), after,
                                              [](std::uint64_t id, const event_ptr& e) { return id < e->id; });
                for (auto i = first; i != kept.end() && r.events.size() < max; ++i) r.events.push_back(*i);
                return r;
            }
        }
        range r;
        r.complete = false;
        try {
            auto replies = call({{"XINFO", "STREAM", key(topic)},
                                 {"XRANGE", key(topic), "(" + stream_id_string(after), "+", "COUNT",
                                  std::to_string(max)}});
            auto& info = replies[0];
            if (info.is_error()) {
                r.complete = after == 0; // no stream: nothing was published, or it is gone
                return r;
            }
            // Complete from an id of the stream's entries still kept on: an id older than the first entry was
            // trimmed (MAXLEN) or belongs to a stream that was lost and started over; an id after the last is not
            // one of the stream's. 0 stands for "from the start" while nothing was ever removed.
            auto last = field(info, "last-generated-id");
            auto end = last ? pack_stream_id(last->text) : std::nullopt;
            std::uint64_t oldest_missing = 0;
            if (auto deleted = field(info, "max-deleted-entry-id")) // Redis 7: XDEL
                oldest_missing = pack_stream_id(deleted->text).value_or(UINT64_MAX);
            auto added = field(info, "entries-added");
            auto length = field(info, "length");
            bool removed = oldest_missing > 0 || !added || !length || added->integer > length->integer;
            std::uint64_t first_kept = 0;
            if (auto first = field(info, "first-entry"); first && !first->elements.empty())
                first_kept = pack_stream_id(first->elements[0].text).value_or(UINT64_MAX);
            bool from_start = after == 0 && !removed;
            r.complete = end && after <= *end && after >= oldest_missing && (after >= first_kept || from_start);
            for (auto& entry : replies[1].elements)
                if (auto e = to_event(topic, entry)) r.events.push_back(std::move(e));
        } catch (const topic_publish_error&) {
        }
        return r;
    }

    // The greatest id this process has published or handed on.
    std::uint64_t last_id() const { return seen_.load(std::memory_order_relaxed); }

    // The last id of a listened topic handed on to the sink (or its stream's end when listening began); later
    // entries reach the sink after this returns. 0 while Redis could not be asked where the stream ended.
    std::uint64_t last_id(std::string_view topic) const {
        std::lock_guard lock(mutex_);
        auto it = topics_.find(topic);
        if (it == topics_.end()) return last_id();
        return it->second.position_known ? it->second.position : 0;
    }

private:
    using clock = std::chrono::steady_clock;
    using replies = std::vector<redis_reply>;
    // What became of a request: its replies, or why there are none. (A message rather than an exception_ptr:
    // the waiting thread throws its own exception, so no exception object is shared between threads.)
    struct outcome {
        bool ok = false;
        std::string error;
        replies values;
    };
    using completion = std::function<void(outcome)>;

    struct listened_topic {
        std::size_t listeners = 0;
        bool position_known = false;
        std::uint64_t position = 0;  // the last id handed on (or the stream's end when listening began)
        std::uint64_t kept_from = 0; // `kept` holds every entry after this id, through `position`
        std::deque<event_ptr> kept;
    };
    struct request {
        std::vector<redis_command> commands;
        clock::time_point deadline;
        completion done;
    };
    struct name_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    std::string key(std::string_view topic) const { return options_.key_prefix + std::string(topic); }

    void note_seen(std::uint64_t id) {
        auto seen = seen_.load(std::memory_order_relaxed);
        while (seen < id && !seen_.compare_exchange_weak(seen, id, std::memory_order_relaxed)) {
        }
    }

    // From any thread but the backend's: runs the commands (pipelined) and waits for their replies. Throws
    // topic_publish_error when they could not be run or did not answer in time.
    replies call(std::vector<redis_command> commands) {
        auto deadline = clock::now() + options_.timeout;
        auto result = std::make_shared<std::promise<outcome>>();
        auto answer = result->get_future();
        submit({std::move(commands), deadline, [result](outcome o) { result->set_value(std::move(o)); }});
        // The backend's thread answers by the deadline (it closes a connection that does not); the margin only
        // guards against a thread that cannot run.
        if (answer.wait_until(deadline + options_.timeout) != std::future_status::ready)
            throw topic_publish_error("Redis did not answer in time");
        outcome o = answer.get();
        if (!o.ok) throw topic_publish_error(o.error);
        return std::move(o.values);
    }

    void submit(request r) {
        asio::post(io_, [this, r = std::move(r)]() mutable {
            if (stopping_) return r.done({false, "the Redis backend stopped", {}});
            pending_.push_back(std::move(r));
            command_wake_.cancel();
        });
    }

    // The command connection: requests are taken in batches, each batch written at once. A connection found
    // closed while idle is replaced before it is used; when Redis cannot be reached, the batch fails at once.
    asio::awaitable<void> serve_commands() {
        auto fail = [](std::vector<request>& batch, const std::string& why) {
            for (auto& r : batch) r.done({false, why, {}});
        };
        while (!stopping_) {
            if (pending_.empty()) {
                asio::error_code ec;
                command_wake_.expires_at(clock::time_point::max());
                co_await command_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                continue;
            }
            std::vector<request> batch;
            batch.swap(pending_);
            auto now = clock::now();
            auto deadline = clock::time_point::max();
            for (auto& r : batch) deadline = std::min(deadline, r.deadline);
            if (deadline <= now) {
                fail(batch, "Redis did not answer in time");
                continue;
            }
            if (command_connection_.is_open() && command_connection_.peer_closed()) command_connection_.close();
            if (!command_connection_.is_open()) {
                try {
                    co_await command_connection_.connect(options_.host, options_.port, deadline);
                } catch (const std::exception& e) {
                    fail(batch, std::string("Redis is unreachable: ") + e.what());
                    continue;
                }
            }
            std::vector<redis_command> commands;
            for (auto& r : batch) commands.insert(commands.end(), r.commands.begin(), r.commands.end());
            try {
                auto all = co_await command_connection_.run(commands, deadline);
                std::size_t at = 0;
                for (auto& r : batch) {
                    auto first = all.begin() + static_cast<std::ptrdiff_t>(at);
                    auto last = first + static_cast<std::ptrdiff_t>(r.commands.size());
                    replies mine(std::make_move_iterator(first), std::make_move_iterator(last));
                    at += r.commands.size();
                    r.done({true, {}, std::move(mine)});
                }
            } catch (const std::exception& e) {
                // Sent, but the answer was lost: what Redis did with it is not known.
                fail(batch, std::string("the connection to Redis failed: ") + e.what());
            }
        }
        std::vector<request> left;
        left.swap(pending_);
        fail(left, "the Redis backend stopped");
    }

    // The reading connection: XREAD BLOCK on every listened stream from the last id handed on. On any failure
    // it reconnects after a pause that doubles (up to max_reconnect_delay) and goes on from the same ids.
    asio::awaitable<void> read_streams() {
        auto delay = options_.reconnect_delay;
        bool failed = false;
        while (!stopping_) {
            try {
                if (!reader_connection_.is_open()) {
                    co_await reader_connection_.connect(options_.host, options_.port, clock::now() + options_.timeout);
                    // (Commands are built outside co_await: GCC 12 cannot keep an initializer list across it.)
                    std::vector<redis_command> client_id{{"CLIENT", "ID"}};
                    auto id = co_await reader_connection_.run(client_id, clock::now() + options_.timeout);
                    reader_client_id_ = std::to_string(id.front().integer);
                    delay = options_.reconnect_delay;
                }
                co_await find_stream_ends();
                redis_command xread{"XREAD", "COUNT", "1000", "BLOCK", std::to_string(block_.count()), "STREAMS"};
                std::vector<std::string> ids;
                {
                    std::lock_guard lock(mutex_);
                    for (auto& [name, t] : topics_)
                        if (t.position_known) {
                            xread.push_back(key(name));
                            ids.push_back(stream_id_string(t.position));
                        }
                }
                if (ids.empty()) {
                    asio::error_code ec;
                    reader_wake_.expires_at(clock::time_point::max());
                    co_await reader_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
                    continue;
                }
                xread.insert(xread.end(), ids.begin(), ids.end());
                ++reader_round_;
                reader_blocked_ = true;
                std::vector<redis_command> commands{std::move(xread)};
                auto r = co_await reader_connection_.run(commands, clock::now() + block_ + options_.timeout);
                reader_blocked_ = false;
                if (r.front().is_error()) throw std::runtime_error(r.front().text);
                hand_on(r.front());
            } catch (const std::exception&) {
                failed = true;
            }
            if (!failed) continue;
            failed = false;
            reader_blocked_ = false;
            reader_connection_.close();
            if (stopping_) break;
            asio::error_code ec;
            reader_pause_.expires_after(delay);
            co_await reader_pause_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            delay = std::min(delay * 2, options_.max_reconnect_delay);
        }
    }

    // Topics that began to be listened to while Redis could not say where their streams ended: they start there
    // now.
    asio::awaitable<void> find_stream_ends() {
        std::vector<std::string> names;
        {
            std::lock_guard lock(mutex_);
            for (auto& [name, t] : topics_)
                if (!t.position_known) names.push_back(name);
        }
        if (names.empty()) co_return;
        std::vector<redis_command> commands;
        for (auto& n : names) commands.push_back({"XREVRANGE", key(n), "+", "-", "COUNT", "1"});
        auto r = co_await reader_connection_.run(commands, clock::now() + options_.timeout);
        std::lock_guard lock(mutex_);
        for (std::size_t i = 0; i < names.size(); ++i) {
            auto it = topics_.find(names[i]);
            if (it == topics_.end() || it->second.position_known || r[i].is_error()) continue;
            it->second.position_known = true;
            it->second.position = it->second.kept_from = last_entry(r[i]).value_or(0);
        }
    }

    // An XREAD reply: each stream's new entries go to the sink in order (under the lock, so a reader of
    // last_id(topic) knows every later entry reaches the sink after it looked).
    void hand_on(const redis_reply& reply) {
        for (auto& stream : reply.elements) {
            if (stream.elements.size() != 2) continue;
            std::string_view name = stream.elements[0].text;
            if (!name.starts_with(options_.key_prefix)) continue;
            name.remove_prefix(options_.key_prefix.size());
            std::lock_guard lock(mutex_);
            auto it = topics_.find(name);
            if (it == topics_.end() || !it->second.position_known) continue; // no longer listened to
            listened_topic& t = it->second;
            for (auto& entry : stream.elements[1].elements) {
                auto e = to_event(name, entry);
                if (!e || e->id <= t.position) continue;
                t.position = e->id;
                note_seen(e->id);
                if (options_.kept_events > 0) {
                    t.kept.push_back(e);
                    if (t.kept.size() > options_.kept_events) {
                        t.kept_from = t.kept.front()->id;
                        t.kept.pop_front();
                    }
                } else {
                    t.kept_from = e->id;
                }
                if (sink_) sink_(e);
            }
        }
    }

    // On the backend's thread: a topic was added. A reader waiting for topics wakes up; a reader blocked in
    // XREAD is unblocked (CLIENT UNBLOCK) so that its next XREAD includes the new stream.
    void wake_reader() {
        if (!reader_blocked_) {
            reader_wake_.cancel();
            return;
        }
        auto round = reader_round_;
        submit({{{"CLIENT", "UNBLOCK", reader_client_id_, "TIMEOUT"}},
                clock::now() + options_.timeout,
                [this, round](outcome o) {
                    // Not blocked yet (the XREAD is on its way): try again shortly, while it is the same XREAD.
                    if (!o.ok || o.values.front().integer != 0 || !reader_blocked_ || reader_round_ != round) return;
                    unblock_retry_.expires_after(std::chrono::milliseconds(5));
                    unblock_retry_.async_wait([this, round](const asio::error_code& ec) {
                        if (!ec && !stopping_ && reader_blocked_ && reader_round_ == round) wake_reader();
                    });
                }});
    }

    // The id of the entry in an XREVRANGE ... COUNT 1 reply; 0 for an empty or missing stream.
    static std::optional<std::uint64_t> last_entry(const redis_reply& r) {
        if (r.is_error()) return std::nullopt;
        if (r.elements.empty() || r.elements[0].elements.empty()) return 0;
        return pack_stream_id(r.elements[0].elements[0].text);
    }

    // The value of `name` in a reply of alternating names and values (XINFO STREAM).
    static const redis_reply* field(const redis_reply& r, std::string_view name) {
        for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2)
            if (r.elements[i].text == name) return &r.elements[i + 1];
        return nullptr;
    }

    // A stream entry ([id, [field, value, ...]]) as an event; null for an entry that is not one (an id outside
    // the packing's range, an event type that cannot be encoded).
    static event_ptr to_event(std::string_view topic, const redis_reply& entry) {
        if (entry.elements.size() != 2) return nullptr;
        auto id = pack_stream_id(entry.elements[0].text);
        if (!id) return nullptr;
        sse_event e;
        auto& fields = entry.elements[1].elements;
        for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
            const std::string& name = fields[i].text;
            const std::string& value = fields[i + 1].text;
            if (name == "data") e.data = value;
            else if (name == "event") e.event = value;
            else if (name == "comment") e.comment = value;
            else if (name == "retry") {
                unsigned retry = 0;
                auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), retry);
                if (err == std::errc() && end == value.data() + value.size()) e.retry = retry;
            }
        }
        try {
            return make_topic_event(*id, std::string(topic), std::move(e));
        } catch (const std::invalid_argument&) {
            return nullptr;
        }
    }

    static constexpr std::chrono::milliseconds block_{2000}; // an XREAD's BLOCK: a bound on a lost CLIENT UNBLOCK

    redis_topic_options options_;
    asio::io_context io_{1};
    // On the backend's thread:
    redis_connection command_connection_{io_.get_executor()};
    redis_connection reader_connection_{io_.get_executor()};
    asio::steady_timer command_wake_{io_};
    asio::steady_timer reader_wake_{io_};
    asio::steady_timer reader_pause_{io_};
    asio::steady_timer unblock_retry_{io_};
    std::vector<request> pending_;
    std::string reader_client_id_;
    std::uint64_t reader_round_ = 0;
    bool reader_blocked_ = false;
    bool stopping_ = false;
    // Shared:
    std::mutex listen_mutex_; // one new topic at a time finds its stream's end
    mutable std::mutex mutex_;
    sink sink_;
    std::unordered_map<std::string, listened_topic, name_hash, std::equal_to<>> topics_;
    std::atomic<std::uint64_t> seen_{0};
};

} // namespace weir::detail
