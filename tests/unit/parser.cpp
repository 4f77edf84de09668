// The request parser, rule by rule (RFC 9112 and RFC 9110): what it accepts, and the status it answers
// for what it refuses.
#include <weir/http/parser.hpp>

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace {

struct outcome {
    weir::parse_result result;
    weir::http_request message; // views into the caller's data only: the parser is gone
    std::string body;           // a chunked body lives in the parser, so it is copied out
};

weir::http_limits small_limits() {
    weir::http_limits l;
    l.max_request_line = 64;
    l.max_header_bytes = 256;
    l.max_header_count = 5;
    l.max_body_bytes = 32;
    return l;
}

outcome parse(std::string_view data, weir::http_limits limits = {}) {
    outcome o;
    weir::request_parser p(limits);
    o.result = p.parse(data, o.message);
    o.body = std::string(o.message.body());
    return o;
}

// Feeds one byte more each time, as a slow client would.
outcome parse_bytewise(std::string_view data, weir::http_limits limits = {}) {
    outcome o;
    weir::request_parser p(limits);
    for (std::size_t n = 1; n <= data.size(); ++n) {
        o.result = p.parse(data.substr(0, n), o.message);
        if (o.result.state != weir::parse_result::kind::incomplete) break;
    }
    o.body = std::string(o.message.body());
    return o;
}

weir::status refused(std::string_view data, weir::http_limits limits = {}) {
    auto o = parse(data, limits);
    REQUIRE(o.result.state == weir::parse_result::kind::error);
    auto b = parse_bytewise(data, limits);
    REQUIRE(b.result.state == weir::parse_result::kind::error);
    CHECK(b.result.error_status == o.result.error_status);
    return o.result.error_status;
}

using enum weir::status;

} // namespace

TEST_CASE("a simple GET is parsed into method, target, path, query, version and fields") {
    std::string_view data = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  spaced value \t\r\n\r\n";
    auto o = parse(data);
    REQUIRE(o.result.state == weir::parse_result::kind::complete);
    CHECK(o.message.method() == "GET");
    CHECK(o.message.target() == "/a/b?x=1&y=2");
    CHECK(o.message.path() == "/a/b");
    CHECK(o.message.query() == "x=1&y=2");
    CHECK(o.message.version() == 11);
    CHECK(o.message.header("x-thing") == "spaced value");
    CHECK(o.result.consumed == data.size());
}

TEST_CASE("byte-at-a-time feeding gives the same request as one piece") {
    std::string_view req = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    auto a = parse(req);
    auto b = parse_bytewise(req);
    REQUIRE(b.result.state == weir::parse_result::kind::complete);
    CHECK(a.result.consumed == b.result.consumed);
    CHECK(b.body == "hello");
}

TEST_CASE("pipelined requests are consumed one at a time") {
    std::string data = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    weir::request_parser p;
    weir::http_request m;
    auto r = p.parse(data, m);
    REQUIRE(r.state == weir::parse_result::kind::complete);
    CHECK(m.path() == "/1");
    p.reset();
    r = p.parse(std::string_view(data).substr(r.consumed), m);
    REQUIRE(r.state == weir::parse_result::kind::complete);
    CHECK(m.path() == "/2");
}

TEST_CASE("an empty line before the request line is ignored") {
    auto o = parse("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
    CHECK(o.result.state == weir::parse_result::kind::complete);
}

TEST_CASE("a request line over the limit is 414, at the limit it passes") {
    auto limits = small_limits();
    std::string at = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";
    REQUIRE(at.size() == 64);
    CHECK(parse(at + "\r\nHost: h\r\n\r\n", limits).result.state == weir::parse_result::kind::complete);
    CHECK(refused("GET /" + std::string(51, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", limits) == uri_too_long);
    // Without waiting for the end of the line.
    auto partial = parse("GET /" + std::string(100, 'a'), limits);
    CHECK(partial.result.state == weir::parse_result::kind::error);
    CHECK(partial.result.error_status == uri_too_long);
}

TEST_CASE("a head over the limit or too many fields is 431") {
    auto limits = small_limits();
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(300, 'a') + "\r\n\r\n", limits) ==
          request_header_fields_too_large);
    std::string five = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
    CHECK(parse(five, limits).result.state == weir::parse_result::kind::complete);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n", limits) ==
          request_header_fields_too_large);
}

TEST_CASE("a body over the limit is 413 as soon as Content-Length says so") {
    auto limits = small_limits();
    auto o = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 33\r\n\r\n", limits);
    CHECK(o.result.state == weir::parse_result::kind::error);
    CHECK(o.result.error_status == payload_too_large);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 32\r\n\r\n" + std::string(32, 'x'), limits)
              .result.state == weir::parse_result::kind::complete);
}

TEST_CASE("Host is required once on HTTP/1.1, and must be a valid authority") {
    CHECK(refused("GET / HTTP/1.1\r\n\r\n") == bad_request);
    CHECK(refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == bad_request);
    CHECK(refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == bad_request);
    CHECK(parse("GET / HTTP/1.0\r\n\r\n").result.state == weir::parse_result::kind::complete);
    CHECK(parse("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").result.state == weir::parse_result::kind::complete);
}

