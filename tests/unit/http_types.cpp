#include <weir/http/headers.hpp>
#include <weir/http/request.hpp>
#include <weir/http/response.hpp>
#include <weir/http/status.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("headers keep several fields of one name, in order") {
    weir::headers h;
    h.add("Set-Cookie", "a=1");
    h.add("set-cookie", "b=2");
    h.add("Vary", "Origin");
    auto cookies = h.get_all("SET-COOKIE");
    REQUIRE(cookies.size() == 2);
    CHECK(cookies[0] == "a=1");
    CHECK(cookies[1] == "b=2");
    CHECK(h.list_contains("vary", "origin"));
}

TEST_CASE("set replaces every field of the name with one") {
    weir::headers h;
    h.add("X-A", "1");
    h.add("X-B", "2");
    h.add("x-a", "3");
    h.set("X-A", "4");
    CHECK(h.get_all("x-a").size() == 1);
    CHECK(h.get("X-A") == "4");
    CHECK(h.erase("x-b") == 1);
    CHECK(!h.contains("X-B"));
}

TEST_CASE("a header name must be a token and a value cannot hold CR, LF or NUL") {
    weir::headers h;
    CHECK_THROWS_AS(h.add("Bad Name", "x"), std::invalid_argument);
    CHECK_THROWS_AS(h.add("X-A", "a\nb"), std::invalid_argument);
    CHECK_THROWS_AS(h.add("X-A", std::string_view("a\0b", 3)), std::invalid_argument);
    CHECK_NOTHROW(h.add("X-A", "tab\tand obs-text \xC3\xA9"));
}

TEST_CASE("framing and upgrade headers belong to the final stage") {
    weir::headers h;
    for (auto name : {"Content-Length", "transfer-encoding", "Connection", "Upgrade", "Keep-Alive",
                      "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"})
        CHECK_THROWS_AS(h.set(name, "x"), weir::protocol_header_error);
}

TEST_CASE("query parameters are percent-decoded and '+' reads as a space") {
    weir::http_request m;
    m.query_ = "a=1&token=x%2By+z&empty=&flag";
    CHECK(m.query_param("token") == "x+y z");
    CHECK(m.query_param("a") == "1");
    CHECK(m.query_param("empty") == "");
    CHECK(m.query_param("flag") == "");
    CHECK(!m.query_param("missing"));
}

TEST_CASE("keep-alive follows the version and the Connection field") {
    weir::http_request m;
    m.version_ = 11;
    CHECK(m.keep_alive());
    m.fields_.push_back({"Connection", "Close"});
    CHECK(!m.keep_alive());
    m.fields_.clear();
    m.version_ = 10;
    CHECK(!m.keep_alive());
    m.fields_.push_back({"Connection", "keep-alive"});
    CHECK(m.keep_alive());
}

TEST_CASE("a request carries typed context and narrows to a subset") {
    struct a {
        int v;
    };
    struct b {
        int v;
    };
    weir::http_request m;
    weir::request<> base(m);
    auto with_both = base.with(a{1}).with(b{2});
    CHECK(with_both.get<a>().v == 1);
    CHECK(with_both.get<b>().v == 2);
    weir::request<b> only_b = with_both;
    CHECK(only_b.get<b>().v == 2);
    CHECK(!weir::request<b>::has<a>);
}

TEST_CASE("statuses that forbid a body") {
    CHECK(weir::forbids_body(weir::status::no_content));
    CHECK(weir::forbids_body(weir::status::not_modified));
    CHECK(weir::forbids_body(weir::status::switching_protocols));
    CHECK(!weir::forbids_body(weir::status::ok));
    CHECK(weir::reason_phrase(weir::status::too_many_requests) == "Too Many Requests");
}

TEST_CASE("header checks find a forbidden byte at any position of any length") {
    // Values are checked eight bytes at a time and names four at a time: each length and each position.
    for (std::size_t length = 1; length <= 40; ++length) {
        for (std::size_t at = 0; at < length; ++at) {
            std::string value(length, 'v');
            for (int bad : {0x00, 0x01, 0x0a, 0x0d, 0x1f, 0x7f}) {
                value[at] = static_cast<char>(bad);
                weir::headers h;
                CHECK_THROWS_AS(h.add("X-A", value), std::invalid_argument);
            }
            for (int good : {0x09, 0x20, 0x7e, 0x80, 0xff}) {
                value[at] = static_cast<char>(good);
                weir::headers h;
                CHECK_NOTHROW(h.add("X-A", value));
            }
            std::string name(length, 'n');
            for (int bad : {0x20, 0x3a, 0x28, 0x22, 0x7f, 0x80, 0x00}) { // SP : ( " DEL, obs-text, NUL
                name[at] = static_cast<char>(bad);
                weir::headers h;
                CHECK_THROWS_AS(h.add(name, "x"), std::invalid_argument);
            }
            name[at] = '~';
            weir::headers h;
            CHECK_NOTHROW(h.add(name, "x"));
        }
    }
}

TEST_CASE("only the framing and upgrade names themselves belong to the final stage") {
    weir::headers h;
    // The lengths of protocol-owned names, but other names.
    for (auto name : {"Upgradx", "X-Connect", "Connectiox", "Keep-Alivx", "Content-Lengtx", "Transfer-Encodinx",
                      "Sec-WebSocket-Acceps", "Sec-WebSocket-Protocos", "Sec-WebSocket-Extensionx", "Upgrades",
                      "Content-Type"})
        CHECK_NOTHROW(h.set(name, "x"));
    for (auto name : {"UPGRADE", "CoNnEcTiOn", "KEEP-alive", "content-LENGTH", "Transfer-ENCODING"})
        CHECK_THROWS_AS(h.set(name, "x"), weir::protocol_header_error);
    static_assert(weir::is_protocol_owned_header("sec-websocket-extensions"));
    static_assert(!weir::is_protocol_owned_header("sec-websocket-version"));
}
