#pragma once

// The delivery side of topics: which event loops have subscribers of which topic, and one delivery pass per
// loop for everything published since its last pass. Subscribers live on their loop and are only touched
// there; the shared part (which loops to post to, what waits for each) is under one mutex.

#include <weir/topics/backend.hpp>
#include <weir/detail/config.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/execution_context.hpp>
#include <asio/post.hpp>
#include <asio/query.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace weir::detail {

class topic_subscriber;

// Asks for the cache line at p (a hint: no fault, no effect on what the program computes).
inline void prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

// The subscribers of one topic on one loop. Touched only on that loop.
struct loop_topic {
    explicit loop_topic(std::string_view name) : topic(name) {}
    struct member {
        topic_subscriber* subscriber;
        std::size_t registration; // its index in the subscriber's registrations
        // Events with a greater id are delivered to it; until then (it replays history, or it joined after
        // them) they are skipped.
        std::uint64_t live_after = UINT64_MAX;
    };
    std::string topic; // its name, for the subscribers registered here (one copy per loop, not per subscriber)
    std::vector<member> members; // a member that left during a delivery pass is a hole (no subscriber) until it ends
    bool delivering = false;     // a delivery pass walks `members`: nothing moves in it
    bool has_holes = false;
};

// One event loop's share of a topics object: events waiting for its next delivery pass.
struct loop_group {
    struct waiting_event {
        std::shared_ptr<loop_topic> to;
        std::shared_ptr<const topic_event> event;
    };
    asio::any_io_executor executor;
    std::vector<waiting_event> waiting; // under the fanout's mutex
    bool scheduled = false;             // under the fanout's mutex
    std::size_t registrations = 0;      // under the fanout's mutex
    std::size_t subscribers = 0;        // under the fanout's mutex
    bool loop_gone = false;             // under the fanout's mutex: its io_context is being destroyed
    std::vector<topic_subscriber*> touched; // on the loop: subscribers given events in this pass
    std::vector<waiting_event> delivering;  // on the loop: the pass's events (kept for its capacity)
};

// A subscriber of one or more topics, on one loop.
class topic_subscriber {
public:
    virtual ~topic_subscriber() = default;
    // Queues the event's bytes (applying the subscriber's slow-consumer policy).
    virtual void queue(const topic_event& e) = 0;
    // Writes what was queued in this pass: one gathering write.
    virtual void flush() = 0;
    // A pass that is one run of events (all of one topic): writes the live ones of [first, last) (id greater
    // than `live_after`) now, without queueing them, if nothing else waits to be written. False if it did not,
    // and the pass queues them and flushes instead. Called only if `writes_runs_` is set.
    virtual bool write_run(const loop_group::waiting_event* first, const loop_group::waiting_event* last,
                           std::uint64_t live_after) {
        (void)first, (void)last, (void)live_after;
        return false;
    }

protected:
    // The topics registered, for a subscriber that reads their history.
    std::size_t topic_count() const noexcept { return registrations_.size(); }
    const std::string& topic(std::size_t i) const noexcept { return registrations_[i].slot->topic; }

    // What a delivery touches, in the order it does: first the object it starts from (the stream's channel,
    // the session; three cache lines of it), then what that object reaches through pointers (the connection,
    // the socket; one line each). A pass prefetches them a member ahead, so that their cache misses overlap
    // the previous member's write instead of following one another.
    std::array<const void*, 3> hot_{};
    // It overrides write_run(): the pass calls it (others cost no call that would do nothing).
    bool writes_runs_ = false;

private:
    friend class topic_fanout;
    struct registration {
        std::shared_ptr<loop_topic> slot; // its topic's name is there
        std::size_t index;
    };
    std::vector<registration> registrations_;
    std::shared_ptr<loop_group> group_;
    bool touched_ = false;
};

class topic_fanout;

// Tells the fanouts with subscribers on an event loop when its io_context is destroyed (an Asio service is
// shut down before the context's pending handlers are destroyed), so that no publish posts to it afterwards,
// whatever still holds a subscription there.
class topic_loop_service final : public asio::execution_context::service {
public:
    using key_type = topic_loop_service;
    static inline asio::execution_context::id id;

    explicit topic_loop_service(asio::execution_context& context) : asio::execution_context::service(context) {}

    WEIR_DECL void add(const std::shared_ptr<topic_fanout>& f);

private:
    WEIR_DECL void shutdown() override;

    std::mutex mutex_;
    std::vector<std::weak_ptr<topic_fanout>> fanouts_;
};

class topic_fanout : public std::enable_shared_from_this<topic_fanout> {
public:
    explicit topic_fanout(std::shared_ptr<topic_backend> backend) : backend_(std::move(backend)) {}

    // Called once the fanout is owned by a shared_ptr: the backend's events come here.
    WEIR_DECL void connect();

    topic_backend& backend() noexcept { return *backend_; }

    // Registers `s` (on the loop of `executor`, from that loop) for `topic`; false if it already is. The
    // backend listens first, so no event published after this returns is missed by the sink.
    WEIR_DECL bool add(topic_subscriber& s, const asio::any_io_executor& executor, std::string_view topic);

    // Delivers live events of every topic of `s` with an id greater than `after` to it from now on (on its loop).
    void go_live(topic_subscriber& s, std::uint64_t after) {
        for (auto& r : s.registrations_) r.slot->members[r.index].live_after = after;
    }

    // The same for one topic of `s`.
    void go_live(topic_subscriber& s, std::uint64_t after, std::string_view topic) {
        for (auto& r : s.registrations_)
            if (r.slot->topic == topic) r.slot->members[r.index].live_after = after;
    }

