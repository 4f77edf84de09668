// The Redis topic backend compiled once: the weir::redis library. Every unit that uses it is built with
// WEIR_REDIS_SEPARATE_COMPILATION (the target says so), so <weir/topics/redis.hpp> only declares it.

#if !defined(WEIR_REDIS_SEPARATE_COMPILATION)
#error "src/redis.cpp is built with WEIR_REDIS_SEPARATE_COMPILATION (the weir::redis target)"
#endif

#include <weir/impl/redis.ipp>
