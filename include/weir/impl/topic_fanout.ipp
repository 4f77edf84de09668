#pragma once

// The topics' delivery side, but for the delivery pass itself (deliver(), which stays in its header): included
// by <weir/detail/topic_fanout.hpp> (header-only) or compiled once by <weir/impl/src.hpp>
// (WEIR_SEPARATE_COMPILATION).

#include <weir/detail/topic_fanout.hpp>

#include <asio/post.hpp>
#include <asio/query.hpp>

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace weir::detail {

WEIR_DECL void topic_loop_service::add(const std::shared_ptr<topic_fanout>& f) {
    std::lock_guard lock(mutex_);
    std::erase_if(fanouts_, [](auto& w) { return w.expired(); });
    for (auto& w : fanouts_)
        if (w.lock() == f) return;
    fanouts_.push_back(f);
}

WEIR_DECL void topic_loop_service::shutdown() {
    std::vector<std::weak_ptr<topic_fanout>> fanouts;
    {
        std::lock_guard lock(mutex_);
        fanouts.swap(fanouts_);
    }
    for (auto& w : fanouts)
        if (auto f = w.lock()) f->loop_gone(context());
}

WEIR_DECL void topic_fanout::connect() {
    backend_->set_sink([weak = weak_from_this()](const std::shared_ptr<const topic_event>& e) {
        if (auto self = weak.lock()) self->dispatch(e);
    });
}

WEIR_DECL bool topic_fanout::add(topic_subscriber& s, const asio::any_io_executor& executor, std::string_view topic) {
    for (auto& r : s.registrations_)
        if (r.slot->topic == topic) return false;
    backend_->listen(topic);
    std::lock_guard lock(mutex_);
    if (!s.group_) {
        auto it = std::find_if(groups_.begin(), groups_.end(), [&](auto& g) { return g->executor == executor; });
        if (it == groups_.end()) {
            auto g = std::make_shared<loop_group>();
            g->executor = executor;
            it = groups_.insert(groups_.end(), std::move(g));
            asio::use_service<topic_loop_service>(asio::query(executor, asio::execution::context))
                .add(shared_from_this());
        }
        s.group_ = *it;
        ++s.group_->subscribers;
        ++subscribers_;
    }
    auto& loops = topics_[std::string(topic)];
    auto it = std::find_if(loops.begin(), loops.end(), [&](auto& l) { return l.first == s.group_; });
    if (it == loops.end()) it = loops.insert(loops.end(), {s.group_, std::make_shared<loop_topic>(topic)});
    auto& slot = it->second;
    s.registrations_.push_back({slot, slot->members.size()});
    slot->members.push_back({&s, s.registrations_.size() - 1, UINT64_MAX});
    ++s.group_->registrations;
    return true;
}

WEIR_DECL bool topic_fanout::remove(topic_subscriber& s, std::string_view topic) {
    auto r = std::find_if(s.registrations_.begin(), s.registrations_.end(),
                          [&](auto& x) { return x.slot->topic == topic; });
    if (r == s.registrations_.end()) return false;
    {
        std::lock_guard lock(mutex_);
        unregister(s, static_cast<std::size_t>(r - s.registrations_.begin()));
        if (s.registrations_.empty()) leave_group(s);
    }
    backend_->unlisten(topic);
    return true;
}

WEIR_DECL void topic_fanout::remove_all(topic_subscriber& s) {
    std::vector<std::string> names;
    {
        std::lock_guard lock(mutex_);
        while (!s.registrations_.empty()) {
            names.push_back(s.registrations_.back().slot->topic);
            unregister(s, s.registrations_.size() - 1);
        }
        if (s.touched_) {
            // It leaves (it is being destroyed) during a pass that would flush it at its end.
            std::replace(s.group_->touched.begin(), s.group_->touched.end(), &s,
                         static_cast<topic_subscriber*>(nullptr));
            s.touched_ = false;
        }
        if (s.group_) leave_group(s);
    }
    for (auto& n : names) backend_->unlisten(n);
}

WEIR_DECL void topic_fanout::loop_gone(asio::execution_context& context) {
    std::lock_guard lock(mutex_);
    for (auto& g : groups_)
        if (&asio::query(g->executor, asio::execution::context) == &context) {
            g->loop_gone = true;
            subscribers_ -= g->subscribers;
        }
    std::erase_if(groups_, [](auto& g) { return g->loop_gone; });
    for (auto t = topics_.begin(); t != topics_.end();) {
        std::erase_if(t->second, [](auto& l) { return l.first->loop_gone; });
        t = t->second.empty() ? topics_.erase(t) : std::next(t);
    }
}

WEIR_DECL void topic_fanout::unregister(topic_subscriber& s, std::size_t i) {
    auto& reg = s.registrations_[i];
    auto& members = reg.slot->members;
    std::size_t at = reg.index;
    if (reg.slot->delivering) {
        // A delivery pass walks the list (a subscriber left from its own write, say): a member moved into
        // this place would miss the pass. A hole instead, closed when the pass is done.
        members[at].subscriber = nullptr;
        reg.slot->has_holes = true;
    } else {
        // Swap-remove from the loop's member list, fixing the index of the member moved.
        if (at + 1 != members.size()) {
            members[at] = members.back();
            members[at].subscriber->registrations_[members[at].registration].index = at;
        }
        members.pop_back();
        if (members.empty()) forget(reg.slot);
    }
    --s.group_->registrations;
    if (i + 1 != s.registrations_.size()) {
        s.registrations_[i] = std::move(s.registrations_.back());
        s.registrations_[i].slot->members[s.registrations_[i].index].registration = i;
    }
    s.registrations_.pop_back();
}

WEIR_DECL void topic_fanout::forget(const std::shared_ptr<loop_topic>& slot) {
    auto t = topics_.find(slot->topic);
    if (t == topics_.end()) return;
    std::erase_if(t->second, [&](auto& l) { return l.second == slot; });
    if (t->second.empty()) topics_.erase(t);
}

WEIR_DECL void topic_fanout::close_holes(const std::shared_ptr<loop_topic>& slot) {
    std::lock_guard lock(mutex_);
    slot->has_holes = false;
    auto& members = slot->members;
    std::size_t kept = 0;
    for (std::size_t k = 0; k < members.size(); ++k) {
        if (!members[k].subscriber) continue;
        if (kept != k) {
            members[kept] = members[k];
            members[kept].subscriber->registrations_[members[kept].registration].index = kept;
        }
        ++kept;
    }
    members.resize(kept);
    if (members.empty()) forget(slot);
}

WEIR_DECL void topic_fanout::leave_group(topic_subscriber& s) {
    --s.group_->subscribers;
    if (!s.group_->loop_gone) --subscribers_;
    if (s.group_->registrations == 0) std::erase(groups_, s.group_);
    s.group_.reset();
}

WEIR_DECL void topic_fanout::dispatch(const std::shared_ptr<const topic_event>& e) {
    std::lock_guard lock(mutex_);
    auto t = topics_.find(e->topic);
    if (t == topics_.end()) return;
    for (auto& [group, slot] : t->second) {
        group->waiting.push_back({slot, e});
        if (!group->scheduled) {
            group->scheduled = true;
            asio::post(group->executor, [self = shared_from_this(), g = group] { self->deliver(*g); });
        }
    }
}

} // namespace weir::detail
