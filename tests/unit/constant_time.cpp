#include <weir/constant_time.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("constant_time_equal is true only for equal strings, whatever their lengths") {
    CHECK(weir::constant_time_equal("s3cret", "s3cret"));
    CHECK(weir::constant_time_equal("", ""));
    CHECK_FALSE(weir::constant_time_equal("s3cret", "s3creT"));
    CHECK_FALSE(weir::constant_time_equal("X3cret", "s3cret"));
    CHECK_FALSE(weir::constant_time_equal("s3cre", "s3cret"));
    CHECK_FALSE(weir::constant_time_equal("s3crett", "s3cret"));
    CHECK_FALSE(weir::constant_time_equal("", "s3cret"));
    CHECK_FALSE(weir::constant_time_equal("s3cret", ""));
    // A prefix repeated is not the secret, though it reads the same bytes cyclically.
    CHECK_FALSE(weir::constant_time_equal("abab", "ab"));
    std::string with_nul("a\0b", 3);
    CHECK(weir::constant_time_equal(with_nul, std::string("a\0b", 3)));
    CHECK_FALSE(weir::constant_time_equal(with_nul, "a"));
}