TEST_CASE("Content-Length with Transfer-Encoding is 400") {
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") ==
          bad_request);
}

TEST_CASE("differing or malformed Content-Length is 400; identical repeats are accepted") {
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd") == bad_request);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc") == bad_request);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n") == bad_request);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n") == bad_request);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n") == bad_request);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc").result.state ==
          weir::parse_result::kind::complete);
}

TEST_CASE("chunked must be the last transfer coding; other codings are 501") {
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n") == bad_request);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n") == bad_request);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") ==
          bad_request);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == not_implemented);
    CHECK(refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == bad_request);
}

TEST_CASE("a chunked body is decoded, with extensions and trailers") {
    auto o = parse_bytewise("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
                            "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: yes\r\n\r\nNEXT");
    REQUIRE(o.result.state == weir::parse_result::kind::complete);
    CHECK(o.body == "hello world");
    CHECK(o.result.consumed == 107); // NEXT, the start of a pipelined request, is left
}

TEST_CASE("chunk sizes that overflow or are not hex, and data without CRLF, are 400") {
    auto head = std::string("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    CHECK(refused(head + "fffffffffffffffff\r\n") == bad_request);
    CHECK(refused(head + "zz\r\n") == bad_request);
    CHECK(refused(head + "3\r\nabcX\r\n") == bad_request);
    auto limits = small_limits();
    CHECK(refused(head + "21\r\n", limits) == payload_too_large);
}

TEST_CASE("obs-fold, whitespace before the colon, bare CR and bare LF are 400") {
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n") == bad_request);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n") == bad_request);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n") == bad_request);
    CHECK(refused("GET / HTTP/1.1\nHost: h\r\n\r\n") == bad_request);
    CHECK(refused("\nGET / HTTP/1.1\r\n\r\n") == bad_request);
}