    // Unregisters `s` from `topic` (on its loop); false if it was not registered.
    WEIR_DECL bool remove(topic_subscriber& s, std::string_view topic);

    // Unregisters `s` from every topic (on its loop, or while its loop is destroyed).
    WEIR_DECL void remove_all(topic_subscriber& s);

    // The io_context `context` is being destroyed: its groups get no more posts and stop counting.
    WEIR_DECL void loop_gone(asio::execution_context& context);

    std::size_t subscriber_count() const {
        std::lock_guard lock(mutex_);
        return subscribers_;
    }

private:
    // Under the mutex: drops registration i of s (the last registration moves into its place).
    WEIR_DECL void unregister(topic_subscriber& s, std::size_t i);

    // Under the mutex: a loop's list for a topic has no member left.
    WEIR_DECL void forget(const std::shared_ptr<loop_topic>& slot);

    // After a delivery pass over `slot`: closes the holes members left during it, in order.
    WEIR_DECL void close_holes(const std::shared_ptr<loop_topic>& slot);

    // Under the mutex: s has no registration left.
    WEIR_DECL void leave_group(topic_subscriber& s);

    // From the backend (under its lock, in id order within a topic): the event waits for each loop with a
    // subscriber of its topic, and a loop without a pass scheduled gets one. A group exists only while a
    // subscriber on its loop is registered, and subscribers leave (under this mutex) before their loop is
    // destroyed, so this never posts to a loop that is gone.
    WEIR_DECL void dispatch(const std::shared_ptr<const topic_event>& e);

    // On the group's loop: everything published since the last pass, in order, to each live subscriber; then
    // one write per subscriber that got something. Consecutive events of one topic are handed out subscriber
    // by subscriber (each subscriber's state is touched once per run, not once per event), and runs go in id
    // order, so a subscriber of several topics still gets its events in id order.
    // At most this many events go to one subscriber before the next subscriber gets them: WebSocket sessions
    // that compress without context share one compressed copy of a shared payload through a small per-thread
    // cache of recent messages (32), which a longer run would cycle through without a hit. A pass of up to
    // this many events of one topic is one run, so each subscriber writes while it is hot and holds its send
    // state only for its own turn (a longer pass has every subscriber hold one until the pass ends).
    static constexpr std::size_t events_per_sweep = 32;

    void deliver(loop_group& g) {
        {
            std::lock_guard lock(mutex_);
            g.delivering.swap(g.waiting);
            g.scheduled = false;
        }
        auto& events = g.delivering;
        for (std::size_t i = 0; i < events.size();) {
            std::size_t j = i + 1;
            while (j < events.size() && j - i < events_per_sweep && events[j].to == events[i].to) ++j;
            // One run for the whole pass (the common case): each subscriber writes at once, while it is hot.
            bool whole_pass = i == 0 && j == events.size();
            std::shared_ptr<loop_topic> slot = events[i].to;
            auto& members = slot->members;
            slot->delivering = true; // a member that leaves now leaves a hole: nobody moves past this walk
            for (std::size_t at = 0; at < members.size(); ++at) {
                // Two members ahead, the subscriber; one ahead, what it touches first (read from the subscriber
                // prefetched the turn before). Each write's system call then hides the next member's misses.
                if (at + 2 < members.size()) prefetch(members[at + 2].subscriber);
                if (at + 1 < members.size() && members[at + 1].subscriber) prefetch_hot(*members[at + 1].subscriber);
                if (!members[at].subscriber) continue;
                topic_subscriber& s = *members[at].subscriber;
                // Copied: a subscriber that joins while this one queues may move the list.
                const std::uint64_t live_after = members[at].live_after;
                if (whole_pass && s.writes_runs_ && s.write_run(events.data() + i, events.data() + j, live_after))
                    continue;
                bool queued = false;
                for (std::size_t k = i; k < j; ++k) {
                    const topic_event& e = *events[k].event;
                    if (e.id <= live_after) continue;
                    s.queue(e);
                    queued = true;
                    if (members[at].subscriber != &s) break; // it left (its slow-consumer policy closed it)
                }
                if (!queued || members[at].subscriber != &s) continue;
                if (whole_pass) {
                    s.flush();
                } else if (!s.touched_) {
                    s.touched_ = true;
                    g.touched.push_back(&s);
                }
            }
            slot->delivering = false;
            if (slot->has_holes) close_holes(slot);
            i = j;
        }
        events.clear();
        // By index: a flush may end another touched subscriber, whose place then holds null.
        for (std::size_t k = 0; k < g.touched.size(); ++k) {
            topic_subscriber* s = g.touched[k];
            if (!s) continue;
            s->touched_ = false;
            s->flush();
        }
        g.touched.clear();
    }

    static void prefetch_hot(const topic_subscriber& s) noexcept {
        if (auto* p = static_cast<const char*>(s.hot_[0])) {
            prefetch(p);
            prefetch(p + 64);
            prefetch(p + 128);
        }
        for (std::size_t i = 1; i < s.hot_.size(); ++i)
            if (s.hot_[i]) prefetch(s.hot_[i]);
    }

    std::shared_ptr<topic_backend> backend_;
    mutable std::mutex mutex_;
    std::size_t subscribers_ = 0;
    std::vector<std::shared_ptr<loop_group>> groups_;
    std::unordered_map<std::string, std::vector<std::pair<std::shared_ptr<loop_group>, std::shared_ptr<loop_topic>>>>
        topics_;
};

} // namespace weir::detail

#if !defined(WEIR_SEPARATE_COMPILATION)
#include <weir/impl/topic_fanout.ipp>
#endif
