// weir::raise_open_file_limit takes the process's soft limit on open files to its hard limit.

#include <weir/server.hpp>

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>

TEST_CASE("raise_open_file_limit: the soft limit becomes the hard limit, and is returned") {
    rlimit before{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &before) == 0);
    rlimit lowered = before;
    lowered.rlim_cur = std::min<rlim_t>(before.rlim_max, 64);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);

    std::size_t now = weir::raise_open_file_limit();
    rlimit after{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &after) == 0);
    CHECK(after.rlim_cur == before.rlim_max);
    CHECK(now == static_cast<std::size_t>(after.rlim_cur));
    // Already at the hard limit: nothing changes.
    CHECK(weir::raise_open_file_limit() == now);
    setrlimit(RLIMIT_NOFILE, &before);
}
