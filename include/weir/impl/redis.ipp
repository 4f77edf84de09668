#pragma once

// redis_topic_backend's definitions: included by <weir/topics/redis.hpp> when header-only, compiled once into
// the weir::redis library (src/redis.cpp) with WEIR_REDIS_SEPARATE_COMPILATION.

#include <weir/detail/redis_topic_core.hpp>
#include <weir/topics/redis.hpp>

#include <memory>
#include <thread>
#include <utility>

namespace weir {

WEIR_REDIS_DECL redis_topic_backend::redis_topic_backend(redis_topic_options options)
    : core_(std::make_shared<detail::redis_topic_core>(std::move(options))) {
    thread_ = std::thread([core = core_] { core->run(); });
}

WEIR_REDIS_DECL redis_topic_backend::~redis_topic_backend() {
    core_->stop();
    // The last owner of a topics object may let go on this backend's own thread (while it hands an event
    // on): a thread cannot join itself, and it keeps the core alive until it ends.
    if (thread_.get_id() == std::this_thread::get_id())
        thread_.detach();
    else
        thread_.join();
}

WEIR_REDIS_DECL void redis_topic_backend::set_sink(sink s) {
    core_->set_sink(std::move(s));
}

WEIR_REDIS_DECL std::uint64_t redis_topic_backend::publish(std::string_view topic, sse_event event) {
    return core_->publish(topic, std::move(event));
}

WEIR_REDIS_DECL void redis_topic_backend::listen(std::string_view topic) {
    core_->listen(topic);
}

WEIR_REDIS_DECL void redis_topic_backend::unlisten(std::string_view topic) {
    core_->unlisten(topic);
}

WEIR_REDIS_DECL topic_backend::range redis_topic_backend::read_after(std::string_view topic, std::uint64_t after,
                                                                     std::size_t max) {
    return core_->read_after(topic, after, max);
}

WEIR_REDIS_DECL std::uint64_t redis_topic_backend::last_id() const {
    return core_->last_id();
}

WEIR_REDIS_DECL std::uint64_t redis_topic_backend::last_id(std::string_view topic) const {
    return core_->last_id(topic);
}

} // namespace weir
