#pragma once

// The topics object's definitions: included by <weir/topics.hpp> (header-only) or compiled once by
// <weir/impl/src.hpp> (WEIR_SEPARATE_COMPILATION). Out of the header, the subscribers' and the in-process
// backend's constructors take their classes' virtual functions with them: a unit that uses topics emits none.

#include <weir/topics.hpp>

#include <initializer_list>
#include <memory>
#include <string_view>
#include <utility>

namespace weir {

WEIR_DECL topic_membership::topic_membership(std::shared_ptr<detail::topic_fanout> fanout,
                                             websocket_connection& session, const topics_options& options)
    : fanout_(std::move(fanout)),
      subscriber_(std::make_unique<detail::websocket_topic_subscriber>(session, options.websocket_on_full,
                                                                       options.websocket_backlog_bytes)),
      executor_(session.get_executor()) {}

WEIR_DECL topic_membership::~topic_membership() {
    if (subscriber_) fanout_->remove_all(*subscriber_);
}

WEIR_DECL bool topic_membership::join(std::string_view topic) {
    if (!fanout_->add(*subscriber_, executor_, topic)) return false;
    fanout_->go_live(*subscriber_, fanout_->backend().last_id(topic), topic);
    return true;
}

WEIR_DECL bool topic_membership::leave(std::string_view topic) { return fanout_->remove(*subscriber_, topic); }

WEIR_DECL topics::topics(topics_options options)
    : options_(std::make_shared<const topics_options>(std::move(options))) {
    auto backend = options_->backend ? options_->backend
                                     : std::make_shared<in_process_topic_backend>(options_->history);
    fanout_ = std::make_shared<detail::topic_fanout>(std::move(backend));
    fanout_->connect();
}

WEIR_DECL topic_membership topics::join(websocket_connection& session,
                                        std::initializer_list<std::string_view> names) const {
    topic_membership m(fanout_, session, *options_);
    for (auto n : names) m.join(n);
    return m;
}

} // namespace weir