TEST_CASE("invalid token characters and control characters are 400") {
    CHECK(refused("G(T / HTTP/1.1\r\nHost: h\r\n\r\n") == bad_request);
    CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nBad[Name]: x\r\n\r\n") == bad_request);
    CHECK(refused(std::string_view("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 35)) == bad_request);
    CHECK(refused("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n") == bad_request);
    CHECK(refused("GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n") == bad_request);
    CHECK(refused("GET  / HTTP/1.1\r\nHost: h\r\n\r\n") == bad_request);
}

TEST_CASE("HTTP versions other than 1.0 and 1.1 are 505; malformed versions are 400") {
    CHECK(refused("GET / HTTP/2.0\r\nHost: h\r\n\r\n") == http_version_not_supported);
    CHECK(refused("GET / HTTP/1.2\r\nHost: h\r\n\r\n") == http_version_not_supported);
    CHECK(refused("GET / HTTP/11\r\nHost: h\r\n\r\n") == bad_request);
    CHECK(refused("GET / http/1.1\r\nHost: h\r\n\r\n") == bad_request);
}

TEST_CASE("request-target forms: origin, absolute and asterisk for OPTIONS; CONNECT is 501") {
    auto abs = parse("GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    REQUIRE(abs.result.state == weir::parse_result::kind::complete);
    CHECK(abs.message.path() == "/x");
    CHECK(abs.message.query() == "y=1");
    CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").result.state == weir::parse_result::kind::complete);
    CHECK(refused("GET * HTTP/1.1\r\nHost: h\r\n\r\n") == bad_request);
    CHECK(refused("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n") == not_implemented);
}

TEST_CASE("Expect: 100-continue is reported until the body arrives; other expectations are 417") {
    weir::request_parser p;
    weir::http_request m;
    std::string head = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    CHECK(p.parse(head, m).state == weir::parse_result::kind::incomplete);
    CHECK(p.head_complete());
    CHECK(p.expects_continue());
    CHECK(p.parse(head + "ok", m).state == weir::parse_result::kind::complete);
    CHECK(refused("POST / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n\r\n") == expectation_failed);
}

TEST_CASE("views follow the buffer when it moves between calls") {
    std::string first = "POST /moved HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab";
    weir::request_parser p;
    weir::http_request m;
    CHECK(p.parse(first, m).state == weir::parse_result::kind::incomplete);
    std::string moved = first + "cd";
    first.assign(first.size(), 'X'); // the old buffer is overwritten
    auto r = p.parse(moved, m);
    REQUIRE(r.state == weir::parse_result::kind::complete);
    CHECK(m.path() == "/moved");
    CHECK(m.header("host") == "h");
    CHECK(m.body() == "abcd");
}

TEST_CASE("chunk extensions are limited in total per request, not only per line: past 4 KiB is 400") {
    auto head = std::string("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string ext = ";e=" + std::string(1500, 'x');
    // Each line is well under 4 KiB, but three of them are not.
    CHECK(refused(head + "1" + ext + "\r\na\r\n1" + ext + "\r\nb\r\n1" + ext + "\r\nc\r\n0\r\n\r\n") == bad_request);
    auto ok = parse(head + "1" + ext + "\r\na\r\n1" + ext + "\r\nb\r\n0\r\n\r\n");
    CHECK(ok.result.state == weir::parse_result::kind::complete);
    CHECK(ok.body == "ab");
}

TEST_CASE("chunk-size then whitespace without an extension is 400; BWS around ';' and '=' is accepted "
          "(RFC 9112 section 7.1.1)") {
    auto head = std::string("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    CHECK(refused(head + "5 \r\nhello\r\n0\r\n\r\n") == bad_request);
    CHECK(refused(head + "5\t\r\nhello\r\n0\r\n\r\n") == bad_request);
    CHECK(refused(head + "5;a \r\nhello\r\n0\r\n\r\n") == bad_request);
    CHECK(refused(head + "5;\r\nhello\r\n0\r\n\r\n") == bad_request);
    CHECK(refused(head + "5;a b\r\nhello\r\n0\r\n\r\n") == bad_request);
    CHECK(refused(head + "5;a=\r\nhello\r\n0\r\n\r\n") == bad_request);
    CHECK(refused(head + "5;a=\"open\r\nhello\r\n0\r\n\r\n") == bad_request);
    auto ok = parse_bytewise(head + "5 ; a = b ;c;d=\"q \\\" s\"\r\nhello\r\n0\r\n\r\n");
    REQUIRE(ok.result.state == weir::parse_result::kind::complete);
    CHECK(ok.body == "hello");
}

TEST_CASE("an absolute-form target with an empty path is the path / and keeps its query") {
    auto o = parse("POST http://x?n=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(o.result.state == weir::parse_result::kind::complete);
    CHECK(o.message.path() == "/");
    CHECK(o.message.query() == "n=5");
    auto bare = parse("GET http://x HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(bare.result.state == weir::parse_result::kind::complete);
    CHECK(bare.message.path() == "/");
    CHECK(bare.message.query().empty());
}

TEST_CASE("the raw bytes of a decoded chunked body can be dropped from the buffer as they arrive") {
    std::string head = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string buffer = head;
    weir::request_parser p;
    weir::http_request m;
    std::size_t most = 0;
    for (int i = 0; i < 1000; ++i) {
        buffer += "1;e\r\nx\r\n"; // 2 bytes of extension each, 2000 in all: under the limit
        REQUIRE(p.parse(buffer, m).state == weir::parse_result::kind::incomplete);
        buffer.erase(p.decoded_offset(), p.decoded_bytes());
        p.discard_decoded();
        most = std::max(most, buffer.size());
    }
    buffer += "2\r\nyz\r\n0\r\n";
    REQUIRE(p.parse(buffer, m).state == weir::parse_result::kind::incomplete);
    buffer.erase(p.decoded_offset(), p.decoded_bytes());
    p.discard_decoded();
    buffer += "\r\nGET";
    auto r = p.parse(buffer, m);
    REQUIRE(r.state == weir::parse_result::kind::complete);
    CHECK(m.path() == "/up");
    CHECK(m.body() == std::string(1000, 'x') + "yz");
    CHECK(r.consumed == head.size() + 2); // the CRLF ending the trailers was still buffered
    CHECK(buffer.substr(r.consumed) == "GET");
    CHECK(most <= head.size() + 16);
}

TEST_CASE("each byte of a target and of a Host is accepted or refused as RFC 9110 and RFC 3986 say") {
    // Printable ASCII but '#' in a target; unreserved, sub-delims, ':', '[', ']' and '%' in a Host.
    auto in_target = [](int c) { return c > 0x20 && c < 0x7f && c != '#'; };
    std::string_view host_extra = "-._~!$&'()*+,;=:[]%";
    auto in_host = [&](int c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c != 0 && host_extra.find(static_cast<char>(c)) != std::string_view::npos);
    };
    for (int c = 1; c < 256; ++c) {
        if (c == '\r' || c == '\n' || c == ' ') continue; // these end the line or the target
        CAPTURE(c);
        std::string ch(1, static_cast<char>(c));
        std::string target = "GET /abcdefg" + ch + "h HTTP/1.1\r\nHost: h\r\n\r\n";
        CHECK((parse(target).result.state == weir::parse_result::kind::complete) == in_target(c));
        std::string host = "GET / HTTP/1.1\r\nHost: example" + ch + "org\r\n\r\n";
        CHECK((parse(host).result.state == weir::parse_result::kind::complete) == in_host(c));
    }
}

TEST_CASE("fields are split at their CRLF whatever their lengths") {
    auto o = parse("GET /p?q=1 HTTP/1.1\r\nHost: h\r\nA: 1\r\nLonger-Name:   spaced value  \r\nX:\r\n\r\n");
    REQUIRE(o.result.state == weir::parse_result::kind::complete);
    CHECK(o.message.method() == "GET");
    CHECK(o.message.path() == "/p");
    CHECK(o.message.query() == "q=1");
    CHECK(o.message.header("a") == "1");
    CHECK(o.message.header("longer-name") == "spaced value");
    CHECK(o.message.header("x") == "");
}
