#include <weir/sse.hpp>

#include <doctest/doctest.h>

TEST_CASE("multi-line data becomes one data line per line, whatever the line terminator") {
    weir::sse_event e;
    e.data = "a\nb\r\nc\rd";
    CHECK(weir::encode(e) == "data: a\ndata: b\ndata: c\ndata: d\n\n");
}

TEST_CASE("id, event, retry and comment fields are encoded in order") {
    weir::sse_event e;
    e.comment = "note";
    e.id = "7";
    e.event = "update";
    e.retry = 2500;
    e.data = "x";
    CHECK(weir::encode(e) == ": note\nid: 7\nevent: update\nretry: 2500\ndata: x\n\n");
}

TEST_CASE("CR or LF in an id or event type, or NUL in an id, is refused rather than injecting a field") {
    weir::sse_event e;
    e.data = "x";
    e.id = "1\ndata: injected";
    CHECK_THROWS_AS(weir::encode(e), std::invalid_argument);
    e.id = std::string("1\0", 2);
    CHECK_THROWS_AS(weir::encode(e), std::invalid_argument);
    e.id.reset();
    e.event = "a\rb";
    CHECK_THROWS_AS(weir::encode(e), std::invalid_argument);
}

TEST_CASE("a multi-line comment stays a comment on every line") {
    weir::sse_event e;
    e.comment = "one\ndata: two";
    CHECK(weir::encode(e) == ": one\n: data: two\n\n");
}

TEST_CASE("an empty id is sent, so a client can reset its last event id") {
    weir::sse_event e;
    e.id = "";
    CHECK(weir::encode(e) == "id: \ndata: \n\n");
}

TEST_CASE("a pending SSE upgrade commits for 2xx only") {
    CHECK(weir::sse::commits(weir::status::ok));
    CHECK(weir::sse::commits(weir::status::accepted));
    CHECK(!weir::sse::commits(weir::status::unauthorized));
    CHECK(!weir::sse::commits(weir::status::switching_protocols));
}
